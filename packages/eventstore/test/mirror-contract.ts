import { randomUUID } from 'node:crypto';
import {
  eventStoreMigrations,
  loadCheckpoint,
  MIRROR_START,
  mirrorEvents,
  MirrorDivergedError,
  NO_STREAM,
  sqlEventStore,
  type AppendRequest,
  type EventStore,
  type MirrorCheckpoint,
  type NewEvent,
  type RecordedEvent,
} from '@lifecycle/eventstore';
import { migrate, openPglite, type SqlDatabase, type SqlExecutor } from '@lifecycle/sql';

export const newEvent = (type = 'TouchpointRecorded', data: unknown = { n: 1 }): NewEvent => ({ id: randomUUID(), type, data });

/** A fresh PGlite with the event store's schema: the outbox to mirror. */
export async function openSource(): Promise<SqlDatabase> {
  const db = await openPglite();
  await migrate(db, eventStoreMigrations);
  return db;
}

/** Empties the outbox and the checkpoints, positions from 1 again: opening a PGlite costs seconds. */
export async function resetSource(db: SqlDatabase): Promise<void> {
  await db.exec('TRUNCATE lifecycle_events, event_mirror_checkpoints RESTART IDENTITY');
}

/** Appends `count` events to the stream in the source, after what it holds; returns them. */
export async function appendToSource(db: SqlDatabase, streamId: string, count: number, type = 'TouchpointRecorded'): Promise<NewEvent[]> {
  const store = sqlEventStore(db);
  const current = (await store.readStreams([streamId])).get(streamId)?.length ?? 0;
  const events = Array.from({ length: count }, (_, i) => newEvent(type, { stream: streamId, n: current + i, nested: { at: '2024-01-01T00:00:00Z', list: [1, 'x'] } }));
  await store.append([{ streamId, expectedRevision: current - 1, events }]);
  return events;
}

export async function sourceStreamIds(db: SqlDatabase): Promise<string[]> {
  return (await db.query<{ stream_id: string }>('SELECT DISTINCT stream_id FROM lifecycle_events ORDER BY stream_id')).map((r) => r.stream_id);
}

const comparable = (streams: Map<string, RecordedEvent[]>) =>
  new Map([...streams].map(([id, events]) => [id, events.map((e) => ({ streamId: e.streamId, revision: e.revision, id: e.id, type: e.type, data: e.data }))]));

/** The target holds exactly the source's streams: same events, same revisions, nothing doubled. */
export async function expectSameStreams(db: SqlDatabase, target: EventStore): Promise<void> {
  const ids = await sourceStreamIds(db);
  const source = await sqlEventStore(db).readStreams(ids);
  const mirrored = await target.readStreams(ids);
  expect(comparable(mirrored)).toEqual(comparable(source));
}

async function checkpointAt(db: SqlExecutor, order: 'ASC' | 'DESC', offset: number): Promise<MirrorCheckpoint> {
  const rows = await db.query<{ tx_id: string; position: number }>(
    `SELECT e.tx_id::text AS tx_id, e.position FROM lifecycle_events e ORDER BY e.tx_id ${order}, e.position ${order} OFFSET $1 LIMIT 1`,
    [offset],
  );
  if (rows.length === 0) throw new Error('lifecycle_events holds fewer events than the test expects');
  return { txId: rows[0]!.tx_id, position: Number(rows[0]!.position) };
}

/** The checkpoint after the event at `offset` in commit order (0: the first). */
export const eventAt = (db: SqlExecutor, offset: number) => checkpointAt(db, 'ASC', offset);

/** The last event in commit order: where a mirror that copied everything has its checkpoint. */
export const lastEvent = (db: SqlExecutor) => checkpointAt(db, 'DESC', 0);

/** A target that does what `target` does, and lets a test step in around each append. */
export function interceptedTarget(
  target: EventStore,
  around: (requests: readonly AppendRequest[], call: number, append: (requests: readonly AppendRequest[]) => Promise<void>) => Promise<void>,
): EventStore & { readonly calls: number } {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    append: (requests) => around(requests, ++calls, (r) => target.append(r)),
    readStreams: (ids) => target.readStreams(ids),
    readAllOfType: (type, pageSize) => target.readAllOfType(type, pageSize),
  };
}

