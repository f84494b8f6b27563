import type { LifecycleConfig } from '@lifecycle/contracts';
import { PeriodCalendar } from '@lifecycle/domain';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';

/**
 * Keeps `lifecycle_periods` (number → label and instants of every period from the earliest
 * touchpoint's, or cohort's, to the watermark's) complete, so that the analyst views can show
 * every period of a cohort, also one in which nothing happened, and put any instant in its
 * period. Called with the watermark of each transaction and the earliest instant it recorded;
 * writes only when the range grew (or rows of an earlier version lack their instants).
 */
export async function savePeriods(sql: SqlExecutor, watermark: number, config: LifecycleConfig, earliest?: number): Promise<void> {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const [range] = await sql.query<{ first: number | null; kept_from: number | null; kept_to: number | null; kept: number | string; unbounded: number | string }>(
    `SELECT (SELECT min(cohort_period) FROM cohort_cell_parts) AS first, min(period) AS kept_from, max(period) AS kept_to,
            count(*) AS kept, count(*) FILTER (WHERE starts_at IS NULL) AS unbounded FROM lifecycle_periods`,
  );
  const candidates = [range?.first, range?.kept_from, earliest === undefined ? null : calendar.indexOf(earliest)].filter((p): p is number => p !== null && p !== undefined);
  if (range === undefined || candidates.length === 0) return;
  const from = Math.min(...candidates);
  const to = calendar.indexOf(watermark);
  const complete =
    range.kept_from !== null && range.kept_from <= from && range.kept_to! >= to && Number(range.kept) === range.kept_to! - range.kept_from + 1 && Number(range.unbounded) === 0;
  if (complete || to < from) return;
  const periods = [];
  for (let period = from; period <= to; period += 1) {
    const [startsAt, endsAt] = calendar.bounds(period);
    periods.push({ period, label: calendar.label(period), starts_at: startsAt, ends_at: endsAt });
  }
  await bulkInsert(
    sql,
    'lifecycle_periods',
    { period: 'integer', label: 'text', starts_at: 'bigint', ends_at: 'bigint' },
    periods,
    'ON CONFLICT (period) DO UPDATE SET starts_at = excluded.starts_at, ends_at = excluded.ends_at WHERE lifecycle_periods.starts_at IS NULL',
  );
}
