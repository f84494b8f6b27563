#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft: broker and controller in one JVM) on 127.0.0.1, for
# development and tests, without Docker: the broker's jars come from Maven Central.
#
#   kafka.sh start            fetch the jars (once), format storage, start, wait, print the address
#   kafka.sh stop             stop it and delete its data (the jar cache stays)
#   kafka.sh restart          stop it and start it again on the same data (topics, offsets and
#                             transactions kept: a broker bounce, as in test/soak)
#   kafka.sh status           exit 0 if it runs
#   kafka.sh topic NAME N     create topic NAME with N partitions unless it exists
#
# Why Kafka 3.9.x and not 4.x: the project's client, kafkajs 2.2.4 (unmaintained since 2023), was
# never tested against Kafka 4, which removed the old protocol versions kafkajs speaks and made
# the new consumer group protocol the default. 3.9 is the last line that keeps both.
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), LIFECYCLE_KAFKA_CACHE (jar cache),
# LIFECYCLE_KAFKA_STATE (data, logs, pid file).
set -Eeuo pipefail
# Any command that fails unexpectedly says so: a bare non-zero exit is all a caller would see.
trap 'echo "kafka.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

KAFKA_VERSION=3.9.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LIFECYCLE_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/customer-lifecycle/kafka-$KAFKA_VERSION}"
state="${LIFECYCLE_KAFKA_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/customer-lifecycle/kafka-state-${KAFKA_PORT:-9092}}"
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-9093}"
bootstrap="127.0.0.1:$port"
pidfile="$state/kafka.pid"
libs="$cache/libs"

log() { echo "kafka.sh: $*" >&2; }

fetch_jars() {
  # The marker holds the pom's checksum: a changed dependency list fetches again.
  local sum
  sum="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
  if [ "$(cat "$libs/.complete" 2>/dev/null)" = "$sum" ]; then return; fi
  log "fetching Kafka $KAFKA_VERSION from Maven Central into $libs (first run only)"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  echo "$sum" >"$libs/.complete"
}

java_opts=(-Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j.configuration=file:$here/log4j.properties" "-Dkafka.log.file=$state/server.log" -cp "$libs/*")

java_cmd() {
  java "${java_opts[@]}" "$@"
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

answers() {
  java_cmd org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --list >/dev/null 2>&1
}

write_config() {
  cat >"$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
}

start() {
  if running; then
    echo "$bootstrap"
    return
  fi
  rm -f "$pidfile"
  if port_taken "$port" || port_taken "$controller_port"; then
    log "port $port or $controller_port on 127.0.0.1 is taken by another process; set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
    exit 1
  fi
  fetch_jars
  rm -rf "$state"
  mkdir -p "$state/data"
  write_config
  # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding (22 characters).
  # One that starts with '-' is taken for an option by StorageTool's argument parser (1 in 64
  # starts, seen in CI), so draw again until it does not, as Kafka's own Uuid.randomUuid does.
  cluster_id=-
  while [ "${cluster_id:0:1}" = - ]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  if ! java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$state/server.properties" >"$state/format.log" 2>&1; then
    log "formatting the storage failed; its output follows"
    cat "$state/format.log" >&2
    exit 1
  fi
  launch
}

# Starts the JVM on the formatted storage in $state and waits until it answers.
launch() {
  nohup java "${java_opts[@]}" kafka.Kafka "$state/server.properties" >>"$state/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if ! running; then
      log "the broker exited; its log follows"
      tail -n 40 "$state/server.log" "$state/stdout.log" >&2 || true
      exit 1
    fi
    if answers; then
      echo "$bootstrap"
      return
    fi
    sleep 1
  done
  log "the broker did not answer within 120 s; see $state/server.log"
  exit 1
}

# Stops the JVM (SIGTERM: a controlled shutdown that flushes the logs; SIGKILL after 30 s) and
# keeps its data.
halt() {
  if running; then
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# A bounce: the same broker (cluster id, topics, committed offsets, transaction state) back on
# the same ports. `start` would format fresh storage: it deletes whatever a stopped broker left.
restart() {
  if [ ! -f "$state/server.properties" ] || [ ! -d "$state/data" ]; then
    log "no broker data in $state to restart on: kafka.sh start"
    exit 1
  fi
  halt
  # The ports are free once the JVM is gone; wait for the kernel to release them.
  for _ in $(seq 1 30); do
    if ! port_taken "$port" && ! port_taken "$controller_port"; then break; fi
    sleep 1
  done
  launch
}

stop() {
  halt
  rm -rf "$state"
}

topic() {
  local name="$1" partitions="$2"
  running || { log "the broker is not running: kafka.sh start"; exit 1; }
  java_cmd org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor 1 >/dev/null
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  status) running || exit 1 ;;
  topic) topic "${2:?topic name}" "${3:?partitions}" ;;
  *)
    echo "usage: kafka.sh start|stop|restart|status|topic NAME PARTITIONS" >&2
    exit 2
    ;;
esac
