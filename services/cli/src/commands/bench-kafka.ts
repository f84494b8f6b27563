import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createKafka, createProducer, publishLines, topicsFor, type Topics } from '@lifecycle/kafka';
import { createScratchDatabase, openPostgres, type SqlDatabase } from '@lifecycle/sql';
import { pino } from 'pino';
import { logger as cliLogger } from '../logger.js';
import { CliFailedError, generateFile, runCli, runFigures, startCli, type CliRun, type RunningCli } from './bench-process.js';
import { mib, progress, round1, round3, skippedRow, thousands, type BenchRow, type PartResult } from './bench-report.js';

/**
 * The Kafka rows: the projector (`lifecycle project`, in child processes as a user runs it) next
 * to a no-op kafkajs consumer of the same topic, its latency produce → read model committed at
 * half its rate, and its throughput with several instances in one group, with evidence of
 * whether their transactions overlap.
 *
 * A touchpoint is committed when the projector's offsets stored with the read models (README:
 * streams, read models and offsets in one transaction) pass the offset at which it sits in the
 * internal topic. The bench reads that topic itself (read_committed) to learn where each
 * touchpoint landed, and polls the stored offsets and `pg_stat_activity` every SAMPLE_MS.
 */

const PARTITIONS = 4;
const SAMPLE_MS = 20;
/** node-postgres names its sessions after PGAPPNAME: one name per instance tells them apart in pg_stat_activity. */
const APP_PREFIX = 'lifecycle-projector-';
const INSTANCE_IDS = 'abcdefghijklmnop';
/** Instance counts grow throughput when each is at least this many times the one before. */
const GROWTH = 1.1;
/** Transactions overlap when at least this share of the samples has two instances working in one. */
const OVERLAP = 0.1;

export interface KafkaBenchOptions {
  brokers: string[];
  /** Any database of the server on which `lifecycle_bench_<random>` databases are created and dropped. */
  serverUrl: string;
  /** Touchpoints pre-filled on each run's topic. */
  touchpoints: number;
  seed: number;
  /** Length of the latency run; 0 skips it. */
  latencySeconds: number;
  /** Touchpoints/s of the latency run; default half the projector's measured rate. */
  latencyRate?: number | undefined;
  /** The projector's touchpoints per PostgreSQL transaction (its default when absent). */
  chunkSize?: number | undefined;
  commitIntervalMs?: number | undefined;
  /** Instance counts of the scaling runs, ascending, starting with 1 (the projector of the other rows). */
  instances: number[];
  workDir: string;
}

type Kafka = ReturnType<typeof createKafka>;

/**
 * Warnings and errors of the bench's own Kafka clients, as JSON lines on stderr like the CLI's
 * logger, but a warning that repeats (kafkajs retrying a request) is written once and counted.
 */
function benchLogger(): { log: pino.Logger; repeated: Map<string, number> } {
  const repeated = new Map<string, number>();
  const stream = {
    write(line: string) {
      let msg = line;
      let level = 0;
      try {
        ({ msg, level } = JSON.parse(line) as { msg: string; level: number });
      } catch {
        // Written as it is.
      }
      const seen = (repeated.get(msg) ?? 0) + 1;
      repeated.set(msg, seen);
      if (seen === 1 || level >= 50) process.stderr.write(line);
    },
  };
  return { log: pino({ base: { service: 'cli', component: 'bench-kafka' }, level: 'warn' }, stream), repeated };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const seconds = (fromMs: number, toMs = performance.now()) => (toMs - fromMs) / 1000;
const percent = (share: number) => `${(share * 100).toFixed(1)} %`;

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `done` until it holds; fails with `what` after `timeoutMs`. */
async function until(done: () => boolean | Promise<boolean>, what: string, timeoutMs: number, pollMs = SAMPLE_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await done())) {
    if (performance.now() > deadline) throw new Error(`kafka bench: ${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(pollMs);
  }
}

function tcpAnswers(broker: string, timeoutMs: number): Promise<string | undefined> {
  const colon = broker.lastIndexOf(':');
  const host = broker.slice(0, colon);
  const port = Number(broker.slice(colon + 1));
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const finish = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs / 1000} s`));
    socket.once('connect', () => finish(undefined));
    socket.once('error', (error) => finish(error.message));
  });
}

