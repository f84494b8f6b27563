import { randomUUID } from 'node:crypto';
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import type { EventStoreDBClient } from '@eventstore/db-client';
import { EventStoreDbEventStore, eventStoreMigrations, inMemoryEventStore, loadCheckpoint, mirrorEvents, sqlEventStore, type EventStore } from '@lifecycle/eventstore';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';
import { ScriptedClient } from './scripted-esdb-client.js';
import { appendToSource, expectSameStreams, interceptedTarget, Killed, mirrorContract, openSource, resetSource } from './mirror-contract.js';

describe('mirroring lifecycle_events (PGlite) to the in-memory store', () => mirrorContract(async () => inMemoryEventStore()));

describe('mirroring lifecycle_events (PGlite) to the SQL store (another PGlite)', () => {
  let targetDb: SqlDatabase;
  beforeAll(async () => {
    targetDb = await openPglite();
    await migrate(targetDb, eventStoreMigrations);
  });
  afterAll(() => targetDb.close());
  mirrorContract(async () => sqlEventStore(targetDb));
});

// The EventStoreDB adapter's own logic (per-stream appends, conflicts settled by re-reading) under
// the mirror, over a client that stands in for the server; the real server: mirror-eventstoredb.int.spec.ts.
describe('mirroring lifecycle_events (PGlite) to the EventStoreDB adapter over a scripted client', () =>
  mirrorContract(async () => new EventStoreDbEventStore('esdb://127.0.0.1:2113?tls=false', new ScriptedClient() as unknown as EventStoreDBClient)));

