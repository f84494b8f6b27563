import { parseLifecycleConfig } from '@lifecycle/contracts';
import { eventStoreMigrations } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestLines } from '@lifecycle/projection';
import { readCustomerHistories, readCustomerPage, readCustomerRows, readImpressions, readModelMigrations } from '@lifecycle/readmodel';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';

/** The whole-table reads of the exports, read in pages, against one plain statement each. */
describe('reads in pages answer what one statement over the whole table answers', () => {
  const config = parseLifecycleConfig({});
  let db: SqlDatabase;
  beforeAll(async () => {
    db = await openPglite();
    await migrate(db, [...eventStoreMigrations, ...readModelMigrations]);
    await ingestLines(db, [...generateTouchpoints({ customers: 250, seed: 11 })].map((t) => JSON.stringify(t)), { config });
  });
  afterAll(() => db.close());

  const byId = (a: { customerId: string }, b: { customerId: string }) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0);

  test('histories and rows, in pages that do not divide the table, sorted by customerId', async () => {
    const records = await db.query<{ customer_id: string; history: string }>('SELECT customer_id, history FROM customers');
    expect(records.length).toBeGreaterThan(200);
    const expected = records.map((r) => ({ customerId: r.customer_id, history: JSON.parse(r.history) as unknown })).sort(byId);
    expect(await readCustomerHistories(db, 7)).toEqual(expected);
    expect(await readCustomerHistories(db)).toEqual(expected);
    const rows = await readCustomerRows(db, 13);
    expect(rows.map((r) => r.customerId)).toEqual(expected.map((h) => h.customerId));
    expect(await readCustomerRows(db)).toEqual(rows);
  });

  test('customer pages: every row once, in code-point order, a page across several statements', async () => {
    const all = await readCustomerRows(db);
    const paged = [];
    let after: string | undefined;
    for (;;) {
      const page = await readCustomerPage(db, after, 37);
      paged.push(...page);
      if (page.length < 37) break;
      after = page[page.length - 1]!.customerId;
    }
    expect(paged).toEqual(all);
    // Longer than one statement (500 rows): cut into statements, the same rows.
    expect(await readCustomerPage(db, undefined, 5000)).toEqual(all);
  });

  test('impressions up to any instant, a block at a time', async () => {
    const sorted = (facts: { channel: string; at: number }[]) => [...facts].sort((a, b) => a.at - b.at || (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0));
    for (const asOf of [Date.parse('2024-02-01T00:00:00Z'), Date.parse('2030-01-01T00:00:00Z')]) {
      const records = await db.query<{ channel: string; at: string; cost_currency: string | null; cost_amount: string | null }>('SELECT * FROM ad_impressions WHERE at <= $1', [asOf]);
      expect(records.length).toBeGreaterThan(0);
      const expected = records.map((r) => ({ channel: r.channel, at: Number(r.at), ...(r.cost_currency !== null ? { cost: { currency: r.cost_currency, amountMinor: Number(r.cost_amount) } } : {}) }));
      expect(sorted(await readImpressions(db, asOf, 1))).toEqual(sorted(expected));
      expect(sorted(await readImpressions(db, asOf))).toEqual(sorted(expected));
    }
  });

  test('a store projected before histories were kept: null, whichever page the row is on', async () => {
    await db
      .transaction(async (tx) => {
        await tx.query('UPDATE customers SET history = NULL WHERE customer_id = (SELECT max(customer_id) FROM customers)');
        expect(await readCustomerHistories(tx, 7)).toBeNull();
        throw new Error('rolled back');
      })
      .catch((error: Error) => expect(error.message).toBe('rolled back'));
  });
});
