import pg from 'pg';
import type { SqlDatabase, SqlExecutor } from './database.js';

// bigint (int8) and numeric come back as strings by default; our amounts and instants fit in
// a double (they are validated ≤ Number.MAX_SAFE_INTEGER), so read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

const executor = (client: pg.Pool | pg.PoolClient): SqlExecutor => ({
  async query<Row>(sql: string, params: readonly unknown[] = []) {
    return (await client.query(sql, params as unknown[])).rows as Row[];
  },
  async exec(sql: string) {
    await client.query(sql);
  },
});

/** A PostgreSQL server, e.g. `postgres://postgres@127.0.0.1:5432/lifecycle`. */
export async function openPostgres(url: string): Promise<SqlDatabase> {
  // JIT off: the projector's statements are short, but a misestimated row count (per-stream
  // revision ranges) pushed their cost past jit_above_cost, and compiling then took 50–140 ms of
  // a 15–30 ms query (measured with EXPLAIN ANALYZE). An `options` in the URL replaces this one.
  const pool = new pg.Pool({ connectionString: url, max: 4, options: '-c jit=off' });
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
    ...executor(pool),
    description: `PostgreSQL at ${safe.toString()}`,
    async transaction(work) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work(executor(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
