import { openPglite, type SqlDatabase } from '@lifecycle/sql';

// pg_class.reltuples: -1 until the table's statistics are first gathered.
const tuples = async (db: SqlDatabase) => Number((await db.query<{ reltuples: number }>("SELECT reltuples FROM pg_class WHERE relname = 'grows'"))[0]!.reltuples);
const grow = (db: SqlDatabase, rows: number) => db.query('INSERT INTO grows SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, $1::int) g', [rows]);

describe('the embedded store gathers statistics itself (PGlite runs no autovacuum)', () => {
  let db: SqlDatabase;
  beforeEach(async () => {
    db = await openPglite();
    await db.exec('CREATE TABLE grows (n integer, filler text)');
  });
  afterEach(() => db.close());

  test('analyzes a table that grew by a tenth and a megabyte, and leaves one that did not', async () => {
    await grow(db, 10);
    await db.refreshStatistics!();
    expect(await tuples(db)).toBe(-1);

    await grow(db, 10_000);
    await db.refreshStatistics!();
    expect(await tuples(db)).toBe(10_010);

    await grow(db, 200);
    await db.refreshStatistics!();
    expect(await tuples(db)).toBe(10_010);

    await grow(db, 10_000);
    await db.refreshStatistics!();
    expect(await tuples(db)).toBe(20_210);
  });
});
