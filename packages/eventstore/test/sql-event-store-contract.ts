import { randomUUID } from 'node:crypto';
import { ConcurrencyError, NO_STREAM, type NewEvent, type SqlEventStore } from '@lifecycle/eventstore';

const event = (n: number): NewEvent => ({ id: randomUUID(), type: 'TouchpointRecorded', data: { n } });

/** What the SQL store adds to the EventStore contract, on PGlite and PostgreSQL alike. */
export function sqlEventStoreContract(open: () => Promise<SqlEventStore>): void {
  const streams = () => {
    const run = randomUUID().slice(0, 8);
    return ['a', 'b', 'none'].map((name) => `customer-${name}-${run}`) as [string, string, string];
  };

  test('lastRevisions gives the last revision of each stream that has events', async () => {
    const store = await open();
    const [a, b, none] = streams();
    // Interleaved appends, so that storage order is not each stream's order.
    await store.append([{ streamId: a, expectedRevision: NO_STREAM, events: [event(0), event(1)] }, { streamId: b, expectedRevision: NO_STREAM, events: [event(0)] }]);
    await store.append([{ streamId: b, expectedRevision: 0, events: [event(1), event(2)] }]);
    expect(await store.lastRevisions([a, b, none])).toEqual(new Map([[a, 1], [b, 2]]));
    expect(await store.lastRevisions([])).toEqual(new Map());
  });

  test('insert writes events at the revisions they carry; a taken revision or a recorded id is a ConcurrencyError', async () => {
    const store = await open();
    const [a] = streams();
    const first = { ...event(0), streamId: a, revision: 0 };
    const second = { ...event(1), streamId: a, revision: 1 };
    await store.insert([first, second]);
    expect((await store.readStreams([a])).get(a)!.map((e) => [e.revision, e.id])).toEqual([[0, first.id], [1, second.id]]);
    await expect(store.insert([{ ...event(2), streamId: a, revision: 1 }])).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(store.insert([{ ...second, revision: 2 }])).rejects.toBeInstanceOf(ConcurrencyError);
  });

  test('data survives the bulk load whatever its characters', async () => {
    const store = await open();
    const [a] = streams();
    const data = { text: 'tab\there, line\nbreak, cr\r, back\\slash \\N, "quoted", ünïcødé 😀, \u0001', nested: { list: [1, null, 'x\ty'] }, none: null };
    const recorded = { id: randomUUID(), type: 'TouchpointRecorded', data, streamId: a, revision: 0 };
    await store.insert([recorded]);
    expect((await store.readStreams([a])).get(a)!.map((e) => e.data)).toEqual([data]);
  });

  test('findById gives the data of the recorded events among the ids', async () => {
    const store = await open();
    const [a] = streams();
    const recorded = event(7);
    await store.append([{ streamId: a, expectedRevision: NO_STREAM, events: [recorded] }]);
    expect(await store.findById([recorded.id, randomUUID()])).toEqual(new Map([[recorded.id, { n: 7 }]]));
  });
}
