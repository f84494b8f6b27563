// SQLSTATE classes an input value can cause: data exception (22: invalid byte sequence, value
// out of range, …), integrity constraint violation (23), program limit exceeded (54: nesting too
// deep, row too large). Every other class is the infrastructure (08 connection, 40 serialization
// and deadlock, 53 resources, 57 shutdown, 42 our own SQL or privileges, …): retried, never
// blamed on a touchpoint.
const DATA_CLASSES = new Set(['22', '23', '54']);

/**
 * Whether a failed projection may be the fault of one of its touchpoints, so that splitting the
 * batch can find it: the store refused a value (SQLSTATE 22, 23, 54), or our own code failed in a
 * way a value can cause (a TypeError or RangeError of a future bug). Anything else — a concurrency
 * conflict, other settings, a lost connection, a Kafka error such as a rebalance — is retried and
 * never blamed on a touchpoint: quarantining a valid one would take it out of the read models.
 */
export function mayBeCausedByInput(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return DATA_CLASSES.has(code.slice(0, 2));
  return (error instanceof TypeError || error instanceof RangeError) && code === undefined;
}

/**
 * Runs `attempt` on all items; when it fails in a way an item may cause, splits the items in
 * halves, in order, until the one that fails alone, and again on a second try, is found: that
 * one goes to `quarantine` and the rest is attempted without it (Kafka Streams' answer to a
 * poison record, without retrying the whole batch forever). Any other error is thrown at once.
 * `attempt` commits what it succeeds with, so a failure never undoes an earlier half.
 */
export async function isolatePoison<T>(
  items: readonly T[],
  attempt: (items: readonly T[]) => Promise<void>,
  quarantine: (item: T, error: unknown) => Promise<void>,
): Promise<void> {
  if (items.length === 0) return;
  try {
    await attempt(items);
    return;
  } catch (error) {
    if (!mayBeCausedByInput(error)) throw error;
    if (items.length > 1) {
      const half = Math.ceil(items.length / 2);
      await isolatePoison(items.slice(0, half), attempt, quarantine);
      await isolatePoison(items.slice(half), attempt, quarantine);
      return;
    }
  }
  // One item failed: a race with another writer would not fail the same way twice.
  try {
    await attempt(items);
  } catch (again) {
    if (!mayBeCausedByInput(again)) throw again;
    await quarantine(items[0]!, again);
  }
}

/** The dead-letter message of a quarantined touchpoint: the store's words, cut to a header's size. */
export function storeRejection(error: unknown): { reason: 'store_rejected'; issues: { path: string; message: string }[] } {
  const code = (error as { code?: unknown } | null)?.code;
  const text = error instanceof Error ? error.message : String(error);
  return { reason: 'store_rejected', issues: [{ path: '', message: `${text.slice(0, 1000)}${typeof code === 'string' ? ` (code ${code})` : ''}` }] };
}
