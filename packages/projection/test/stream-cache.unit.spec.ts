import { randomUUID } from 'node:crypto';
import { NO_STREAM, eventStoreMigrations, sqlEventStore, type NewEvent, type SqlEventStore } from '@lifecycle/eventstore';
import { StreamCache } from '@lifecycle/projection';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';

const event = (n: number): NewEvent => ({ id: randomUUID(), type: 'TouchpointRecorded', data: { n } });
const numbers = (streams: Map<string, { data: unknown }[]>, id: string) => streams.get(id)?.map((e) => (e.data as { n: number }).n);

describe('StreamCache', () => {
  let db: SqlDatabase;
  let store: SqlEventStore;
  /** The `after` revisions each read asked the store for. */
  let asked: Map<string, number>[];
  let counted: SqlEventStore;

  beforeEach(async () => {
    db = await openPglite();
    await migrate(db, eventStoreMigrations);
    store = sqlEventStore(db);
    asked = [];
    counted = { ...store, readStreamsAfter: (after) => (asked.push(new Map(after)), store.readStreamsAfter(after)) };
  });
  afterEach(() => db.close());

  test('reads whole streams once, then only what they gained', async () => {
    const cache = new StreamCache();
    await store.append([{ streamId: 'a', expectedRevision: NO_STREAM, events: [event(0), event(1)] }]);
    expect(numbers(await cache.read(counted, ['a', 'b']), 'a')).toEqual([0, 1]);
    await store.append([{ streamId: 'a', expectedRevision: 1, events: [event(2)] }, { streamId: 'b', expectedRevision: NO_STREAM, events: [event(0)] }]);

    const second = await cache.read(counted, ['a', 'b']);
    expect(numbers(second, 'a')).toEqual([0, 1, 2]);
    expect(numbers(second, 'b')).toEqual([0]);
    expect(asked).toEqual([new Map([['a', -1], ['b', -1]]), new Map([['a', 1], ['b', -1]])]);
    expect(cache.size).toBe(4);
  });

  test('what a caller does with the streams it got does not change the cache', async () => {
    const cache = new StreamCache();
    await store.append([{ streamId: 'a', expectedRevision: NO_STREAM, events: [event(0)] }]);
    const first = await cache.read(counted, ['a']);
    first.get('a')!.push({ ...event(99), streamId: 'a', revision: 1 });
    expect(numbers(await cache.read(counted, ['a']), 'a')).toEqual([0]);
  });

  test('an append that rolled back is not remembered: the stream is read as committed', async () => {
    const cache = new StreamCache();
    await store.append([{ streamId: 'a', expectedRevision: NO_STREAM, events: [event(0)] }]);
    // A projector's transaction: reads through the cache, appends, then fails.
    const failed = db.transaction(async (tx) => {
      const streams = await cache.read(sqlEventStore(tx), ['a']);
      await sqlEventStore(tx).append([{ streamId: 'a', expectedRevision: streams.get('a')!.length - 1, events: [event(1)] }]);
      throw new Error('crash before commit');
    });
    await expect(failed).rejects.toThrow('crash before commit');
    // Another writer takes revision 1 with other content.
    await store.append([{ streamId: 'a', expectedRevision: 0, events: [event(7)] }]);
    expect(numbers(await cache.read(counted, ['a']), 'a')).toEqual([0, 7]);
  });

  test('past its limit it drops the least recently read streams and reads them whole again', async () => {
    const cache = new StreamCache(3);
    for (const id of ['a', 'b', 'c']) await store.append([{ streamId: id, expectedRevision: NO_STREAM, events: [event(0), event(1)] }]);
    await cache.read(counted, ['a']);
    await cache.read(counted, ['b']);
    expect(cache.size).toBe(2); // a was dropped to make room for b
    await cache.read(counted, ['c', 'b']);
    expect(cache.size).toBe(2);
    asked = [];
    expect(numbers(await cache.read(counted, ['a', 'b']), 'a')).toEqual([0, 1]);
    expect(asked).toEqual([new Map([['a', -1], ['b', 1]])]);
  });
});
