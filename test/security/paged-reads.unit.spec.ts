import { parseLifecycleConfig } from '@lifecycle/contracts';
import { eventStoreMigrations } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestLines } from '@lifecycle/projection';
import { readCustomerHistories, readCustomerRows, readImpressions, readModelMigrations } from '@lifecycle/readmodel';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';
// Not wired into the projection package's exports yet (README "Security", as-of computations): its
// reads are checked here, against the whole-table reads they stand for, until they are.
import { readCustomerHistoriesInPages, readCustomerRowsInPages, readImpressionsInPages } from '../../packages/projection/src/paged-reads.js';

describe('the paged reads of the exports answer what the whole-table reads answer', () => {
  const config = parseLifecycleConfig({});
  let db: SqlDatabase;
  beforeAll(async () => {
    db = await openPglite();
    await migrate(db, [...eventStoreMigrations, ...readModelMigrations]);
    await ingestLines(db, [...generateTouchpoints({ customers: 250, seed: 11 })].map((t) => JSON.stringify(t)), { config });
  });
  afterAll(() => db.close());

  test('customers histories and rows, in pages that do not divide the table', async () => {
    const histories = await readCustomerHistories(db);
    expect(histories!.length).toBeGreaterThan(200);
    expect(await readCustomerHistoriesInPages(db, 7)).toEqual(histories);
    expect(await readCustomerRowsInPages(db, 13)).toEqual(await readCustomerRows(db));
  });

  test('impressions up to any instant, a block at a time', async () => {
    const sorted = (facts: { channel: string; at: number }[]) => [...facts].sort((a, b) => a.at - b.at || (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0));
    for (const asOf of [Date.parse('2024-02-01T00:00:00Z'), Date.parse('2030-01-01T00:00:00Z')]) {
      const whole = await readImpressions(db, asOf);
      expect(whole.length).toBeGreaterThan(0);
      expect(sorted(await readImpressionsInPages(db, asOf, 1))).toEqual(sorted(whole));
    }
  });

  test('a store projected before histories were kept: null, as the whole-table read', async () => {
    await db.transaction(async (tx) => {
      await tx.query("UPDATE customers SET history = NULL WHERE customer_id = (SELECT max(customer_id) FROM customers)");
      expect(await readCustomerHistoriesInPages(tx, 7)).toBeNull();
      expect(await readCustomerHistories(tx)).toBeNull();
      throw new Error('rolled back');
    }).catch((error: Error) => expect(error.message).toBe('rolled back'));
  });
});
