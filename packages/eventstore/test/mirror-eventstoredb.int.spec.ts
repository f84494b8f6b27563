import { randomUUID } from 'node:crypto';
import { mirrorEvents } from '@lifecycle/eventstore';
import { openEventStoreDb, type EventStoreDbEventStore } from '@lifecycle/eventstore/eventstoredb';
import type { SqlDatabase } from '@lifecycle/sql';
import { appendToSource, expectSameStreams, interceptedTarget, Killed, mirrorContract, openSource } from './mirror-contract.js';
import { eventStoreDbServer } from './eventstoredb-server.js';

// Stream ids are unique per test, so a server that already holds events is fine.
const { connectionString, describeWithServer } = eventStoreDbServer('mirror');

describeWithServer('mirroring lifecycle_events (PGlite) to EventStoreDB', () => {
  let store: EventStoreDbEventStore;
  beforeAll(async () => {
    store = await openEventStoreDb(connectionString);
  });
  afterAll(() => store?.close());

  mirrorContract(async () => store);

  describe('a larger outbox', () => {
    let db: SqlDatabase;
    beforeAll(async () => {
      db = await openSource();
    });
    afterAll(() => db.close());

    test('hundreds of streams, killed after a page reached the server, end up exactly once in EventStoreDB', async () => {
      const run = randomUUID().slice(0, 8);
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 150; i++) await appendToSource(db, `customer-${i}-${run}`, 1 + ((i + round) % 3));
      }
      const dying = interceptedTarget(store, async (requests, call, append) => {
        await append(requests);
        if (call === 3) throw new Killed('killed between append and checkpoint');
      });
      await expect(mirrorEvents(db, dying, { name: run, batchSize: 200 })).rejects.toBeInstanceOf(Killed);
      const summary = await mirrorEvents(db, store, { name: run, batchSize: 128 });
      expect(summary.streams).toBe(150);
      await expectSameStreams(db, store);
    });
  });
});
