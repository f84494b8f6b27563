import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import type { SqlDatabase, SqlExecutor } from './database.js';

// Loaded when a PostgreSQL store is opened: the embedded store's commands (an export, one SQL
// statement) would otherwise load the client at every start, ~70 ms of it.
async function loadClient() {
  const [{ default: client }, { from: copyFrom }] = await Promise.all([import('pg'), import('pg-copy-streams')]);
  // bigint (int8) and numeric come back as strings by default; our amounts and instants fit in
  // a double (they are validated ≤ Number.MAX_SAFE_INTEGER), so read them as numbers.
  client.types.setTypeParser(client.types.builtins.INT8, (v) => Number(v));
  client.types.setTypeParser(client.types.builtins.NUMERIC, (v) => Number(v));
  return { pg: client, copyFrom };
}

const executor = ({ pg, copyFrom }: Awaited<ReturnType<typeof loadClient>>, client: pg.Pool | pg.PoolClient): SqlExecutor => ({
  async query<Row>(sql: string, params: readonly unknown[] = []) {
    return (await client.query(sql, params as unknown[])).rows as Row[];
  },
  async exec(sql: string) {
    await client.query(sql);
  },
  async copyIn(table: string, columns: readonly string[], text: string) {
    const copy = (c: pg.PoolClient) => pipeline(Readable.from([text]), c.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN`)));
    if (!(client instanceof pg.Pool)) return copy(client);
    const connection = await client.connect();
    try {
      await copy(connection);
    } finally {
      connection.release();
    }
  },
});

/** A PostgreSQL server, e.g. `postgres://postgres@127.0.0.1:5432/lifecycle`. */
export async function openPostgres(url: string): Promise<SqlDatabase> {
  // The projector's statements are short; two planner features cost them more than they gave.
  // JIT: a misestimated row count (per-stream revision ranges) pushed their cost past
  // jit_above_cost, and compiling then took 50–140 ms of a 15–30 ms query (EXPLAIN ANALYZE).
  // Parallel workers: with a few thousand event ids to look up in a table still young, the
  // planner chose a parallel scan of the whole table; with parallel query off, a chunk of 2 500
  // touchpoints took 270 ms and 300 ms of the machine's CPU instead of 310–330 ms and 380 ms.
  // An `options` in the URL replaces these.
  const loaded = await loadClient();
  const pool = new loaded.pg.Pool({ connectionString: url, max: 4, options: '-c jit=off -c max_parallel_workers_per_gather=0' });
  // An idle connection the server closed (restart, pg_terminate_backend, DROP DATABASE … FORCE)
  // is reported here and dropped from the pool; the next query opens another. Unhandled, this
  // event would end the process although nothing was in flight.
  pool.on('error', () => undefined);
  const safe = new URL(url);
  safe.password = '';
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end();
    throw new Error(`cannot connect to PostgreSQL at ${safe.toString()}: ${(error as Error).message}`, { cause: error });
  }
  return {
    ...executor(loaded, pool),
    description: `PostgreSQL at ${safe.toString()}`,
    async transaction(work) {
      const client = await pool.connect();
      // The connection lost while the transaction holds it between statements: reported here
      // (unhandled, the process would end), the next statement fails, and the client is not
      // returned to the pool.
      let lost: Error | undefined;
      const onError = (error: Error) => void (lost ??= error);
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await work(executor(loaded, client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.off('error', onError);
        client.release(lost);
      }
    },
    close: () => pool.end(),
  };
}

/** A database made for one run (a test file, a benchmark) and dropped after it. */
export interface ScratchDatabase {
  name: string;
  url: string;
  /** Drops it, closing whatever connections are still open on it. */
  drop(): Promise<void>;
}

/** Creates a database with a fresh name `<prefix>_<random>` on the server `serverUrl` points to. */
export async function createScratchDatabase(serverUrl: string, prefix: string): Promise<ScratchDatabase> {
  if (!/^[a-z_][a-z0-9_]*$/.test(prefix)) throw new Error(`a database name prefix is lower-case letters, digits and _; got ${JSON.stringify(prefix)}`);
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const onServer = async (statement: string) => {
    const admin = await openPostgres(serverUrl);
    try {
      await admin.exec(statement);
    } finally {
      await admin.close();
    }
  };
  await onServer(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: () => onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