/** Why the Kafka rows cannot be measured here (no broker, no PostgreSQL), or undefined when they can. */
export async function kafkaStageUnavailable(options: Pick<KafkaBenchOptions, 'brokers' | 'serverUrl'>): Promise<string | undefined> {
  try {
    await checkServices(options);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

async function checkServices({ brokers, serverUrl }: Pick<KafkaBenchOptions, 'brokers' | 'serverUrl'>): Promise<void> {
  const problems = await Promise.all(brokers.map((b) => tcpAnswers(b, 3_000)));
  if (problems.every((p) => p !== undefined)) {
    throw new Error(
      `no Kafka broker answers at ${brokers.join(',')} (${problems[0]}); start the dev broker with \`npm run kafka:start\` or set --brokers / LIFECYCLE_KAFKA_BROKERS`,
    );
  }
  const kafka = createKafka({ brokers, clientId: 'lifecycle-bench-probe', logger: cliLogger.child({ component: 'bench' }, { level: 'error' }) });
  const admin = kafka.admin();
  try {
    await withTimeout(
      admin.connect().then(() => admin.listTopics()),
      15_000,
      `the Kafka broker at ${brokers.join(',')}`,
    );
  } catch (error) {
    throw new Error(`the Kafka broker at ${brokers.join(',')} does not answer as a broker: ${(error as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  let db: SqlDatabase;
  try {
    db = await openPostgres(serverUrl);
  } catch (error) {
    throw new Error(`${(error as Error).message}; set --database / LIFECYCLE_DATABASE_URL to a PostgreSQL server on which the bench may create a database`);
  }
  await db.close();
}

function machineTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    idle += cpu.times.idle;
    total += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.idle + cpu.times.irq;
  }
  return { idle, total };
}

const busyShare = (before: ReturnType<typeof machineTimes>, after: ReturnType<typeof machineTimes>) =>
  round3(1 - (after.idle - before.idle) / Math.max(1, after.total - before.total));

const percentile = (sorted: readonly number[], q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;

interface Rate {
  seconds: number;
  perSecond: number;
}

/** Reads the whole topic with a fresh group that does nothing with the messages. */
async function noopConsume(kafka: Kafka, topic: string, messages: number): Promise<Rate> {
  const consumer = kafka.consumer({ groupId: `lifecycle-bench-noop.${topic}` });
  let read = 0;
  let lastAt = 0;
  const started = performance.now();
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        read += batch.messages.length;
        lastAt = performance.now();
      },
    });
    await until(() => read >= messages, `the no-op consumer reading ${messages} messages`, 120_000, 5);
  } finally {
    await consumer.disconnect();
  }
  const s = seconds(started, lastAt);
  return { seconds: round3(s), perSecond: Math.round(read / s) };
}

/** Where each touchpoint landed in the internal topic, seen as the repartition stage commits it. */
interface Observer {
  messages: number;
  /** Highest offset seen per partition. */
  readonly last: Map<number, number>;
  /** Set while the latency run needs each touchpoint's place. */
  track?: (id: string, partition: number, offset: number, at: number) => void;
  disconnect(): Promise<void>;
}

async function observe(kafka: Kafka, topic: string): Promise<Observer> {
  const consumer = kafka.consumer({ groupId: `lifecycle-bench-observer.${topic}`, readUncommitted: false });
  const observer: Observer = { messages: 0, last: new Map(), disconnect: () => consumer.disconnect() };
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const at = performance.now();
      for (const message of batch.messages) {
        const offset = Number(message.offset);
        observer.messages += 1;
        observer.last.set(batch.partition, Math.max(observer.last.get(batch.partition) ?? -1, offset));
        if (observer.track !== undefined && message.value !== null) {
          observer.track((JSON.parse(message.value.toString('utf8')) as { id: string }).id, batch.partition, offset, at);
        }
      }
    },
  });
  return observer;
}

interface SampleRow {
  app: string | null;
  /** The lock a session waits for (`advisory`, `transactionid`, `tuple`, …), null when it does not wait on one. */
  lock: string | null;
  partition: number | null;
  next_offset: number | string | null;
}

interface ActivitySample {
  at: number;
  /** Instances with a session inside a transaction, and of them those not waiting on a lock. */
  inTransaction: number;
  working: number;
  waitingOnLock: number;
  /** What the waiting sessions wait for. */
  locks: string[];
}

/**
 * Every SAMPLE_MS: the projectors' sessions in `pg_stat_activity` and the offsets they stored.
 * An instance is in a transaction when one of its sessions is (xact_start set: a running
 * statement or idle in a transaction); it is waiting rather than working when all those sessions
 * wait on a heavyweight lock (`wait_event_type = 'Lock'`: an advisory lock, a row another
 * transaction holds).
 */
class Sampler {
  readonly activity: ActivitySample[] = [];
  /** Samples that failed (a query error): left out, reported. */
  readonly failures: string[] = [];
  /** Per partition, each stored offset with the first sample that saw it. */
  private readonly history = new Map<number, { at: number; offset: number }[]>();
  private running = true;
  private schemaReady = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly monitor: SqlDatabase,
    private readonly group: string,
    private readonly topic: string,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const at = performance.now();
      const rows = await this.sample().catch((error: unknown) => {
        this.failures.push((error as Error).message);
        return undefined;
      });
      if (rows === undefined) {
        await sleep(SAMPLE_MS);
        continue;
      }
      const sessions = rows.filter((r) => r.app !== null);
      const working = new Set(sessions.filter((s) => s.lock === null).map((s) => s.app));
      const inTransaction = new Set(sessions.map((s) => s.app));
      const locks = sessions.flatMap((s) => (s.lock === null ? [] : [s.lock]));
      this.activity.push({ at, inTransaction: inTransaction.size, working: working.size, waitingOnLock: inTransaction.size - working.size, locks });
      for (const { partition, next_offset } of rows) {
        if (partition === null || next_offset === null) continue;
        const list = this.history.get(partition) ?? [];
        // A row at 0 is a claim of the partition, not a commit.
        if ((list[list.length - 1]?.offset ?? 0) < Number(next_offset)) list.push({ at, offset: Number(next_offset) });
        this.history.set(partition, list);
      }
      await sleep(Math.max(0, SAMPLE_MS - (performance.now() - at)));
    }
  }

  /**
   * One round trip per sample: on two cores, the bench's own queries take CPU from what it
   * measures (two queries every 20 ms cost about 15 % of a core).
   */
  private async sample(): Promise<SampleRow[]> {
    const activity = `SELECT application_name AS app, CASE WHEN wait_event_type = 'Lock' THEN wait_event END AS lock, NULL::integer AS partition, NULL::bigint AS next_offset
      FROM pg_stat_activity WHERE datname = current_database() AND starts_with(application_name, $1) AND xact_start IS NOT NULL`;
    if (this.schemaReady) {
      // The offsets the projector stores with its read models (loadConsumerOffsets' table).
      const offsets = 'SELECT NULL, NULL, partition, next_offset FROM consumer_offsets WHERE group_id = $2 AND topic = $3';
      return this.monitor.query<SampleRow>(`${activity} UNION ALL ${offsets}`, [APP_PREFIX, this.group, this.topic]);
    }
    // Until the projectors have created their schema there are no offsets to read.
    const rows = await this.monitor.query<SampleRow>(activity, [APP_PREFIX]);
    this.schemaReady = (await this.monitor.query(`SELECT 1 FROM pg_tables WHERE tablename = 'consumer_offsets'`)).length > 0;
    return rows;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** The next offset to consume of `partition` as last stored. */
  stored(partition: number): number {
    const list = this.history.get(partition);
    return list?.[list.length - 1]?.offset ?? 0;
  }

  /** When the message at `offset` was first seen committed: its partition's stored offset past it. */
  committedAt(partition: number, offset: number): number | undefined {
    const list = this.history.get(partition) ?? [];
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (list[mid]!.offset > offset) high = mid;
      else low = mid + 1;
    }
    return list[low]?.at;
  }

  firstCommitAt(): number | undefined {
    const firsts = [...this.history.values()].flatMap((l) => (l.length > 0 ? [l[0]!.at] : []));
    return firsts.length === 0 ? undefined : Math.min(...firsts);
  }

  overlap(from: number, to: number) {
    const samples = this.activity.filter((s) => s.at >= from && s.at <= to);
    const share = (test: (s: ActivitySample) => boolean) => round3(samples.filter(test).length / Math.max(1, samples.length));
    const locks: Record<string, number> = {};
    for (const sample of samples) for (const lock of sample.locks) locks[lock] = (locks[lock] ?? 0) + 1;
    return {
      samples: samples.length,
      failedSamples: this.failures.length,
      /** At least one instance working inside a transaction. */
      busy: share((s) => s.working >= 1),
      /** Two or more instances working inside transactions at once: the evidence of overlap. */
      working2: share((s) => s.working >= 2),
      /** The same, counting instances that wait on a lock inside their transaction. */
      inTransaction2: share((s) => s.inTransaction >= 2),
      /** Mean number of instances waiting on a lock. */
      meanWaitingOnLock: round3(samples.reduce((sum, s) => sum + s.waitingOnLock, 0) / Math.max(1, samples.length)),
      /** Sessions seen waiting, by the lock they waited for: an advisory lock is a global one, transactionid or tuple a row another instance writes. */
      locks,
    };
  }
}

interface LiveTraffic {
  lines: string[];
  ids: string[];
}

interface Latency {
  targetRate: number;
  achievedRate: number;
  produced: number;
  produceSeconds: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Produce → visible in the internal topic (the repartition stage's transaction committed), and from there → committed. */
  repartitionedP50Ms: number;
  repartitionedP99Ms: number;
  projectedP50Ms: number;
  projectedP99Ms: number;
}

interface ProjectorRun {
  instances: number;
  topic: string;
  touchpoints: number;
  /** From spawning the processes to every touchpoint committed. */
  seconds: number;
  perSecond: number;
  firstCommitSeconds: number | null;
  /** The same touchpoints over the time from the first commit: the rate once started and in the group. */
  perSecondFromFirstCommit: number | null;
  machineCpuBusy: number;
  overlap: ReturnType<Sampler['overlap']>;
  processes: ReturnType<typeof runFigures>[];
  latency: Latency | null;
}

interface Context {
  kafka: Kafka;
  options: KafkaBenchOptions;
  suffix: string;
}

/** Paced production at `rate` while the projector runs; each touchpoint's produce → committed. */
async function latencyRun(ctx: Context, topics: Topics, observer: Observer, sampler: Sampler, live: LiveTraffic, rate: number): Promise<Latency> {
  const count = Math.min(live.lines.length, Math.round(rate * ctx.options.latencySeconds));
  if (count < Math.round(rate * ctx.options.latencySeconds)) progress(`kafka: the generated stream ends after ${count} more touchpoints: the latency run is shorter`);
  const producedAt = new Map<string, number>();
  const visible = new Map<string, { at: number; partition: number; offset: number }>();
  const lastVisible = new Map<number, number>();
  observer.track = (id, partition, offset, at) => {
    if (!producedAt.has(id)) return;
    visible.set(id, { at, partition, offset });
    lastVisible.set(partition, Math.max(lastVisible.get(partition) ?? -1, offset));
  };
  const producer = createProducer(ctx.kafka);
  await producer.connect();
  try {
    progress(`kafka: latency run: ${count} touchpoints at ${rate}/s for ${ctx.options.latencySeconds} s`);
    const started = performance.now();
    let sent = 0;
    while (sent < count) {
      const elapsed = seconds(started);
      const due = Math.min(count, Math.floor(elapsed * rate) + 1);
      if (due > sent) {
        const at = performance.now();
        for (let i = sent; i < due; i += 1) producedAt.set(live.ids[i]!, at);
        await publishLines(producer, topics, live.lines.slice(sent, due), { source: 'bench-latency' });
        sent = due;
      } else {
        await sleep(Math.max(1, (sent / rate - elapsed) * 1000));
      }
    }
    const produceSeconds = seconds(started);
    await until(
      () => visible.size >= count && [...lastVisible].every(([partition, offset]) => sampler.stored(partition) > offset),
      `the latency run being committed (${visible.size} of ${count} repartitioned)`,
      60_000,
    );
    const endToEnd: number[] = [];
    const toVisible: number[] = [];
    const toCommitted: number[] = [];
    for (const [id, v] of visible) {
      const committed = sampler.committedAt(v.partition, v.offset)!;
      const produced = producedAt.get(id)!;
      endToEnd.push(committed - produced);
      toVisible.push(v.at - produced);
      toCommitted.push(committed - v.at);
    }
    for (const values of [endToEnd, toVisible, toCommitted]) values.sort((a, b) => a - b);
    return {
      targetRate: rate,
      achievedRate: Math.round(count / produceSeconds),
      produced: count,
      produceSeconds: round3(produceSeconds),
      p50Ms: round1(percentile(endToEnd, 0.5)),
      p95Ms: round1(percentile(endToEnd, 0.95)),
      p99Ms: round1(percentile(endToEnd, 0.99)),
      maxMs: round1(endToEnd[endToEnd.length - 1] ?? Number.NaN),
      repartitionedP50Ms: round1(percentile(toVisible, 0.5)),
      repartitionedP99Ms: round1(percentile(toVisible, 0.99)),
      projectedP50Ms: round1(percentile(toCommitted, 0.5)),
      projectedP99Ms: round1(percentile(toCommitted, 0.99)),
    };
  } finally {
    observer.track = undefined;
    await producer.disconnect();
  }
}

/**
 * `instances` projector processes in one group, on a fresh database, consuming `topics` (pre-filled
 * with `expected` touchpoints); with `live`, the latency run follows on the same processes.
 */
async function projectorRun(ctx: Context, instances: number, topics: Topics, expected: number, live?: LiveTraffic): Promise<ProjectorRun> {
  const { options, suffix } = ctx;
  const database = await createScratchDatabase(options.serverUrl, 'lifecycle_bench');
  const cleanups: (() => Promise<unknown>)[] = [() => database.drop()];
  try {
    const monitor = await openPostgres(database.url);
    cleanups.push(() => monitor.close());
    const group = `lifecycle-bench-${suffix}-${instances}`;
    const observer = await observe(ctx.kafka, topics.byCustomer);
    cleanups.push(() => observer.disconnect());
    const sampler = new Sampler(monitor, group, topics.byCustomer);
    cleanups.push(() => sampler.stop());
    const machineBefore = machineTimes();
    const spawnedAt = performance.now();
    const processes: RunningCli[] = [];
    const exited: CliRun[] = [];
    for (const id of INSTANCE_IDS.slice(0, instances)) {
      const args = ['project', '--brokers', options.brokers.join(','), '--topic', topics.input, '--partitions', String(PARTITIONS), '--database', database.url];
      args.push('--group', group, '--instance-id', id, '--metrics-port', '0');
      if (options.chunkSize !== undefined) args.push('--chunk-size', String(options.chunkSize));
      if (options.commitIntervalMs !== undefined) args.push('--commit-interval', String(options.commitIntervalMs));
      const running = startCli(args, { env: { PGAPPNAME: `${APP_PREFIX}${id}` } });
      void running.finished.then((run) => exited.push(run));
      processes.push(running);
    }
    let stopped: CliRun[] = [];
    try {
      const allCommitted = () => {
        if (exited.length > 0) throw new CliFailedError(exited[0]!);
        return observer.messages >= expected && [...observer.last].every(([partition, offset]) => sampler.stored(partition) > offset);
      };
      await until(allCommitted, `${instances} projector(s) committing ${expected} touchpoints`, 600_000);
      const machineCpuBusy = busyShare(machineBefore, machineTimes());
      const doneAt = Math.max(...[...observer.last].map(([partition, offset]) => sampler.committedAt(partition, offset)!));
      const firstCommitAt = sampler.firstCommitAt();
      const runSeconds = seconds(spawnedAt, doneAt);
      const perSecond = Math.round(expected / runSeconds);
      // From the first commit: before it the processes start, join the group and migrate.
      const overlap = sampler.overlap(firstCommitAt ?? spawnedAt, doneAt);
      progress(
        `kafka: ${instances} instance(s): ${expected} touchpoints committed ${runSeconds.toFixed(2)} s after spawn: ${thousands(perSecond)}/s; ` +
          `≥ 2 working in a transaction in ${percent(overlap.working2)} of ${overlap.samples} samples`,
      );
      const latency = live !== undefined && options.latencySeconds > 0 ? await latencyRun(ctx, topics, observer, sampler, live, options.latencyRate ?? Math.max(1, Math.round(perSecond / 2))) : null;
      stopped = await Promise.all(processes.map((p) => p.stop()));
      return {
        instances,
        topic: topics.input,
        touchpoints: expected,
        seconds: round3(runSeconds),
        perSecond,
        firstCommitSeconds: firstCommitAt === undefined ? null : round3(seconds(spawnedAt, firstCommitAt)),
        perSecondFromFirstCommit: firstCommitAt === undefined || firstCommitAt >= doneAt ? null : Math.round(expected / seconds(firstCommitAt, doneAt)),
        machineCpuBusy,
        overlap,
        processes: stopped.map(runFigures),
        latency,
      };
    } finally {
      if (stopped.length === 0) await Promise.all(processes.map((p) => p.stop()));
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

/** One generated stream (clean: the embedded rows carry the noise) split into the pre-filled part and the live part that continues it in event time. */
async function kafkaData(options: KafkaBenchOptions): Promise<{ prefill: string; live: LiveTraffic }> {
  const file = join(options.workDir, 'kafka-stream.ndjson');
  // About ten touchpoints per customer: twice what the pre-filled topics need, so the live part is as long again.
  await generateFile(['--customers', String(Math.ceil(options.touchpoints / 5)), '--seed', String(options.seed)], file, 2 * options.touchpoints);
  const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
  const prefill = join(options.workDir, 'kafka-prefill.ndjson');
  await writeFile(prefill, lines.slice(0, options.touchpoints).join('\n') + '\n');
  const rest = lines.slice(options.touchpoints);
  return { prefill, live: { lines: rest, ids: rest.map((l) => (JSON.parse(l) as { id: string }).id) } };
}

const runNote = (run: ProjectorRun) => {
  const peak = Math.max(...run.processes.map((p) => p.peakRssKiB ?? 0));
  const cpu = run.processes.reduce((sum, p) => sum + (p.cpuSeconds ?? 0), 0);
  return (
    `${run.instances} instance(s): ${thousands(run.perSecond)}/s, ${run.seconds.toFixed(2)} s from spawn (first commit after ${run.firstCommitSeconds?.toFixed(2) ?? '?'} s; ` +
    `from it ${run.perSecondFromFirstCommit === null ? '?' : thousands(run.perSecondFromFirstCommit)}/s), ` +
    `peak RSS ${mib(peak)} MiB${run.instances > 1 ? ' (largest)' : ''}, CPU ${cpu.toFixed(1)} s${run.latency !== null ? ' (latency run included)' : ''}, machine ${Math.round(run.machineCpuBusy * 100)} % busy`
  );
};

export const KAFKA_GOALS = {
  projector_vs_noop: { measure: 'Kafka projector → PostgreSQL ÷ no-op consumer', goal: '≥ 0.5 ×' },
  latency_p99: { measure: 'produce → read model committed, p99', goal: '< 500 ms' },
  instances: { measure: 'projector throughput by instances', goal: `grows (each ≥ ${GROWTH} × the one before)` },
  overlap: { measure: 'transactions of ≥ 2 instances overlapping', goal: `≥ ${OVERLAP * 100} % of samples` },
} as const;

/** The Kafka rows skipped, with why. */
export function kafkaSkipped(reason: string): PartResult {
  return { goals: Object.entries(KAFKA_GOALS).map(([id, g]) => skippedRow(id, g.measure, g.goal, reason)), context: [], details: { skipped: reason } };
}

/** Measures the Kafka rows; fails (no skipping) when the broker or PostgreSQL cannot be reached. */
export async function runKafka(options: KafkaBenchOptions): Promise<PartResult> {
  await checkServices(options).catch((error: unknown) => {
    throw new Error(`the kafka bench cannot run: ${(error as Error).message}`);
  });
  const { log, repeated } = benchLogger();
  const suffix = randomBytes(4).toString('hex');
  const kafka = createKafka({ brokers: options.brokers, clientId: `lifecycle-bench-${suffix}`, logger: log });
  const ctx: Context = { kafka, options, suffix };
  const allTopics: Topics[] = [];
  try {
    progress(`kafka: generating ${thousands(options.touchpoints)} touchpoints per topic and the live traffic after them (seed ${options.seed})`);
    const { prefill, live } = await kafkaData(options);
    const produced = [];
    for (const instances of options.instances) {
      const topics = topicsFor(`lifecycle-bench-${suffix}-i${instances}`);
      allTopics.push(topics);
      const run = await runCli(['produce', prefill, '--brokers', options.brokers.join(','), '--topic', topics.input, '--partitions', String(PARTITIONS)], { stdout: 'text' });
      const summary = JSON.parse(run.stdout) as { accepted: number };
      produced.push({ topics, accepted: summary.accepted, run });
      progress(`kafka: lifecycle produce → ${topics.input} (${PARTITIONS} partitions): ${thousands(summary.accepted)} in ${run.seconds.toFixed(1)} s`);
    }
    const first = produced[0]!;
    const noop = await noopConsume(kafka, first.topics.input, first.accepted);
    progress(`kafka: no-op consumer: ${thousands(noop.perSecond)}/s`);

    const runs: ProjectorRun[] = [];
    for (const [i, p] of produced.entries()) runs.push(await projectorRun(ctx, options.instances[i]!, p.topics, p.accepted, i === 0 ? live : undefined));

    const single = runs[0]!;
    const ratio = single.perSecond / noop.perSecond;
    const latency = single.latency;
    const grows = runs.every((run, i) => i === 0 || run.perSecond >= GROWTH * runs[i - 1]!.perSecond);
    const multi = runs.filter((r) => r.instances >= 2);
    const warnings = Object.fromEntries([...repeated].filter(([, n]) => n > 1));
    const goals: BenchRow[] = [
      {
        id: 'projector_vs_noop',
        measure: `${KAFKA_GOALS.projector_vs_noop.measure} (${PARTITIONS} partitions)`,
        value: round3(ratio),
        unit: '×',
        shown: `${ratio.toFixed(3)} ×`,
        goal: KAFKA_GOALS.projector_vs_noop.goal,
        met: ratio >= 0.5,
        notes: [
          `lifecycle project, ${runNote(single)}`,
          `no-op kafkajs consumer of the same topic: ${thousands(noop.perSecond)}/s (${noop.seconds.toFixed(2)} s, its connect and join included)`,
        ],
      },
      latency === null
        ? skippedRow('latency_p99', KAFKA_GOALS.latency_p99.measure, KAFKA_GOALS.latency_p99.goal, '--kafka-seconds 0')
        : {
            id: 'latency_p99',
            measure: `${KAFKA_GOALS.latency_p99.measure} at ${thousands(latency.achievedRate)}/s`,
            value: latency.p99Ms,
            unit: 'ms',
            shown: `${thousands(latency.p99Ms)} ms`,
            goal: KAFKA_GOALS.latency_p99.goal,
            met: latency.p99Ms < 500,
            notes: [
              `${thousands(latency.produced)} touchpoints over ${latency.produceSeconds.toFixed(0)} s (target ${thousands(latency.targetRate)}/s${options.latencyRate === undefined ? ", half the projector's rate" : ''}): ` +
                `p50 ${latency.p50Ms} ms, p95 ${latency.p95Ms} ms, max ${latency.maxMs} ms`,
              `produce → repartitioned p50 ${latency.repartitionedP50Ms} ms, p99 ${latency.repartitionedP99Ms} ms; → committed p50 ${latency.projectedP50Ms} ms, p99 ${latency.projectedP99Ms} ms ` +
                `(stored offsets polled every ${SAMPLE_MS} ms)`,
            ],
          },
      {
        id: 'instances',
        measure: `${KAFKA_GOALS.instances.measure} ${runs.map((r) => r.instances).join(' / ')}`,
        value: Object.fromEntries(runs.map((r) => [String(r.instances), r.perSecond])),
        unit: 'touchpoints/s',
        shown: `${runs.map((r) => thousands(r.perSecond)).join(' / ')} /s`,
        goal: KAFKA_GOALS.instances.goal,
        met: runs.length > 1 ? grows : null,
        notes: [...runs.map(runNote), `${cpus().length} cores for the projectors, PostgreSQL, the Kafka broker and the bench`],
      },
      multi.length === 0
        ? skippedRow('overlap', KAFKA_GOALS.overlap.measure, KAFKA_GOALS.overlap.goal, 'no run with 2 or more instances (--instances)')
        : {
            id: 'overlap',
            measure: KAFKA_GOALS.overlap.measure,
            value: Object.fromEntries(multi.map((r) => [String(r.instances), r.overlap.working2])),
            unit: 'share of samples',
            shown: multi.map((r) => `${r.instances}: ${percent(r.overlap.working2)}`).join(', '),
            goal: KAFKA_GOALS.overlap.goal,
            met: multi.every((r) => r.overlap.working2 >= OVERLAP),
            notes: runs.map(
              (r) =>
                `${r.instances} instance(s), ${r.overlap.samples} samples of pg_stat_activity every ${SAMPLE_MS} ms from the first commit: ≥ 1 working in a transaction ${percent(r.overlap.busy)}, ` +
                `≥ 2 working ${percent(r.overlap.working2)}, ≥ 2 in a transaction counting lock waits ${percent(r.overlap.inTransaction2)}, ` +
                `instances waiting on a lock ${r.overlap.meanWaitingOnLock} on average` +
                (Object.keys(r.overlap.locks).length > 0 ? ` (session-samples by lock: ${JSON.stringify(r.overlap.locks)})` : '') +
                (r.overlap.failedSamples > 0 ? `; ${r.overlap.failedSamples} samples failed` : ''),
            ),
          },
    ];
    const context: BenchRow[] = [
      { id: 'noop_consumer', measure: 'no-op kafkajs consumer, same topic', value: noop.perSecond, unit: 'messages/s', shown: `${thousands(noop.perSecond)}/s`, goal: null, met: null, notes: [] },
      {
        id: 'produce',
        measure: 'lifecycle produce (validate, publish)',
        value: Math.round(first.accepted / first.run.seconds),
        unit: 'touchpoints/s',
        shown: `${thousands(first.accepted / first.run.seconds)}/s`,
        goal: null,
        met: null,
        notes: [`${thousands(first.accepted)} touchpoints, ${first.run.seconds.toFixed(1)} s from spawn to exit`],
      },
    ];
    if (Object.keys(warnings).length > 0) progress(`kafka: the bench's clients repeated warnings: ${JSON.stringify(warnings)}`);
    return {
      goals,
      context,
      details: { partitions: PARTITIONS, touchpoints: options.touchpoints, chunkSize: options.chunkSize ?? null, commitIntervalMs: options.commitIntervalMs ?? null, produce: produced.map((p) => ({ topic: p.topics.input, accepted: p.accepted, ...runFigures(p.run) })), noop, runs, warnings },
    };
  } finally {
    if (allTopics.length > 0) await deleteTopics(kafka, allTopics, log);
  }
}

async function deleteTopics(kafka: Kafka, topics: Topics[], log: pino.Logger): Promise<void> {
  const admin = kafka.admin();
  await admin
    .connect()
    .then(() => admin.deleteTopics({ topics: topics.flatMap((t) => [t.input, t.byCustomer, t.deadLetter]) }))
    .catch((error: unknown) => log.error({ err: error }, 'kafka bench: deleting its topics failed'))
    .finally(() => admin.disconnect());
}
