import { mirrorEvents, type EventStore, type MirrorSummary } from '@lifecycle/eventstore';
import { hostsOf, openEventStoreDb } from '@lifecycle/eventstore/eventstoredb';
import { openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import { logger } from '../logger.js';

export interface MirrorCommandOptions {
  location: StoreLocation;
  /** EventStoreDB connection string; may hold a password, so it is never logged. */
  eventstore: string;
  name: string;
  follow: boolean;
  batchSize: number;
  pollIntervalMs: number;
}

/** Opens the target store; tests pass one that opens another store. */
export type OpenTarget = (connectionString: string) => Promise<EventStore & { close(): Promise<void> }>;

/**
 * Copies the event streams from the SQL store (lifecycle_events, the outbox) to EventStoreDB from
 * the checkpoint `name` on; with `follow`, until SIGINT/SIGTERM, which let the page in flight
 * finish and save its checkpoint. Prints a summary on stdout: the checkpoints are
 * `{ txId, position }` of the last event copied, and `waitingFor` names the transaction still in
 * flight that held committed events back when the run ended.
 */
export async function mirrorEventStoreCommand(options: MirrorCommandOptions, openTarget: OpenTarget = openEventStoreDb): Promise<MirrorSummary> {
  const log = logger.child({ mirror: options.name });
  const db = await openLifecycleStore(options.location);
  try {
    const target = await openTarget(options.eventstore);
    const controller = new AbortController();
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'mirror stopping after the page in flight');
      controller.abort();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      log.info(
        { source: db.description, target: hostsOf(options.eventstore), follow: options.follow, batchSize: options.batchSize },
        'mirroring the event streams to EventStoreDB',
      );
      const started = performance.now();
      const summary = await mirrorEvents(db, target, {
        name: options.name,
        batchSize: options.batchSize,
        follow: options.follow,
        pollIntervalMs: options.pollIntervalMs,
        signal: controller.signal,
        onPage: (page) => log.debug(page, 'page mirrored'),
        onRetry: (error, attempt, delayMs) => log.warn({ err: error, attempt, delayMs }, 'appending a page to EventStoreDB failed; retrying'),
        onWait: (wait) =>
          log.warn(wait, 'committed events wait for an older transaction still in flight (its backend: pid in pg_stat_activity); the mirror copies them once it ends'),
      });
      const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
      log.info({ ...summary, seconds }, 'mirror finished');
      process.stdout.write(`${JSON.stringify({ ...summary, seconds }, null, 2)}\n`);
      return summary;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await target.close();
    }
  } finally {
    await db.close();
  }
}
