import { randomUUID } from 'node:crypto';
import { NO_STREAM, type NewEvent, type SqlEventStore } from '@lifecycle/eventstore';

const event = (n: number): NewEvent => ({ id: randomUUID(), type: 'TouchpointRecorded', data: { n } });

/** What the SQL store adds to the EventStore contract, on PGlite and PostgreSQL alike. */
export function sqlEventStoreContract(open: () => Promise<SqlEventStore>): void {
  test('readStreamsAfter gives each stream from a revision on, in order; -1 the whole stream', async () => {
    const store = await open();
    const run = randomUUID().slice(0, 8);
    const [a, b, c, none] = ['a', 'b', 'c', 'none'].map((name) => `customer-${name}-${run}`) as [string, string, string, string];
    // Interleaved appends, so that storage order is not each stream's order.
    await store.append([{ streamId: a, expectedRevision: NO_STREAM, events: [event(0), event(1)] }, { streamId: b, expectedRevision: NO_STREAM, events: [event(0)] }]);
    await store.append([{ streamId: b, expectedRevision: 0, events: [event(1), event(2)] }, { streamId: a, expectedRevision: 1, events: [event(2)] }]);
    await store.append([{ streamId: c, expectedRevision: NO_STREAM, events: [event(0)] }]);

    const read = await store.readStreamsAfter(new Map([[a, 0], [b, -1], [c, 0], [none, -1]]));
    const summary = Object.fromEntries([...read].map(([id, events]) => [id, events.map((e) => [e.revision, (e.data as { n: number }).n])]));
    expect(summary).toEqual({ [a]: [[1, 1], [2, 2]], [b]: [[0, 0], [1, 1], [2, 2]] });
    expect(await store.readStreamsAfter(new Map())).toEqual(new Map());
  });
}
