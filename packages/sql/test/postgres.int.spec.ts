import pg from 'pg';
import { openPostgres } from '@lifecycle/sql';
import { createTestDatabase } from '../../../test/support/postgres.js';

describe('PostgreSQL connections', () => {
  test('an idle connection the server terminates is replaced, not fatal', async () => {
    const { url, drop } = await createTestDatabase();
    const db = await openPostgres(url);
    const admin = new pg.Client({ connectionString: url });
    try {
      const [{ pid }] = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await new Promise((resolve) => setTimeout(resolve, 200)); // the pool hears of it while idle
      const [{ other }] = (await db.query<{ other: number }>('SELECT pg_backend_pid() AS other')) as [{ other: number }];
      expect(other).not.toBe(pid);
    } finally {
      await admin.end();
      await db.close();
      await drop();
    }
  });
});
