import { randomUUID } from 'node:crypto';
import { ConcurrencyError, NO_STREAM, type EventStore, type NewEvent } from '@lifecycle/eventstore';

const event = (type = 'TouchpointRecorded', data: unknown = { n: 1 }): NewEvent => ({ id: randomUUID(), type, data });

/**
 * The behaviour every EventStore adapter must have. `open` gives a store over empty streams
 * (stream ids are made unique per test, so a shared database is fine).
 */
export function eventStoreContract(open: () => Promise<EventStore>): void {
  let store: EventStore;
  let stream: (name: string) => string;
  beforeEach(async () => {
    store = await open();
    const run = randomUUID().slice(0, 8);
    stream = (name) => `${name}-${run}`;
  });

  test('appends to a new stream and reads it back in order, with revisions from 0', async () => {
    const events = [event('A', { a: 1 }), event('B', { b: [2, 'x'] })];
    await store.append([{ streamId: stream('customer-a'), expectedRevision: NO_STREAM, events }]);
    const read = (await store.readStreams([stream('customer-a'), stream('customer-none')]));
    expect(read.has(stream('customer-none'))).toBe(false);
    expect(read.get(stream('customer-a'))!.map((e) => [e.revision, e.id, e.type, e.data])).toEqual([
      [0, events[0]!.id, 'A', { a: 1 }],
      [1, events[1]!.id, 'B', { b: [2, 'x'] }],
    ]);
  });

  test('appends after the expected revision', async () => {
    await store.append([{ streamId: stream('s'), expectedRevision: NO_STREAM, events: [event()] }]);
    await store.append([{ streamId: stream('s'), expectedRevision: 0, events: [event(), event()] }]);
    expect((await store.readStreams([stream('s')])).get(stream('s'))!.map((e) => e.revision)).toEqual([0, 1, 2]);
  });

  test('rejects an append at a stale revision with a ConcurrencyError and writes nothing', async () => {
    await store.append([{ streamId: stream('s'), expectedRevision: NO_STREAM, events: [event()] }]);
    const attempt = store.append([
      { streamId: stream('t'), expectedRevision: NO_STREAM, events: [event()] },
      { streamId: stream('s'), expectedRevision: NO_STREAM, events: [event()] },
    ]);
    await expect(attempt).rejects.toBeInstanceOf(ConcurrencyError);
    const read = await store.readStreams([stream('s'), stream('t')]);
    expect(read.get(stream('s'))).toHaveLength(1);
    expect(read.has(stream('t'))).toBe(false);
  });

  test('a repeated append (same ids at the same revisions) is idempotent', async () => {
    const events = [event(), event()];
    await store.append([{ streamId: stream('s'), expectedRevision: NO_STREAM, events }]);
    await store.append([{ streamId: stream('s'), expectedRevision: NO_STREAM, events }]);
    expect((await store.readStreams([stream('s')])).get(stream('s'))).toHaveLength(2);
  });

  test('reads all events of one type across streams in append order, by pages', async () => {
    const type = `Type${randomUUID().slice(0, 8)}`;
    for (const name of ['x', 'y', 'z']) {
      await store.append([{ streamId: stream(name), expectedRevision: NO_STREAM, events: [event(type, { name }), event('Other')] }]);
    }
    const pages = [];
    for await (const page of store.readAllOfType(type, 2)) pages.push(page.map((e) => (e.data as { name: string }).name));
    expect(pages).toEqual([['x', 'y'], ['z']]);
  });

  test('reads back stream ids and data with line breaks, tabs, backslashes, quotes and other scripts as written', async () => {
    const type = `Type${randomUUID().slice(0, 8)}`;
    const awkward = 'line\nbreak\ttab\\back "quoted" \u00e9\u4e2d\ud83d\ude00';
    const data = { text: awkward, nested: { list: [1, -2.5, null, true, awkward], big: 12345678901234 } };
    const id = stream(`customer-${awkward}`);
    await store.append([{ streamId: id, expectedRevision: NO_STREAM, events: [event(type, data), event(type, { n: 2 })] }]);
    const read = (await store.readStreams([id])).get(id)!;
    expect(read.map((e) => [e.streamId, e.revision, e.type, e.data])).toEqual([
      [id, 0, type, data],
      [id, 1, type, { n: 2 }],
    ]);
    const all = [];
    for await (const page of store.readAllOfType(type)) all.push(...page.map((e) => [e.streamId, e.data]));
    expect(all).toEqual([
      [id, data],
      [id, { n: 2 }],
    ]);
  });
}