/** `target` with `suffix` added to every stream id: a store without the streams mirrored so far. */
export function renamedTarget(target: EventStore, suffix: string): EventStore {
  return {
    append: (requests) => target.append(requests.map((r) => ({ ...r, streamId: r.streamId + suffix }))),
    async readStreams(ids) {
      const found = await target.readStreams(ids.map((id) => id + suffix));
      return new Map([...found].map(([id, events]) => [id.slice(0, -suffix.length), events.map((e) => ({ ...e, streamId: id.slice(0, -suffix.length) }))]));
    },
    readAllOfType: (type, pageSize) => target.readAllOfType(type, pageSize),
  };
}

export class Killed extends Error {
  override readonly name = 'Killed';
}

/**
 * How `mirrorEvents` must behave whatever the target. `open` gives a target store; stream ids
 * are unique per test, so a shared server that holds other streams is fine.
 */
export function mirrorContract(open: () => Promise<EventStore>): void {
  let db: SqlDatabase;
  let target: EventStore;
  let stream: (name: string) => string;
  let name: string;
  beforeAll(async () => {
    db = await openSource();
  });
  afterAll(() => db.close());
  beforeEach(async () => {
    await resetSource(db);
    target = await open();
    const run = randomUUID().slice(0, 8);
    stream = (label) => `customer-${label}-${run}`;
    name = `test-${run}`;
  });

  test('mirrors every stream, page by page, with the revisions and ids of the source, and saves the checkpoint', async () => {
    await appendToSource(db, stream('a'), 2);
    await appendToSource(db, stream('b'), 1);
    await appendToSource(db, stream('a'), 3);
    await appendToSource(db, stream('c'), 2, 'CustomerAcquired');
    await appendToSource(db, stream('b'), 1);
    const pages: number[] = [];
    const summary = await mirrorEvents(db, target, { name, batchSize: 3, onPage: (page) => pages.push(page.events) });
    await expectSameStreams(db, target);
    const last = await lastEvent(db);
    expect(summary).toEqual({ name, events: 9, streams: 3, pages: 3, from: MIRROR_START, checkpoint: last, waitingFor: null });
    expect(pages).toEqual([3, 3, 3]);
    expect(await loadCheckpoint(db, name)).toEqual(last);
    // Another name starts from the beginning; the same one finds nothing new.
    expect(await loadCheckpoint(db, `${name}-other`)).toEqual(MIRROR_START);
    expect(await mirrorEvents(db, target, { name, batchSize: 3 })).toEqual({ name, events: 0, streams: 0, pages: 0, from: last, checkpoint: last, waitingFor: null });
  });

  test('an incremental run mirrors only the events appended since the checkpoint', async () => {
    await appendToSource(db, stream('a'), 2);
    await appendToSource(db, stream('b'), 2);
    const first = await mirrorEvents(db, target, { name, batchSize: 10 });
    await appendToSource(db, stream('a'), 1);
    await appendToSource(db, stream('c'), 2);
    const appended: string[] = [];
    const spy = interceptedTarget(target, async (requests, _call, append) => {
      for (const r of requests) for (const e of r.events) appended.push(e.id);
      await append(requests);
    });
    const second = await mirrorEvents(db, spy, { name, batchSize: 10 });
    expect(second).toMatchObject({ events: 3, streams: 2, pages: 1, from: first.checkpoint, checkpoint: await lastEvent(db) });
    const newIds = (
      await db.query<{ event_id: string }>('SELECT event_id FROM lifecycle_events WHERE (tx_id, position) > ($1::xid8, $2)', [first.checkpoint.txId, first.checkpoint.position])
    ).map((r) => r.event_id);
    expect(appended.sort()).toEqual([...newIds].sort());
    await expectSameStreams(db, target);
  });

  test('killed after appending a page but before saving its checkpoint, a rerun leaves exactly the source streams', async () => {
    await appendToSource(db, stream('a'), 3);
    await appendToSource(db, stream('b'), 2);
    await appendToSource(db, stream('a'), 2);
    // Page 2 (events 5..7, batch size 4) is appended, then the mirror dies.
    const dying = interceptedTarget(target, async (requests, call, append) => {
      await append(requests);
      if (call === 2) throw new Killed('killed between append and checkpoint');
    });
    await expect(mirrorEvents(db, dying, { name, batchSize: 4 })).rejects.toBeInstanceOf(Killed);
    const afterPage1 = await eventAt(db, 3);
    expect(await loadCheckpoint(db, name)).toEqual(afterPage1);
    // The last page was short and grows before the rerun: the rerun's page overlaps the target in part.
    await appendToSource(db, stream('a'), 1);
    await appendToSource(db, stream('b'), 1);
    const rerun = await mirrorEvents(db, target, { name, batchSize: 4 });
    expect(rerun).toMatchObject({ from: afterPage1, events: 5, checkpoint: await lastEvent(db) });
    await expectSameStreams(db, target);
  });

  test('killed half way through a page, a rerun with another batch size completes it without doubles', async () => {
    for (const label of ['a', 'b', 'c', 'd']) await appendToSource(db, stream(label), 2);
    await appendToSource(db, stream('a'), 2);
    const dying = interceptedTarget(target, async (requests, _call, append) => {
      await append(requests.slice(0, 2)); // two streams of the page reach the target, then the process dies
      throw new Killed('killed mid-page');
    });
    await expect(mirrorEvents(db, dying, { name, batchSize: 100 })).rejects.toBeInstanceOf(Killed);
    expect(await loadCheckpoint(db, name)).toEqual(MIRROR_START);
    const rerun = await mirrorEvents(db, target, { name, batchSize: 3 });
    expect(rerun).toMatchObject({ from: MIRROR_START, events: 10, streams: 4 });
    await expectSameStreams(db, target);
  });

  test('a checkpoint set back (restored from a backup) re-mirrors nothing twice', async () => {
    await appendToSource(db, stream('a'), 3);
    await appendToSource(db, stream('b'), 3);
    await mirrorEvents(db, target, { name, batchSize: 4 });
    const second = await eventAt(db, 1);
    await db.query('UPDATE event_mirror_checkpoints SET tx_id = $2::xid8, position = $3 WHERE name = $1', [name, second.txId, second.position]);
    await appendToSource(db, stream('a'), 1);
    const again = await mirrorEvents(db, target, { name, batchSize: 2 });
    expect(again).toMatchObject({ from: second, events: 5, checkpoint: await lastEvent(db) });
    await expectSameStreams(db, target);
  });

  test('a target stream that another writer changed stops the mirror with both revisions, and it is never skipped', async () => {
    await appendToSource(db, stream('a'), 1);
    await appendToSource(db, stream('x'), 2);
    await appendToSource(db, stream('b'), 1);
    await target.append([{ streamId: stream('x'), expectedRevision: NO_STREAM, events: [newEvent('Foreign')] }]);
    const attempt = mirrorEvents(db, target, { name, batchSize: 10 });
    await expect(attempt).rejects.toBeInstanceOf(MirrorDivergedError);
    const error = (await attempt.catch((e: unknown) => e)) as MirrorDivergedError;
    expect(error).toMatchObject({ streamId: stream('x'), expectedRevision: NO_STREAM, targetRevision: 0, retriable: false });
    expect(error.message).toContain(`target stream ${stream('x')} diverged`);
    expect(error.message).toContain('follow revision -1, the target is at revision 0');
    expect(error.message).toContain('at revision 0 the target holds event');
    expect(await loadCheckpoint(db, name)).toEqual(MIRROR_START);
    // Nothing was skipped: a second run stops at the same place.
    await expect(mirrorEvents(db, target, { name, batchSize: 1 })).rejects.toThrow(/customer-x-.* diverged/);
    const x = (await target.readStreams([stream('x')])).get(stream('x'))!;
    expect(x.map((e) => e.type)).toEqual(['Foreign']);
  });

  test('a target that lacks events the checkpoint says were mirrored (reset, or another target) stops the mirror', async () => {
    await appendToSource(db, stream('a'), 2);
    await mirrorEvents(db, target, { name });
    await appendToSource(db, stream('a'), 1);
    // Another target, as a reset one would be: the same store under other stream ids.
    const elsewhere = renamedTarget(target, '-elsewhere');
    const attempt = mirrorEvents(db, elsewhere, { name });
    await expect(attempt).rejects.toThrow(`target stream ${stream('a')} diverged from the source: the source's next events follow revision 1, the target is at revision -1; revisions 0 to 1 are missing`);
  });
}
