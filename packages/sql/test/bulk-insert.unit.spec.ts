import { bulkInsert, openPglite, type SqlDatabase } from '@lifecycle/sql';

const COLUMNS = { id: 'text', n: 'bigint', note: 'text', amounts: 'jsonb' } as const;
const ADD = 'ON CONFLICT (id) DO UPDATE SET n = counted.n + EXCLUDED.n, note = EXCLUDED.note, amounts = EXCLUDED.amounts';

// Text that COPY's format must escape, and JSON inside JSON.
const record = (i: number, n: number) => ({
  id: `k-${i}`,
  n,
  note: i % 3 === 0 ? null : `tab\there, line\nbreak, back\\slash, "quoted" ${i}`,
  amounts: { EUR: i, nested: { text: 'a\tb\\c\n' } },
});
const records = (count: number, n: number) => Array.from({ length: count }, (_, i) => record(i, n));

const table = (db: SqlDatabase) =>
  db.query<{ id: string; n: number; note: string | null; amounts: unknown; updated: boolean }>(
    'SELECT id, n, note, amounts, updated_at IS NOT NULL AS updated FROM counted ORDER BY id',
  );

describe('bulkInsert writes the same rows whether it goes through JSON (few records) or COPY (many)', () => {
  let db: SqlDatabase;
  beforeEach(async () => {
    db = await openPglite();
    await db.exec('CREATE TABLE counted (id text PRIMARY KEY, n bigint NOT NULL, note text, amounts jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())');
  });
  afterEach(() => db.close());

  test.each([
    ['JSON', 4_999],
    ['COPY', 5_000],
    ['COPY, in chunks', 45_001],
  ])('%s: inserts, then adds on conflict, twice in one transaction, escaped text and JSON intact', async (_path, count) => {
    await db.transaction(async (tx) => {
      await bulkInsert(tx, 'counted', COLUMNS, records(count, 1), ADD);
      await bulkInsert(tx, 'counted', COLUMNS, records(count, 2), ADD);
    });
    const rows = await table(db);
    expect(rows).toHaveLength(count);
    const expected = records(count, 3).sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(rows).toEqual(expected.map((r) => ({ ...r, updated: true })));
  });

  test('COPY without ON CONFLICT refuses a key already there, as INSERT does, and the transaction writes nothing', async () => {
    await bulkInsert(db, 'counted', COLUMNS, records(1, 1));
    await expect(db.transaction((tx) => bulkInsert(tx, 'counted', COLUMNS, records(5_000, 1)))).rejects.toThrow(/duplicate key/);
    expect(await table(db)).toHaveLength(1);
  });
});