describe('mirrorEvents', () => {
  let db: SqlDatabase;
  beforeAll(async () => {
    db = await openSource();
  });
  afterAll(() => db.close());
  beforeEach(() => resetSource(db));

  test('follow mode mirrors events as they are committed, until aborted', async () => {
    const target = inMemoryEventStore();
    await appendToSource(db, 'customer-a', 2);
    const controller = new AbortController();
    const running = mirrorEvents(db, target, { name: 'follow', batchSize: 2, follow: true, pollIntervalMs: 5, signal: controller.signal });
    await until(async () => (await target.readStreams(['customer-a'])).get('customer-a')?.length === 2);
    await appendToSource(db, 'customer-a', 1);
    await appendToSource(db, 'customer-b', 3);
    await until(async () => (await target.readStreams(['customer-b'])).get('customer-b')?.length === 3);
    controller.abort();
    const summary = await running;
    expect(summary).toMatchObject({ name: 'follow', events: 6, streams: 2, from: 0, checkpoint: 6 });
    await expectSameStreams(db, target);
  });

  test('an abort while caught up in follow mode returns at once, not after the poll interval', async () => {
    const controller = new AbortController();
    // A pause longer than the test's own timeout (60 s): if the abort did not end it, the test
    // would fail by that timeout (and the pause would still end, so jest can exit).
    const running = mirrorEvents(db, inMemoryEventStore(), { name: 'idle', follow: true, pollIntervalMs: 120_000, signal: controller.signal });
    // Caught up and pausing: the pause listens for the abort.
    await until(async () => getEventListeners(controller.signal, 'abort').length > 0);
    controller.abort();
    await expect(running).resolves.toMatchObject({ events: 0, checkpoint: 0 });
  });

  test('retries a page whose append failed with a retriable error (target unavailable), then fails after the bound', async () => {
    await appendToSource(db, 'customer-a', 2);
    const store = inMemoryEventStore();
    const unavailable = () => Object.assign(new Error('EventStoreDB at 127.0.0.1:2113 is unavailable'), { retriable: true });
    const flaky = interceptedTarget(store, async (requests, call, append) => {
      if (call <= 2) throw unavailable();
      await append(requests);
    });
    const retries: number[] = [];
    const summary = await mirrorEvents(db, flaky, { name: 'flaky', retryDelayMs: 1, onRetry: (_e, attempt) => retries.push(attempt) });
    expect(retries).toEqual([1, 2]);
    expect(summary.events).toBe(2);
    await expectSameStreams(db, store);

    await appendToSource(db, 'customer-a', 1);
    const down = interceptedTarget(store, async () => {
      throw unavailable();
    });
    await expect(mirrorEvents(db, down, { name: 'flaky', retries: 3, retryDelayMs: 1 })).rejects.toThrow(/unavailable/);
    expect(down.calls).toBe(4);
    expect(await loadCheckpoint(db, 'flaky')).toBe(summary.checkpoint);

    const broken = interceptedTarget(store, async () => {
      throw new Error('not retriable');
    });
    await expect(mirrorEvents(db, broken, { name: 'flaky', retryDelayMs: 1 })).rejects.toThrow('not retriable');
    expect(broken.calls).toBe(1);
  });

  test('an abort while waiting to retry stops without saving the checkpoint of the page', async () => {
    await appendToSource(db, 'customer-a', 1);
    const controller = new AbortController();
    const down = interceptedTarget(inMemoryEventStore(), async () => {
      throw Object.assign(new Error('unavailable'), { retriable: true });
    });
    const running = mirrorEvents(db, down, { name: 'stop', retryDelayMs: 60_000, signal: controller.signal, onRetry: () => controller.abort() });
    await expect(running).resolves.toMatchObject({ events: 0, checkpoint: 0 });
    expect(await loadCheckpoint(db, 'stop')).toBe(0);
  });

  test('refuses a table whose stream revisions are not in position order instead of copying it wrongly', async () => {
    const ids = [randomUUID(), randomUUID()];
    await db.query(
      `INSERT INTO lifecycle_events (stream_id, revision, event_id, event_type, data) VALUES
       ('customer-a', 1, $1, 'A', '{}'), ('customer-a', 0, $2, 'A', '{}')`,
      ids,
    );
    await expect(mirrorEvents(db, inMemoryEventStore(), { name: 'order' })).rejects.toThrow(
      'lifecycle_events holds revision 0 of stream customer-a at position 2, right after revision 1 in position order',
    );
  });

  test('rejects a mirror without a name or with a batch size below 1', async () => {
    await expect(mirrorEvents(db, inMemoryEventStore(), { name: ' ' })).rejects.toThrow(RangeError);
    await expect(mirrorEvents(db, inMemoryEventStore(), { name: 'n', batchSize: 0 })).rejects.toThrow(/batchSize/);
  });

  test('property: however the mirror is killed (before, during or after appends) and restarted, with any batch sizes, the target ends equal to the source', async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), stream: fc.integer({ min: 0, max: 4 }), count: fc.integer({ min: 1, max: 4 }) }),
      fc.record({
        kind: fc.constant('mirror' as const),
        batchSize: fc.integer({ min: 1, max: 7 }),
        // Which append call dies, and how: before writing, after part of the page, after all of it.
        killAt: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        how: fc.constantFrom('before', 'partly', 'after'),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 7 }), async (steps, finalBatch) => {
        await resetSource(db);
        const target = inMemoryEventStore();
        for (const s of steps) {
          if (s.kind === 'append') {
            await appendToSource(db, `customer-${s.stream}`, s.count);
            continue;
          }
          const dying: EventStore = interceptedTarget(target, async (requests, call, append) => {
            if (call !== s.killAt) return append(requests);
            if (s.how === 'partly') await append(requests.slice(0, Math.ceil(requests.length / 2)));
            if (s.how === 'after') await append(requests);
            throw new Killed(`killed ${s.how} append ${call}`);
          });
          await mirrorEvents(db, dying, { name: 'prop', batchSize: s.batchSize }).catch((error: unknown) => {
            if (!(error instanceof Killed)) throw error;
          });
        }
        await mirrorEvents(db, target, { name: 'prop', batchSize: finalBatch });
        await expectSameStreams(db, target);
      }),
      { numRuns: 100 },
    );
  });
});

async function until(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
