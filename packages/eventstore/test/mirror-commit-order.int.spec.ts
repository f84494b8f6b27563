import { isDeepStrictEqual } from 'node:util';
import {
  eventStoreMigrations,
  inMemoryEventStore,
  loadCheckpoint,
  MIRROR_START,
  mirrorEvents,
  NO_STREAM,
  sqlEventStore,
  type EventStore,
  type MirrorSummary,
  type MirrorWait,
  type NewEvent,
} from '@lifecycle/eventstore';
import { migrate, openPostgres, type SqlDatabase, type SqlExecutor } from '@lifecycle/sql';
import { createTestDatabase } from '../../../test/support/postgres.js';
import { expectSameStreams, interceptedTarget, lastEvent, newEvent } from './mirror-contract.js';

/** A transaction on a connection of its own: runs `work`, then stays open until `commit`. */
function openTransaction(db: SqlDatabase, work: (tx: SqlExecutor) => Promise<void>) {
  let commit!: () => void;
  const committing = new Promise<void>((resolve) => (commit = resolve));
  let started!: (it: { txId: string; pid: number }) => void;
  const running = new Promise<{ txId: string; pid: number }>((resolve) => (started = resolve));
  const done = db.transaction(async (tx) => {
    await work(tx);
    const [it] = await tx.query<{ txId: string; pid: number }>('SELECT pg_current_xact_id()::text AS "txId", pg_backend_pid() AS pid');
    started(it!);
    await committing;
  });
  return {
    /** Its id and backend, once `work` is done; rejects if `work` failed. */
    started: Promise.race([running, done.then(() => Promise.reject(new Error('the transaction ended before it started')))]),
    commit: async () => {
      commit();
      await done;
    },
  };
}

