import { parseLifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { createHash, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  ConcurrencyError,
  inMemoryEventStore,
  loadCheckpoint,
  MIRROR_START,
  mirrorEvents,
  NO_STREAM,
  sqlEventStore,
  type EventStore,
  type MirrorCheckpoint,
} from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { advanceWatermark, KeyedState, openLifecycleStore, projectBatch, replay, type Ownership } from '@lifecycle/projection';
import { assertClaims, takePartitions } from '@lifecycle/readmodel';
import { openPostgres, type SqlDatabase, type SqlExecutor } from '@lifecycle/sql';
import { createTestDatabase } from '../../../test/support/postgres.js';

const config = parseLifecycleConfig({});
const TOPIC = 'touchpoints.by-customer';
const GROUP = 'lifecycle-projector.touchpoints';
const PARTITIONS = 4;

// As the repartition stage keys messages: by customer, or by visitor for an anonymous impression.
const partitionOfKey = (key: string) => createHash('sha1').update(key).digest().readUInt32BE(0) % PARTITIONS;
const partitionOf = (t: Touchpoint) => partitionOfKey(t.customerId ?? t.anonymousId!);

/**
 * A projector instance as the Kafka service runs one, on connections of its own: it owns
 * `partitions` and projects their touchpoints chunk by chunk, each chunk in its own transaction,
 * retried after a conflict with the other instance.
 */
async function projectorInstance(url: string, partitions: number[], byPartition: readonly Touchpoint[][]): Promise<void> {
  const db = await openLifecycleStore({ databaseUrl: url });
  try {
    const keyed = new KeyedState();
    const claims = await db.transaction((tx) => takePartitions(tx, GROUP, TOPIC, partitions));
    const ownership: Ownership = { topic: TOPIC, partitions, partitionOfVisitor: partitionOfKey };
    const write = async (work: (tx: SqlExecutor) => Promise<unknown>) => {
      for (let attempt = 1; ; attempt += 1) {
        try {
          await keyed.transaction(db, async (tx) => {
            await assertClaims(tx, GROUP, TOPIC, claims);
            await work(tx);
          });
          return;
        } catch (error) {
          const conflict = error instanceof ConcurrencyError || (error as { code?: string }).code === '40P01';
          if (!conflict || attempt >= 10) throw error;
        }
      }
    };
    for (let i = 0; partitions.some((p) => i < byPartition[p]!.length); i += 40) {
      for (const p of partitions) {
        const chunk = byPartition[p]!.slice(i, i + 40);
        if (chunk.length > 0) await write((tx) => projectBatch(tx, chunk, config, keyed, ownership, () => p));
      }
      await write((tx) => advanceWatermark(tx, Date.parse('2024-12-31T00:00:00Z'), config, keyed, ownership));
    }
  } finally {
    await db.close();
  }
}

async function expectSameStreams(source: SqlDatabase, target: EventStore): Promise<number> {
  const ids = (await source.query<{ stream_id: string }>('SELECT DISTINCT stream_id FROM lifecycle_events')).map((r) => r.stream_id);
  expect(await target.readStreams(ids)).toEqual(await sqlEventStore(source).readStreams(ids));
  return ids.length;
}

/** The last event in commit order: where the checkpoint of a mirror that copied everything stands. */
async function lastEvent(db: SqlDatabase): Promise<MirrorCheckpoint> {
  const [row] = await db.query<{ tx_id: string; position: number }>(
    'SELECT e.tx_id::text AS tx_id, e.position FROM lifecycle_events e ORDER BY e.tx_id DESC, e.position DESC LIMIT 1',
  );
  return { txId: row!.tx_id, position: row!.position };
}

/** Polls until the mirror's checkpoint is `last`. */
async function caughtUp(db: SqlDatabase, name: string, last: MirrorCheckpoint): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!isDeepStrictEqual(await loadCheckpoint(db, name), last)) {
    if (Date.now() > deadline) throw new Error('the mirror did not catch up');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('mirroring the PostgreSQL outbox while projectors write it', () => {
  let url: string;
  let drop: () => Promise<void>;
  let db: SqlDatabase;
  let mirrorDb: SqlDatabase;
  beforeEach(async () => {
    ({ url, drop } = await createTestDatabase());
    db = await openLifecycleStore({ databaseUrl: url });
    // Its own connections, as a mirror process has.
    mirrorDb = await openPostgres(url);
  });
  afterEach(async () => {
    await mirrorDb.close();
    await db.close();
    await drop();
  });

  test('two projector instances writing their partitions at once, then a replay: a following mirror copies every event exactly once', async () => {
    const byPartition: Touchpoint[][] = Array.from({ length: PARTITIONS }, () => []);
    for (const t of generateTouchpoints({ customers: 120, seed: 11, months: 8 })) byPartition[partitionOf(t)]!.push(t);
    const target = inMemoryEventStore();
    const controller = new AbortController();
    const mirroring = mirrorEvents(mirrorDb, target, { name: 'esdb', batchSize: 13, follow: true, pollIntervalMs: 1, signal: controller.signal });
    let last: MirrorCheckpoint;
    try {
      await Promise.all([projectorInstance(url, [0, 1], byPartition), projectorInstance(url, [2, 3], byPartition)]);
      // Other settings: replay corrects lifecycle events in the streams, appending to them.
      await replay(db, parseLifecycleConfig({ churn: { inactivityDays: 30 } }));
      last = await lastEvent(db);
      await caughtUp(db, 'esdb', last);
    } finally {
      controller.abort();
    }
    const summary = await mirroring;
    const total = Number((await db.query<{ n: number }>('SELECT count(*) AS n FROM lifecycle_events'))[0]!.n);
    expect(summary).toMatchObject({ events: total, checkpoint: last });
    expect(summary.streams).toBe(await expectSameStreams(db, target));
  });

  test('a writer whose transaction drew the smaller position and commits last, without any lock: the mirror waits for it, and misses nothing', async () => {
    const target = inMemoryEventStore();
    const event = () => ({ id: randomUUID(), type: 'A', data: {} });
    let commit!: () => void;
    const held = new Promise<void>((resolve) => (commit = resolve));
    let inserted!: () => void;
    const insertedA = new Promise<void>((resolve) => (inserted = resolve));
    const slow = db.transaction(async (tx) => {
      await sqlEventStore(tx).append([{ streamId: 'customer-a', expectedRevision: NO_STREAM, events: [event()] }]); // position 1
      inserted();
      await held;
    });
    try {
      await insertedA;
      await sqlEventStore(db).append([{ streamId: 'customer-b', expectedRevision: NO_STREAM, events: [event()] }]); // position 2, committed first
      expect(await mirrorEvents(mirrorDb, target, { name: 'esdb' })).toMatchObject({ events: 0, checkpoint: MIRROR_START });
    } finally {
      commit();
      await slow;
    }
    await sqlEventStore(db).append([{ streamId: 'customer-a', expectedRevision: 0, events: [event()] }]);
    const controller = new AbortController();
    const following = mirrorEvents(mirrorDb, target, { name: 'esdb', follow: true, pollIntervalMs: 5, signal: controller.signal });
    try {
      // Another test's transaction on the server may hold the mirror back a while.
      await caughtUp(db, 'esdb', await lastEvent(db));
    } finally {
      controller.abort();
    }
    expect(await following).toMatchObject({ events: 3, streams: 2 });
    await expectSameStreams(db, target);
  });
});
