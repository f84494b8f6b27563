import { randomUUID } from 'node:crypto';
import { NO_STREAM } from '@lifecycle/eventstore';
import { openEventStoreDb, type EventStoreDbEventStore, type EventStoreDbPosition } from '@lifecycle/eventstore/eventstoredb';
import { eventStoreContract } from './event-store-contract.js';
import { eventStoreDbServer } from './eventstoredb-server.js';

// Stream ids and event types are unique per test (see the contract suite), so a server that
// already holds events, from earlier runs or other suites, is fine.
const { connectionString, describeWithServer } = eventStoreDbServer('contract');

describeWithServer('EventStoreDB event store', () => {
  let store: EventStoreDbEventStore;
  beforeAll(async () => {
    store = await openEventStoreDb(connectionString);
  });
  afterAll(() => store?.close());

  eventStoreContract(async () => store);

  test('subscribeToType delivers events of exactly that type, from the start and after a position, until stopped', async () => {
    const run = randomUUID().slice(0, 8);
    const type = `Seen${run}`;
    const event = (n: number, t = type) => ({ id: randomUUID(), type: t, data: { n } });
    await store.append([{ streamId: `sub-a-${run}`, expectedRevision: NO_STREAM, events: [event(1), event(0, `${type}Not`)] }]);

    const seen: number[] = [];
    const positions: EventStoreDbPosition[] = [];
    const subscription = store.subscribeToType(type, (e, position) => {
      seen.push((e.data as { n: number }).n);
      positions.push(position);
    });
    // Appended after subscribing: delivered live, on another stream.
    await store.append([{ streamId: `sub-b-${run}`, expectedRevision: NO_STREAM, events: [event(2)] }]);
    await waitFor(() => seen.length >= 2, subscription.done);
    await subscription.stop();
    await expect(subscription.done).resolves.toBeUndefined();
    await store.append([{ streamId: `sub-a-${run}`, expectedRevision: 1, events: [event(3)] }]);
    expect(seen).toEqual([1, 2]);

    const resumed: number[] = [];
    const again = store.subscribeToType(type, (e) => void resumed.push((e.data as { n: number }).n), { from: positions[0]! });
    await waitFor(() => resumed.length >= 2, again.done);
    await again.stop();
    expect(resumed).toEqual([2, 3]);
  });
});

/** Polls until `condition` holds; a subscription that fails meanwhile fails the wait at once. */
async function waitFor(condition: () => boolean, failed: Promise<void>, timeoutMs = 10_000): Promise<void> {
  let failure: unknown;
  failed.catch((error: unknown) => (failure = error));
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (failure !== undefined) throw failure;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
