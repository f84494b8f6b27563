import { parseLifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { inMemoryEventStore, loadCheckpoint, mirrorEvents, MirrorDivergedError, NO_STREAM, sqlEventStore, type EventStore } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { advanceWatermark, openLifecycleStore, projectBatch, replay } from '@lifecycle/projection';
import { openPostgres, type SqlDatabase } from '@lifecycle/sql';
import { randomUUID } from 'node:crypto';
import { createTestDatabase } from '../../../test/support/postgres.js';

const config = parseLifecycleConfig({});

async function expectSameStreams(source: SqlDatabase, target: EventStore): Promise<number> {
  const ids = (await source.query<{ stream_id: string }>('SELECT DISTINCT stream_id FROM lifecycle_events')).map((r) => r.stream_id);
  expect(await target.readStreams(ids)).toEqual(await sqlEventStore(source).readStreams(ids));
  return ids.length;
}

const maxPosition = async (db: SqlDatabase) => Number((await db.query<{ p: number }>('SELECT coalesce(max(position), 0) AS p FROM lifecycle_events'))[0]!.p);

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

  test('concurrent projectBatch, advanceWatermark and replay transactions: a following mirror copies every event exactly once', async () => {
    const touchpoints = [...generateTouchpoints({ customers: 120, seed: 11, months: 8 })];
    // Four "partitions", as the Kafka projector has, each projected chunk by chunk in its own transactions.
    const partitions: Touchpoint[][] = [[], [], [], []];
    touchpoints.forEach((t, i) => partitions[(t.customerId ?? t.anonymousId ?? '').length % 2 === 0 ? i % 2 : 2 + (i % 2)]!.push(t));
    const target = inMemoryEventStore();
    const controller = new AbortController();
    const mirroring = mirrorEvents(mirrorDb, target, { name: 'esdb', batchSize: 13, follow: true, pollIntervalMs: 1, signal: controller.signal });

    await Promise.all(
      partitions.map(async (partition, p) => {
        for (let i = 0; i < partition.length; i += 40) {
          await db.transaction((tx) => projectBatch(tx, partition.slice(i, i + 40), config));
          if (p === 0 && i % 200 === 0) await db.transaction((tx) => advanceWatermark(tx, Date.parse('2024-12-31T00:00:00Z'), config));
        }
      }),
    );
    // Other settings: replay corrects lifecycle events in the streams, appending to them.
    await replay(db, parseLifecycleConfig({ churn: { inactivityDays: 30 } }));

    const last = await maxPosition(db);
    const deadline = Date.now() + 30_000;
    while ((await loadCheckpoint(db, 'esdb')) < last) {
      if (Date.now() > deadline) throw new Error('the mirror did not catch up');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    controller.abort();
    const summary = await mirroring;
    const total = Number((await db.query<{ n: number }>('SELECT count(*) AS n FROM lifecycle_events'))[0]!.n);
    expect(summary).toMatchObject({ events: total, checkpoint: last });
    expect(summary.streams).toBe(await expectSameStreams(db, target));
  });

  test('why every writer takes the lock: a writer without it can commit below the checkpoint; its event is missed, and the stream\'s next event stops the mirror', async () => {
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
    await insertedA;
    await sqlEventStore(db).append([{ streamId: 'customer-b', expectedRevision: NO_STREAM, events: [event()] }]); // position 2, committed first
    expect(await mirrorEvents(mirrorDb, target, { name: 'esdb' })).toMatchObject({ events: 1, checkpoint: 2 });
    commit();
    await slow;
    expect(await mirrorEvents(mirrorDb, target, { name: 'esdb' })).toMatchObject({ events: 0, checkpoint: 2 });
    expect((await target.readStreams(['customer-a'])).has('customer-a')).toBe(false);

    await sqlEventStore(db).append([{ streamId: 'customer-a', expectedRevision: 0, events: [event()] }]);
    const error = await mirrorEvents(mirrorDb, target, { name: 'esdb' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MirrorDivergedError);
    expect(error).toMatchObject({ streamId: 'customer-a', expectedRevision: 0, targetRevision: NO_STREAM });
  });
});