const until = async (condition: () => Promise<boolean> | boolean, what: string | (() => string), timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${typeof what === 'string' ? what : what()} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

const sourceIds = async (db: SqlExecutor) => (await db.query<{ event_id: string }>('SELECT event_id FROM lifecycle_events')).map((r) => r.event_id).sort();

/** `target`, noting the id of every event appended to it. */
function recording(target: EventStore) {
  const appended: string[] = [];
  const store = interceptedTarget(target, async (requests, _call, append) => {
    for (const r of requests) for (const e of r.events) appended.push(e.id);
    await append(requests);
  });
  return { store, appended };
}

/**
 * Runs the mirror until its checkpoint is the last event in commit order (a transaction of
 * another test on the server may hold it back a while); returns the summaries of its runs.
 */
async function mirrorUntilCaughtUp(source: SqlDatabase, target: EventStore, name: string, batchSize?: number): Promise<MirrorSummary[]> {
  const runs: MirrorSummary[] = [];
  await until(
    async () => {
      runs.push(await mirrorEvents(source, target, { name, batchSize }));
      return isDeepStrictEqual(runs[runs.length - 1]!.checkpoint, await lastEvent(source));
    },
    () => `the mirror did not catch up (committed events wait for transaction ${runs[runs.length - 1]?.waitingFor})`,
  );
  return runs;
}

describe('mirroring PostgreSQL while transactions commit out of position order', () => {
  let drop: () => Promise<void>;
  let db: SqlDatabase;
  let mirrorDb: SqlDatabase;
  beforeAll(async () => {
    const database = await createTestDatabase();
    drop = database.drop;
    db = await openPostgres(database.url);
    await migrate(db, eventStoreMigrations);
    // Its own connections, as a mirror process has.
    mirrorDb = await openPostgres(database.url);
  });
  afterAll(async () => {
    await mirrorDb?.close();
    await db?.close();
    await drop?.();
  });
  beforeEach(() => db.exec('TRUNCATE lifecycle_events, event_mirror_checkpoints RESTART IDENTITY'));

  test('a transaction that drew the smaller positions and commits last: nothing of it is copied while it is open, and all of it after', async () => {
    const a = [newEvent(), newEvent()];
    const slow = openTransaction(db, (tx) => sqlEventStore(tx).append([{ streamId: 'customer-a', expectedRevision: NO_STREAM, events: a }]));
    const target = inMemoryEventStore();
    const { store, appended } = recording(target);
    try {
      const { txId } = await slow.started;
      await sqlEventStore(db).append([{ streamId: 'customer-b', expectedRevision: NO_STREAM, events: [newEvent()] }]);
      expect(await db.query('SELECT position FROM lifecycle_events')).toEqual([{ position: 3 }]); // committed, after positions 1 and 2

      const held = await mirrorEvents(mirrorDb, store, { name: 'esdb' });
      // B's transaction is younger than A's, so it waits for A too.
      expect(held).toMatchObject({ events: 0, checkpoint: MIRROR_START });
      expect(appended).toEqual([]);
      expect(await loadCheckpoint(mirrorDb, 'esdb')).toEqual(MIRROR_START);
      // A, or an older transaction of another test on the server.
      expect(BigInt(held.waitingFor ?? 'NaN') <= BigInt(txId)).toBe(true);
    } finally {
      await slow.commit();
    }
    const runs = await mirrorUntilCaughtUp(mirrorDb, store, 'esdb');
    expect(runs.reduce((sum, run) => sum + run.events, 0)).toBe(3);
    expect(appended.sort()).toEqual(await sourceIds(db));
    await expectSameStreams(db, target);
  });

  test('an old transaction holding committed events back is reported once, with its backend, after reportWaitAfterMs', async () => {
    const slow = openTransaction(db, (tx) => sqlEventStore(tx).append([{ streamId: 'customer-a', expectedRevision: NO_STREAM, events: [newEvent()] }]));
    const target = inMemoryEventStore();
    const waits: MirrorWait[] = [];
    const controller = new AbortController();
    let running: Promise<MirrorSummary> | undefined;
    try {
      const { txId, pid } = await slow.started;
      await sqlEventStore(db).append([{ streamId: 'customer-b', expectedRevision: NO_STREAM, events: [newEvent()] }]);
      running = mirrorEvents(mirrorDb, target, {
        name: 'follow',
        follow: true,
        pollIntervalMs: 5,
        reportWaitAfterMs: 50,
        signal: controller.signal,
        onWait: (wait) => waits.push(wait),
      });
      await until(() => waits.some((w) => w.transaction === txId), 'no report of the open transaction');
      await new Promise((resolve) => setTimeout(resolve, 100)); // many more polls behind it
      const reports = waits.filter((w) => w.transaction === txId);
      expect(reports).toHaveLength(1);
      expect(reports[0]).toEqual({ transaction: txId, pid, waitedMs: expect.any(Number) });
      expect(reports[0]!.waitedMs).toBeGreaterThanOrEqual(50);
      expect((await target.readStreams(['customer-b'])).size).toBe(0);
      await slow.commit();
      await until(async () => (await target.readStreams(['customer-a', 'customer-b'])).size === 2, 'the mirror did not copy both streams');
    } finally {
      controller.abort();
      await slow.commit();
    }
    expect(await running).toMatchObject({ events: 2, streams: 2 });
  });

  test('concurrent writers whose transactions commit in any order, under a following mirror: each event reaches the target exactly once', async () => {
    const target = inMemoryEventStore();
    const { store, appended } = recording(target);
    const controller = new AbortController();
    const running = mirrorEvents(mirrorDb, store, { name: 'follow', batchSize: 3, follow: true, pollIntervalMs: 1, signal: controller.signal });
    // Each writer owns its streams, as a projector instance owns its customers'; a pause between
    // its insert and its commit lets others, which drew later positions, commit first.
    await Promise.all(
      [0, 1, 2, 3].map(async (writer) => {
        const revisions = new Map<string, number>();
        for (let t = 0; t < 30; t++) {
          const streamId = `customer-${writer}-${t % 3}`;
          const events: NewEvent[] = Array.from({ length: 1 + ((writer + t) % 3) }, () => newEvent());
          const expectedRevision = revisions.get(streamId) ?? NO_STREAM;
          await db.transaction(async (tx) => {
            await sqlEventStore(tx).append([{ streamId, expectedRevision, events }]);
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 30));
          });
          revisions.set(streamId, expectedRevision + events.length);
        }
      }),
    );
    try {
      await until(async () => isDeepStrictEqual(await loadCheckpoint(mirrorDb, 'follow'), await lastEvent(db)), 'the mirror did not catch up');
    } finally {
      controller.abort();
    }
    const summary = await running;
    const ids = await sourceIds(db);
    expect(appended.sort()).toEqual(ids);
    expect(summary).toMatchObject({ events: ids.length, streams: 12 });
    await expectSameStreams(db, target);
  });

  test('upgrading a checkpoint saved before 0003, with the migration run while a writer that already had its id was in flight', async () => {
    const database = await createTestDatabase();
    const old = await openPostgres(database.url);
    const mirror = await openPostgres(database.url);
    try {
      await migrate(old, eventStoreMigrations.slice(0, 2));
      await sqlEventStore(old).append([{ streamId: 'customer-a', expectedRevision: NO_STREAM, events: [newEvent(), newEvent(), newEvent()] }]);
      await sqlEventStore(old).append([{ streamId: 'customer-b', expectedRevision: NO_STREAM, events: [newEvent(), newEvent()] }]);
      // The mirror before 0003 copied positions 1..4 (customer-a 0..2, customer-b 0) and stopped.
      const target = inMemoryEventStore();
      const copied = await old.query<{ stream_id: string; revision: number; event_id: string; event_type: string; data: unknown }>(
        'SELECT stream_id, revision, event_id, event_type, data FROM lifecycle_events WHERE position <= 4 ORDER BY position',
      );
      for (const row of copied) {
        await target.append([{ streamId: row.stream_id, expectedRevision: row.revision - 1, events: [{ id: row.event_id, type: row.event_type, data: row.data }] }]);
      }
      await old.query("INSERT INTO event_mirror_checkpoints (name, position) VALUES ('esdb', 4)");

      // A writer gets its transaction id (it wrote elsewhere first), the migration runs, then it
      // appends: its events carry an id older than the migration's, at positions after them.
      let migrated!: () => void;
      const afterMigration = new Promise<void>((resolve) => (migrated = resolve));
      let hasId!: () => void;
      const withId = new Promise<void>((resolve) => (hasId = resolve));
      const writer = old.transaction(async (tx) => {
        await tx.query('SELECT pg_current_xact_id()');
        hasId();
        await afterMigration;
        await sqlEventStore(tx).append([
          { streamId: 'customer-a', expectedRevision: 2, events: [newEvent()] },
          { streamId: 'customer-d', expectedRevision: NO_STREAM, events: [newEvent()] },
        ]);
      });
      await withId;
      try {
        await migrate(old, eventStoreMigrations);
      } finally {
        migrated();
      }
      await writer;
      await sqlEventStore(old).append([{ streamId: 'customer-b', expectedRevision: 1, events: [newEvent()] }]);
      await sqlEventStore(old).append([{ streamId: 'customer-a', expectedRevision: 3, events: [newEvent()] }]);
      const order = await old.query<{ position: number }>('SELECT position FROM lifecycle_events WHERE position > 4 ORDER BY tx_id, position');
      expect(order.map((r) => r.position)).toEqual([6, 7, 5, 8, 9]); // the writer's first, then the migration's last row

      const { store, appended } = recording(target);
      const runs = await mirrorUntilCaughtUp(mirror, store, 'esdb', 2);
      const above = (await old.query<{ event_id: string }>('SELECT event_id FROM lifecycle_events WHERE position > 4')).map((r) => r.event_id);
      // Nothing up to the old checkpoint again; the writer's events are not lost. (Were a
      // transaction of another test on the server to hold a run back before the pair is saved,
      // the next run would read the writer's events again, which the target recognises.)
      expect([...new Set(appended)].sort()).toEqual(above.sort());
      await expectSameStreams(old, target);
      expect(runs[0]).toMatchObject({ from: { txId: null, position: 4 } });
      if (runs.length === 1) expect(appended).toHaveLength(5); // each once, when nothing held the run back
      expect(await loadCheckpoint(mirror, 'esdb')).toEqual(await lastEvent(old));
    } finally {
      await mirror.close();
      await old.close();
      await database.drop();
    }
  });
});
