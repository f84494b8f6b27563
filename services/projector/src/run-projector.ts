import { hostname } from 'node:os';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { createKafka, ensureLifecycleTopics, topicsFor } from '@lifecycle/kafka';
import { LifecycleMetrics, createRegistry, startOpsServer, untilSignal } from '@lifecycle/observability';
import { assertStoreConfig, openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import { assertNoEmbeddedWriters, churnRatesAtWatermark, countCustomersByStage, handoffsPending, loadProjectionState } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import type { Logger } from 'pino';
import { ProjectorService } from './projector-service.js';

export interface ProjectorOptions {
  brokers: string[];
  topic: string;
  /** Partitions of the topics when they are created. */
  partitions: number;
  location: StoreLocation;
  config: LifecycleConfig;
  instanceId?: string;
  groupId?: string;
  untilIdle: boolean;
  chunkSize?: number;
  commitIntervalMs?: number;
  wallClockAfterIdleMs?: number;
  metricsPort: number;
  host: string;
}

const IDLE_POLL_MS = 1_000;

/**
 * The projector service: one instance of the consumer group (Kafka → event streams and read
 * models), with `/metrics` and `/health`. Runs until SIGINT/SIGTERM, or with `untilIdle` until
 * the group caught up.
 */
export async function runProjector(options: ProjectorOptions, logger: Logger): Promise<void> {
  const instanceId = options.instanceId ?? hostname();
  const log = logger.child({ instanceId });
  const connection = { brokers: options.brokers, clientId: `lifecycle-projector-${instanceId}` };
  const topics = topicsFor(options.topic);
  await ensureLifecycleTopics(createKafka({ ...connection, logger: log }), topics, options.partitions);
  const db = await openLifecycleStore(options.location);
  try {
    await assertStoreConfig(db, options.config);
    await db.transaction(assertNoEmbeddedWriters);
  } catch (error) {
    await db.close();
    throw error;
  }
  const registry = createRegistry('projector');
  const ops = await startOpsServer({
    port: options.metricsPort,
    host: options.host,
    registry,
    health: async () => {
      const { watermark } = await loadProjectionState(db);
      return { instanceId, watermark: watermark === null ? null : new Date(watermark).toISOString() };
    },
  });
  const service = new ProjectorService({
    kafka: connection,
    topics,
    db,
    config: options.config,
    logger: log,
    instanceId,
    ...(options.groupId !== undefined ? { groupId: options.groupId } : {}),
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    ...(options.commitIntervalMs !== undefined ? { commitIntervalMs: options.commitIntervalMs } : {}),
    ...(options.wallClockAfterIdleMs !== undefined ? { wallClockAfterIdleMs: options.wallClockAfterIdleMs } : {}),
    onBatch: (outcome, seconds) => metrics.recordBatch(outcome, seconds),
    onRejected: (rejection) => metrics.recordRejection(rejection.reason, rejection.type),
    onStoreError: () => metrics.storeErrors.inc({ store: 'databaseUrl' in options.location ? 'postgres' : 'embedded' }),
  });
  const metrics = new LifecycleMetrics(registry, {
    customersByStage: () => countCustomersByStage(db),
    churnRates: () => churnRatesAtWatermark(db),
    consumerLag: () => service.consumerLag(),
  });
  log.info({ brokers: options.brokers, topics, store: db.description, metrics: ops.address }, 'projector starting');
  try {
    // A thread of the instance that fails (the repartition stage's) stops it: with an error, so
    // that whatever runs it starts it again.
    const idle = await Promise.race([service.start().then(() => untilDone(service, db, options.untilIdle, log)), service.failed]);
    log.info({ idle }, 'projector stopping');
  } finally {
    await service.stop().catch((error: unknown) => log.warn({ err: error }, 'stopping the projector failed'));
    await ops.close();
    await db.close();
  }
}

/** Until SIGINT/SIGTERM (or the service failed), or with `untilIdle` until the group caught up (true then). */
async function untilDone(service: ProjectorService, db: SqlDatabase, untilIdle: boolean, log: Logger): Promise<boolean> {
  const stopped = Promise.race([untilSignal(), service.failed.catch(() => undefined)]);
  if (!untilIdle) {
    await stopped;
    return false;
  }
  // Idle twice in a row, a poll apart: the other instances' last chunks are committed too.
  let streak = 0;
  while (streak < 2) {
    const stop = await Promise.race([stopped.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), IDLE_POLL_MS))]);
    if (stop) break;
    // Once everything the group consumed is committed, what this instance owes its customers
    // is known; and once no instance has left another one work (a nudge, a link request), the
    // whole group is settled. A settle that fails (partitions moving in a rebalance) is not
    // idle: the loop goes on.
    const settled =
      (await service.caughtUp()) &&
      (await service.settle().then(() => true, (error: unknown) => (log.warn({ err: error }, 'settle failed'), false))) &&
      !(await handoffsPending(db));
    streak = settled ? streak + 1 : 0;
  }
  return streak >= 2;
}
