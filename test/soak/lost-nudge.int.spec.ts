import { openLifecycleStore } from '@lifecycle/projection';
import { nudgeCustomers, takeNudges } from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { createTestDatabase } from '../support/postgres.js';

// Found by the fault soak (24 cycles, seed 7): one customer's row kept the channel of its
// visitor's *second* impression ("email"), its streams held the first one ("affiliate"), and
// `replay` repaired the row. The customer's visitor had nine impressions in two weeks, on
// another partition than the customer, projected by another instance while the customer's owner
// took nudges (after a crash in commit and a kill, partitions moving).
//
// The cause, shown here with two transactions on PostgreSQL: an instance that projects a
// visitor's impression nudges the customer's owner with `INSERT … ON CONFLICT DO NOTHING`
// (packages/readmodel/src/bookkeeping.ts, nudgeCustomers). When a nudge for that customer is
// already there, the insert does nothing and relies on it; if the owner takes that nudge
// (`DELETE … RETURNING`, takeNudges) while the inserting transaction is still open, the owner
// re-folds the customer without the new impression (not committed yet: the nudge taker does not
// lock the visitor), and once the inserter commits no nudge is left: the customer is never
// re-folded with it. A lost wake-up.
//
// The first fix (nudgeCustomers) was `ON CONFLICT (customer_id) DO UPDATE`: the update locked
// the existing nudge row, so a concurrent DELETE of it waited for the inserter's COMMIT. Projector
// instances then waited on each other's nudges (most of their lock waits in the bench). Now a
// nudge is a row of its own, never a conflict: the owner takes the nudges committed before its
// DELETE, without waiting, and one committed later stays for its next transaction. This test
// failed with DO NOTHING.
describe('nudges between projector instances', () => {
  test("a nudge left while its customer's owner takes the previous one is not lost (lost wake-up, as with INSERT … ON CONFLICT DO NOTHING in nudgeCustomers)", async () => {
    const database = await createTestDatabase();
    let db: SqlDatabase | undefined;
    try {
      db = await openLifecycleStore({ databaseUrl: database.url });
      const store = db;
      const customer = 'c-visited';
      await store.transaction((tx) => nudgeCustomers(tx, new Map([[customer, 0]]))); // an earlier impression's nudge, not taken yet

      // The impression's transaction: its nudge, then (in the projector) its events; open until released.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let nudged!: () => void;
      const nudgeWritten = new Promise<void>((resolve) => (nudged = resolve));
      let insertCommittedAt = Number.POSITIVE_INFINITY;
      const inserter = store
        .transaction(async (tx: SqlExecutor) => {
          await nudgeCustomers(tx, new Map([[customer, 0]]));
          nudged();
          await held;
        })
        .then(() => (insertCommittedAt = performance.now()));
      await nudgeWritten;

      // The owner takes its nudges meanwhile (and would read the visitor's impressions next).
      let takenAt = Number.NaN;
      const taker = store.transaction((tx) => takeNudges(tx, [0])).then((ids) => ((takenAt = performance.now()), ids));
      await new Promise((resolve) => setTimeout(resolve, 300));
      release();
      await inserter;
      expect(await taker).toEqual([customer]);
      const left = await store.query<{ customer_id: string }>('SELECT customer_id FROM customer_nudges');
      // Either the owner took the nudge after the impression committed (then it read it), or a
      // nudge is still there for its next transaction (before the fix: neither).
      expect(takenAt > insertCommittedAt || left.length === 1).toBe(true);
    } finally {
      await db?.close();
      await database.drop();
    }
  });
});
