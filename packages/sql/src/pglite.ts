import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { SqlDatabase, SqlExecutor } from './database.js';

const executor = (client: PGlite | Transaction): SqlExecutor => ({
  async query<Row>(sql: string, params: readonly unknown[] = []) {
    return (await client.query<Row>(sql, params as unknown[])).rows;
  },
  async exec(sql: string) {
    await client.exec(sql);
  },
});

/** The embedded store: PostgreSQL compiled to WebAssembly, durable under `dataDir`. */
export async function openPglite(dataDir?: string): Promise<SqlDatabase> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
  const db = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
  await db.waitReady;
  return {
    ...executor(db),
    description: dataDir === undefined ? 'PGlite in memory' : `PGlite at ${dataDir}`,
    transaction: (work) => db.transaction((tx) => work(executor(tx))),
    close: () => db.close(),
  };
}
