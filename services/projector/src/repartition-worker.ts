import { parentPort, workerData } from 'node:worker_threads';
import { createKafka } from '@lifecycle/kafka';
import { pino } from 'pino';
import { RepartitionStage } from './repartition-stage.js';
import { INPUT_NOTICE_MS, type FromRepartition, type RepartitionWorkerData, type ToRepartition } from './repartition-thread.js';

// The repartition stage of a projector instance, on a thread of its own (see RepartitionThread).
const data = workerData as RepartitionWorkerData;
const port = parentPort!;
const post = (message: FromRepartition) => port.postMessage(message);

// The instance's log lines, with its bindings, on stderr like the thread that started this one.
const logger = pino({ base: data.log.bindings, level: data.log.level }, pino.destination(2));
let noticedAt = Number.NEGATIVE_INFINITY;
const stage = new RepartitionStage({
  kafka: createKafka({ brokers: data.brokers, clientId: data.clientId, logger }),
  topics: data.topics,
  groupId: data.groupId,
  instanceId: data.instanceId,
  logger,
  commitIntervalMs: data.commitIntervalMs,
  onInput: () => {
    // The projector only asks whether input came in the last seconds: a notice now and then will do.
    const now = Date.now();
    if (now - noticedAt < INPUT_NOTICE_MS) return;
    noticedAt = now;
    post({ kind: 'input' });
  },
  onRejected: (rejection) => post({ kind: 'rejected', rejection }),
});

port.on('message', (message: ToRepartition) => {
  if (message.kind !== 'stop') return;
  void stage
    .stop()
    .catch((error: unknown) => logger.warn({ err: error }, 'repartition: stopping failed'))
    // With its port closed and its clients disconnected, the thread ends: the starter waits for that.
    .finally(() => port.close());
});

stage.start().then(
  () => post({ kind: 'started' }),
  (error: unknown) => {
    post({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
    // Nothing was consumed: the thread just ends (in a worker, exit ends the thread, not the process).
    process.exit(1);
  },
);
