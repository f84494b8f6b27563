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

/**
 * The embedded store: PostgreSQL compiled to WebAssembly, durable under `dataDir`, which one
 * process at a time may open (its lock is taken first; DirectoryInUseError otherwise).
 */
export async function openPglite(dataDir?: string): Promise<SqlDatabase> {
  if (dataDir === undefined) {
    const db = new PGlite();
    await db.waitReady;
    return { ...executor(db), description: 'PGlite in memory', transaction: (work) => db.transaction((tx) => work(executor(tx))), close: () => db.close() };
  }
  await mkdir(dataDir, { recursive: true });
  const lock = await lockDirectory(dataDir, `lifecycle ${process.argv.slice(2).join(' ')}`.trim());
  let db: PGlite;
  try {
    db = new PGlite(dataDir);
    await db.waitReady;
  } catch (error) {
    await lock.release();
    throw error;
  }
  return {
    ...executor(db),
    description: `PGlite at ${dataDir}`,
    lock,
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
