import { createScratchDatabase, type ScratchDatabase } from '@lifecycle/sql';

/** The PostgreSQL server tests use; `.ci/run` makes sure it runs. */
export const POSTGRES_URL = process.env['LIFECYCLE_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Creates a database of the project's own for one test file and returns its URL; `drop` removes
 * it. Fails with a message that says how to start PostgreSQL when the server is down.
 */
export async function createTestDatabase(): Promise<ScratchDatabase> {
  try {
    return await createScratchDatabase(POSTGRES_URL, `lifecycle_test_${process.pid}`);
  } catch (error) {
    throw new Error(
      `${(error as Error).message}; start PostgreSQL with ` +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set LIFECYCLE_TEST_POSTGRES_URL',
    );
  }
}
