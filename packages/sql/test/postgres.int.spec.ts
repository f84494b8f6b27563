import pg from 'pg';
import { openPostgres } from '@lifecycle/sql';
import { createTestDatabase } from '../../../test/support/postgres.js';

/** TCP sockets this process holds open (the pool's connections and the admin client's). */
const openSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

/** Polls `condition` every 10 ms; fails once `timeoutMs` passed without it. */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('PostgreSQL connections', () => {
  test('an idle connection the server terminates is replaced, not fatal', async () => {
    const { url, drop } = await createTestDatabase();
    const db = await openPostgres(url);
    const admin = new pg.Client({ connectionString: url });
    try {
      const [{ pid }] = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
      await admin.connect();
      const sockets = openSockets();
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      // The pool hears of it while idle: the terminated connection's socket closes on our side.
      await until(() => openSockets() < sockets);
      const [{ other }] = (await db.query<{ other: number }>('SELECT pg_backend_pid() AS other')) as [{ other: number }];
      expect(other).not.toBe(pid);
    } finally {
      await admin.end();
      await db.close();
      await drop();
    }
  });
});

describe('PostgreSQL session settings', () => {
  test('JIT and parallel query are off, in and out of transactions, unless the URL sets its own options', async () => {
    const { url, drop } = await createTestDatabase();
    const db = await openPostgres(url);
    const custom = await openPostgres(`${url}?options=${encodeURIComponent('-c work_mem=8MB')}`);
    try {
      expect(await db.query('SHOW jit')).toEqual([{ jit: 'off' }]);
      expect(await db.transaction((tx) => tx.query('SHOW jit'))).toEqual([{ jit: 'off' }]);
      expect(await db.transaction((tx) => tx.query('SHOW max_parallel_workers_per_gather'))).toEqual([{ max_parallel_workers_per_gather: '0' }]);
      expect(await custom.query('SHOW work_mem')).toEqual([{ work_mem: '8MB' }]);
      expect(await custom.query('SHOW max_parallel_workers_per_gather')).not.toEqual([{ max_parallel_workers_per_gather: '0' }]);
    } finally {
      await custom.close();
      await db.close();
      await drop();
    }
  });
});
