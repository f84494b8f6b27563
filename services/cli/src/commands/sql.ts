// The CSV writer alone: the API's index loads its HTTP server (~0.15 s at every start).
import { toCsv } from '@lifecycle/api/csv';
import { openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import { writeLines } from '../lines.js';
import { UsageError } from '../settings.js';

export type SqlFormat = 'table' | 'csv' | 'ndjson';

/** A result as aligned text columns, as psql prints it. */
function table(rows: readonly Record<string, unknown>[]): string[] {
  const columns = Object.keys(rows[0] ?? {});
  const text = (value: unknown) => (value === null || value === undefined ? '' : typeof value === 'object' && !(value instanceof Date) ? JSON.stringify(value) : value instanceof Date ? value.toISOString() : String(value));
  const cells = rows.map((row) => columns.map((c) => text(row[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join(' | ').trimEnd();
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line), `(${rows.length} row${rows.length === 1 ? '' : 's'})`];
}

/**
 * One SQL statement against the store, read-only (a mistyped DELETE cannot touch the read
 * models): the analysts' way into the embedded store, which psql cannot open.
 */
export async function sqlCommand(statement: string, location: StoreLocation, format: SqlFormat): Promise<void> {
  const db = await openLifecycleStore(location, { readOnce: true });
  try {
    const rows = await db
      .transaction(async (tx) => {
        await tx.exec('SET TRANSACTION READ ONLY');
        return tx.query<Record<string, unknown>>(statement);
      })
      .catch((error: unknown) => {
        // The statement's own mistake (SQLSTATE): the user's to fix, said plainly.
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'string') throw new UsageError(`the statement failed: ${(error as Error).message} (SQLSTATE ${code})`);
        throw error;
      });
    if (format === 'ndjson') await writeLines(rows.map((row) => JSON.stringify(row)));
    else if (format === 'csv') process.stdout.write(toCsv(rows, Object.keys(rows[0] ?? {})));
    else await writeLines(table(rows));
  } finally {
    await db.close();
  }
}
