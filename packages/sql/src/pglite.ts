import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { SqlDatabase, SqlExecutor } from './database.js';
import { lockDirectory } from './directory-lock.js';

const executor = (client: PGlite | Transaction): SqlExecutor => ({
  async query<Row>(sql: string, params: readonly unknown[] = []) {
    return (await client.query<Row>(sql, params as unknown[])).rows;
  },
  async exec(sql: string) {
    await client.exec(sql);
  },
  async copyIn(table: string, columns: readonly string[], text: string) {
    await client.query(`COPY ${table} (${columns.join(', ')}) FROM '/dev/blob'`, [], { blob: new Blob([text]) });
  },
});

// Tables whose size grew by a tenth (and by a megabyte: not every small write) since their
// statistics, which set `relpages`, were gathered; a never analyzed table has `relpages` 0.
const GROWN_TABLES = `
  SELECT count(*)::int AS grown FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind = 'r'
    AND pg_relation_size(c.oid) > 1048576 + 1.1 * c.relpages::bigint * current_setting('block_size')::int`;

/**
 * PGlite runs no autovacuum, so no statistics at all until this: planned without them, each page
 * of a scan of the events in position order sorted the rest of the table on disk (a replay of
 * 245 000 events: 5.4 s, 4.5 s with statistics). ANALYZE samples at most 30 000 rows a table
 * (~1 s with 770 000 events).
 */
async function refreshStatistics(db: PGlite): Promise<void> {
  const [row] = (await db.query<{ grown: number }>(GROWN_TABLES)).rows;
  if (row !== undefined && row.grown > 0) await db.exec('ANALYZE');
}

export interface PgliteOptions {
  /**
   * PostgreSQL's page cache, in MiB (PGlite's own default: 128). Setting it up is most of what
   * opening costs beyond loading the WebAssembly: a store opened to be read once starts ~0.4 s
   * faster with 32 (`export cohorts --as-of` on the bench's store: 1.40–1.46 s against
   * 1.74–1.85 s, and ~100 MB less RSS). A long ingest or replay reads its pages again and
   * again: with 32 they were ~8 % slower.
   */
  sharedBuffersMib?: number;
}

const startParams = (options: PgliteOptions) =>
  options.sharedBuffersMib === undefined ? undefined : [...PGlite.defaultStartParams, '-c', `shared_buffers=${options.sharedBuffersMib}MB`];

/**
 * The embedded store: PostgreSQL compiled to WebAssembly, durable under `dataDir`, which one
 * process at a time may open (its lock is taken first; DirectoryInUseError otherwise).
 */
export async function openPglite(dataDir?: string, options: PgliteOptions = {}): Promise<SqlDatabase> {
  if (dataDir === undefined) {
    const db = new PGlite({ startParams: startParams(options) });
    await db.waitReady;
    return { ...executor(db), description: 'PGlite in memory', refreshStatistics: () => refreshStatistics(db), transaction: (work) => db.transaction((tx) => work(executor(tx))), close: () => db.close() };
  }
  await mkdir(dataDir, { recursive: true });
  const lock = await lockDirectory(dataDir, `lifecycle ${process.argv.slice(2).join(' ')}`.trim());
  let db: PGlite;
  try {
    db = new PGlite(dataDir, { startParams: startParams(options) });
    await db.waitReady;
  } catch (error) {
    await lock.release();
    throw error;
  }
  return {
    ...executor(db),
    description: `PGlite at ${dataDir}`,
    lock,
    refreshStatistics: () => refreshStatistics(db),
    transaction: (work) => db.transaction((tx) => work(executor(tx))),
    async close() {
      try {
        await db.close();
      } finally {
        await lock.release();
      }
    },
  };
}
