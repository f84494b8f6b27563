import type { Touchpoint } from '@lifecycle/contracts';
import type { SqlExecutor } from '@lifecycle/sql';

/**
 * Faults that only tests enable, to show what production must survive. The CLI enables them
 * from LIFECYCLE_TEST_STORE_REJECTS (README, "Tests"); nothing else does.
 */
export interface TestFaults {
  /** Touchpoint ids the store refuses: a batch holding one fails with a real PostgreSQL error. */
  storeRejects?: ReadonlySet<string>;
}

let faults: TestFaults = {};

export function enableTestFaults(enabled: TestFaults): void {
  faults = enabled;
}

/** Fails the transaction as the store would refuse a value (SQLSTATE 22012, a data exception). */
export async function injectStoreFault(sql: SqlExecutor, touchpoints: readonly Touchpoint[]): Promise<void> {
  const rejects = faults.storeRejects;
  if (rejects !== undefined && touchpoints.some((t) => rejects.has(t.id))) await sql.query('SELECT 1 / 0');
}
