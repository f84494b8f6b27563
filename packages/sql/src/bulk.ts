import type { SqlExecutor } from './database.js';

/** Column name → SQL type, in insert order. */
export type ColumnTypes = Readonly<Record<string, string>>;

// One JSON parameter per statement: far faster than array parameters in PGlite (measured 1.5 s
// vs 3.4 s for 100k rows) and the same SQL on PostgreSQL. Chunked to bound the JSON text.
const CHUNK = 20_000;

/** Inserts records (objects keyed by column) with `INSERT … SELECT FROM jsonb_to_recordset`. */
export async function bulkInsert(
  sql: SqlExecutor,
  table: string,
  columns: ColumnTypes,
  records: readonly object[],
  onConflict = '',
): Promise<void> {
  const names = Object.keys(columns);
  const definition = names.map((name) => `${name} ${columns[name]}`).join(', ');
  const statement = `INSERT INTO ${table} (${names.join(', ')}) SELECT ${names.join(', ')} FROM jsonb_to_recordset($1::jsonb) AS x(${definition}) ${onConflict}`;
  for (let i = 0; i < records.length; i += CHUNK) {
    await sql.query(statement, [JSON.stringify(records.slice(i, i + CHUNK))]);
  }
}
