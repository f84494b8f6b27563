import { randomUUID } from 'node:crypto';
import { NO_STREAM as ESDB_NO_STREAM, WrongExpectedVersionError, type EventStoreDBClient, type Position } from '@eventstore/db-client';
import { ConcurrencyError, NO_STREAM } from '@lifecycle/eventstore';
import { EventStoreDbEventStore, EventStoreDbUnavailableError, hostsOf, openEventStoreDb, toExpectedRevision, toRevision } from '@lifecycle/eventstore/eventstoredb';
import { eventStoreContract } from './event-store-contract.js';
import { ScriptedClient } from './scripted-esdb-client.js';

// Nothing listens on port 1 (binding it needs root); the connection is refused at once.
const CLOSED = 'esdb://admin:s3cret@127.0.0.1:1?tls=false&defaultDeadline=2000';

describe('EventStoreDB revisions', () => {
  test('the port revision maps to the client expected revision', () => {
    expect(toExpectedRevision(NO_STREAM)).toBe(ESDB_NO_STREAM);
    expect(toExpectedRevision(0)).toBe(0n);
    expect(toExpectedRevision(41)).toBe(41n);
    for (const bad of [-2, 1.5, Number.NaN]) expect(() => toExpectedRevision(bad)).toThrow(RangeError);
  });

  test('server revisions become numbers, never silently rounded', () => {
    expect(toRevision(0n)).toBe(0);
    expect(toRevision(7n)).toBe(7);
    expect(toRevision(BigInt(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => toRevision(2n ** 53n)).toThrow(RangeError);
  });
});

describe('EventStoreDB connection strings', () => {
  test('errors name the hosts, not the credentials', () => {
    expect(hostsOf('esdb://admin:changeit@db.internal:2113?tls=false')).toBe('db.internal:2113');
    expect(hostsOf('esdb://a:2113,b:2113,c:2113?nodePreference=leader')).toBe('a:2113,b:2113,c:2113');
    expect(hostsOf('esdb+discover://ops:p%40ss@cluster.example.com/')).toBe('cluster.example.com');
    expect(hostsOf('esdb://localhost')).toBe('localhost');
  });

  test('an invalid connection string is rejected with the password hidden', () => {
    const attempt = () => new EventStoreDbEventStore('esdb://admin:s3cret@127.0.0.1:s3cret');
    expect(attempt).toThrow(/invalid EventStoreDB connection string for 127\.0\.0\.1:\*\*\*/);
    let message = '';
    try {
      attempt();
    } catch (error) {
      message = (error as Error).message;
      // The client's parse error holds the whole string; it must not ride along as the cause.
      expect((error as Error).cause).toBeUndefined();
    }
    expect(message).toContain('expected port number');
    expect(message).not.toContain('s3cret');
  });
});

describe('EventStoreDB unreachable', () => {
  const expectUnavailable = (error: unknown) => {
    expect(error).toBeInstanceOf(EventStoreDbUnavailableError);
    const e = error as EventStoreDbUnavailableError;
    expect(e.retriable).toBe(true);
    expect(e.message).toMatch(/^EventStoreDB at 127\.0\.0\.1:1 is unavailable \(.*ECONNREFUSED.*\); check that the server is running/);
    expect(e.message).toContain('tls');
    expect(e.message).not.toContain('s3cret');
    expect(e.cause).toBeInstanceOf(Error);
  };

  test('opening fails fast with an error that names the host and what to check', async () => {
    const error = await openEventStoreDb(CLOSED).catch((e: unknown) => e);
    expectUnavailable(error);
  });

  test('a secure connection string (the default) fails the same way', async () => {
    const error = await openEventStoreDb('esdb://admin:s3cret@127.0.0.1:1?defaultDeadline=2000').catch((e: unknown) => e);
    expectUnavailable(error);
  });

  test('every operation translates the failure', async () => {
    const store = new EventStoreDbEventStore(CLOSED);
    try {
      const event = { id: randomUUID(), type: 'A', data: {} };
      expectUnavailable(await store.append([{ streamId: 's', expectedRevision: NO_STREAM, events: [event] }]).catch((e: unknown) => e));
      expectUnavailable(
        await store
          .append([
            { streamId: 's', expectedRevision: NO_STREAM, events: [event] },
            { streamId: 't', expectedRevision: NO_STREAM, events: [{ ...event, id: randomUUID() }] },
          ])
          .catch((e: unknown) => e),
      );
      expectUnavailable(await store.readStreams(['s']).catch((e: unknown) => e));
      const readAll = async () => {
        for await (const _ of store.readAllOfType('A')) throw new Error('no events expected');
      };
      expectUnavailable(await readAll().catch((e: unknown) => e));
      const subscription = store.subscribeToType('A', () => undefined);
      expectUnavailable(await subscription.done.catch((e: unknown) => e));
      await subscription.stop();
    } finally {
      await store.close();
    }
  });
});

describe('EventStoreDB adapter over a scripted client', () => {
  let client: ScriptedClient;
  const open = () => {
    client = new ScriptedClient();
    return new EventStoreDbEventStore('esdb://127.0.0.1:2113?tls=false', client as unknown as EventStoreDBClient);
  };

  eventStoreContract(async () => open());

  test('a stale single append is a ConcurrencyError with the actual revision and the vendor error as cause', async () => {
    const store = open();
    const event = () => ({ id: randomUUID(), type: 'A', data: {} });
    await store.append([{ streamId: 's', expectedRevision: NO_STREAM, events: [event(), event()] }]);
    const error = await store.append([{ streamId: 's', expectedRevision: NO_STREAM, events: [event()] }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConcurrencyError);
    expect(error).toMatchObject({ streamId: 's', expectedRevision: NO_STREAM, actualRevision: 1 });
    expect((error as Error).cause).toBeInstanceOf(WrongExpectedVersionError);
  });

  test('a retried append of several streams completes the one a crash left out, and rewrites none', async () => {
    const store = open();
    const s = [{ id: randomUUID(), type: 'A', data: { s: 1 } }];
    const t = [{ id: randomUUID(), type: 'A', data: { t: 1 } }];
    await store.append([{ streamId: 's', expectedRevision: NO_STREAM, events: s }]);
    await store.append([
      { streamId: 's', expectedRevision: NO_STREAM, events: s },
      { streamId: 't', expectedRevision: NO_STREAM, events: t },
    ]);
    expect(client.appended).toEqual([s[0]!.id, t[0]!.id]);
  });

  test('readAllOfType skips events of that type in system streams', async () => {
    const store = open();
    await store.append([{ streamId: 'customer-1', expectedRevision: NO_STREAM, events: [{ id: randomUUID(), type: 'A', data: { n: 1 } }] }]);
    const pages = [];
    for await (const page of store.readAllOfType('A')) pages.push(page.map((e) => [e.streamId, e.revision, e.data]));
    expect(pages).toEqual([[['customer-1', 0, { n: 1 }]]]);
  });

  test('subscribeToType delivers past and new events of exactly that type, resumes after a position, and stops', async () => {
    const store = open();
    const ofType = (n: number) => ({ id: randomUUID(), type: 'Seen', data: { n } });
    await store.append([{ streamId: 'x', expectedRevision: NO_STREAM, events: [ofType(1), { id: randomUUID(), type: 'SeenTwice', data: {} }] }]);
    const seen: number[] = [];
    const positions: Position[] = [];
    const subscription = store.subscribeToType('Seen', async (event, position) => {
      seen.push((event.data as { n: number }).n);
      positions.push(position);
    });
    await store.append([{ streamId: 'x', expectedRevision: 1, events: [ofType(2)] }]);
    await waitFor(() => seen.length === 2);
    await subscription.stop();
    await expect(subscription.done).resolves.toBeUndefined();
    await store.append([{ streamId: 'x', expectedRevision: 2, events: [ofType(3)] }]);
    expect(seen).toEqual([1, 2]);

    const resumed: number[] = [];
    const again = store.subscribeToType('Seen', (event) => void resumed.push((event.data as { n: number }).n), { from: positions[0]! });
    await waitFor(() => resumed.length === 2);
    await again.stop();
    expect(resumed).toEqual([2, 3]);
  });

  test('a handler that throws ends the subscription with its error', async () => {
    const store = open();
    await store.append([{ streamId: 'x', expectedRevision: NO_STREAM, events: [{ id: randomUUID(), type: 'Seen', data: {} }] }]);
    const subscription = store.subscribeToType('Seen', () => {
      throw new Error('handler failed');
    });
    await expect(subscription.done).rejects.toThrow('handler failed');
    expect(client.subscribers.size).toBe(0);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
