import type { LifecycleEvent } from '@lifecycle/contracts';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';
import { loadProjectionState } from './bookkeeping.js';
import type { ReadModel } from './read-model.js';

const COLUMNS = { customer_id: 'text', seq: 'integer', at: 'bigint', to_stage: 'text' } as const;

/** A customer's stage history from position `from` on. */
export interface StageHistoryChange {
  from: number;
  changes: readonly Pick<LifecycleEvent, 'at' | 'to'>[];
  /** What was recorded from `from` on no longer holds (a late touchpoint changed the history). */
  replaces: boolean;
}

/**
 * `stage_changes`: each customer's stage history as of the watermark, rewritten from where it
 * changed, for the rolling churn rate (SPEC §4), which needs the stages at the start of a window.
 */
export const stageChangesReadModel: ReadModel = {
  tables: ['stage_changes'],
  write: (sql, changes) =>
    saveStageChanges(sql, new Map(changes.customers.flatMap((c) => (c.stageHistory === undefined ? [] : [[c.after.row.customerId, c.stageHistory] as const])))),
};

async function saveStageChanges(sql: SqlExecutor, histories: ReadonlyMap<string, StageHistoryChange>): Promise<void> {
  if (histories.size === 0) return;
  const cut = [...histories].filter(([, h]) => h.replaces);
  if (cut.length > 0) {
    await sql.query(
      'DELETE FROM stage_changes s USING unnest($1::text[], $2::integer[]) AS c(customer_id, seq) WHERE s.customer_id = c.customer_id AND s.seq >= c.seq',
      [cut.map(([id]) => id), cut.map(([, h]) => h.from)],
    );
  }
  const records = [...histories].flatMap(([customerId, { from, changes }]) =>
    changes.map((change, i) => ({ customer_id: customerId, seq: from + i, at: Date.parse(change.at), to_stage: change.to })),
  );
  await bulkInsert(sql, 'stage_changes', COLUMNS, records);
}


/**
 * Rolling churn rate of SPEC §4 for a window ending at `asOf` (epoch ms): customers with a churn
 * in (asOf − window, asOf] over customers converted and not churned at asOf − window. Null when
 * nobody was converted then: a rate of 0 would claim a calm that nobody could have broken.
 */
export async function rollingChurnRate(sql: SqlExecutor, asOf: number, windowMs: number): Promise<number | null> {
  // The SQL function analysts call from psql (migration 0107), with instants in whole milliseconds.
  const [row] = await sql.query<{ rate: number | null }>(
    "SELECT lifecycle_churn_rate(to_timestamp($1::bigint / 1000.0), $2::bigint * interval '1 millisecond') AS rate",
    [asOf, windowMs],
  );
  return row!.rate === null ? null : Number(row!.rate);
}

const DAY_MS = 86_400_000;
/** The windows of `lifecycle_churn_rate{window}` (SPEC §8). */
export const CHURN_RATE_WINDOWS = { '1d': DAY_MS, '7d': 7 * DAY_MS, '30d': 30 * DAY_MS } as const;

/** Rolling churn rates per window, ending at the projection's watermark; windows without a base are left out. */
export async function churnRatesAtWatermark(sql: SqlExecutor): Promise<Record<string, number>> {
  const { watermark } = await loadProjectionState(sql);
  const rates: Record<string, number> = {};
  if (watermark === null) return rates;
  for (const [window, ms] of Object.entries(CHURN_RATE_WINDOWS)) {
    const rate = await rollingChurnRate(sql, watermark, ms);
    if (rate !== null) rates[window] = rate;
  }
  return rates;
}
