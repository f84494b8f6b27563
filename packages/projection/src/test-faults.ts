import { writeSync } from 'node:fs';
import type { Touchpoint } from '@lifecycle/contracts';
import type { SqlExecutor } from '@lifecycle/sql';

/** The transactions a test can crash a process inside of. */
export type CrashPoint = 'chunk' | 'advance';

/**
 * Faults that only tests enable, to show what production must survive. The CLI enables them
 * from LIFECYCLE_TEST_STORE_REJECTS and LIFECYCLE_TEST_CRASH_BEFORE_COMMIT (README, "Tests");
 * nothing else does.
 */
export interface TestFaults {
  /** Touchpoint ids the store refuses: a batch holding one fails with a real PostgreSQL error. */
  storeRejects?: ReadonlySet<string>;
  /**
   * The process SIGKILLs itself inside its `nth` transaction of this kind (a chunk of touchpoints,
   * or a wall-clock advance), after all its writes and before its COMMIT.
   */
  crashBeforeCommit?: { point: CrashPoint; nth: number };
}

let faults: TestFaults = {};
const reached: Record<CrashPoint, number> = { chunk: 0, advance: 0 };

export function enableTestFaults(enabled: TestFaults): void {
  faults = enabled;
}

/** Fails the transaction as the store would refuse a value (SQLSTATE 22012, a data exception). */
export async function injectStoreFault(sql: SqlExecutor, touchpoints: readonly Touchpoint[]): Promise<void> {
  const rejects = faults.storeRejects;
  if (rejects !== undefined && touchpoints.some((t) => rejects.has(t.id))) await sql.query('SELECT 1 / 0');
}

/** Called last inside a transaction of kind `point`: dies there if a test asked for it. */
export function crashBeforeCommit(point: CrashPoint): void {
  const crash = faults.crashBeforeCommit;
  if (crash?.point !== point || ++reached[point] !== crash.nth) return;
  // Written synchronously: the test reads it as the proof of where the process died.
  writeSync(2, `test fault: SIGKILL inside ${point} transaction ${crash.nth}, before its COMMIT\n`);
  process.kill(process.pid, 'SIGKILL');
}
