import type { LifecycleConfig } from '@lifecycle/contracts';
import { PeriodCalendar } from '@lifecycle/domain';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';

/**
 * Keeps `lifecycle_periods` (number → label of every period from the earliest cohort's to the
 * watermark's) complete, so that the analyst views can show every period of a cohort, also one
 * in which nothing happened, with its label. Called with the watermark of each transaction;
 * writes only when the range grew.
 */
export async function savePeriods(sql: SqlExecutor, watermark: number, config: LifecycleConfig): Promise<void> {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const [range] = await sql.query<{ first: number | null; kept_from: number | null; kept_to: number | null; kept: number | string }>(
    `SELECT (SELECT min(cohort_period) FROM cohort_cells) AS first,
            min(period) AS kept_from, max(period) AS kept_to, count(*) AS kept FROM lifecycle_periods`,
  );
  if (range === undefined || range.first === null) return;
  const from = range.first;
  const to = calendar.indexOf(watermark);
  const complete = range.kept_from !== null && range.kept_from <= from && range.kept_to! >= to && Number(range.kept) === range.kept_to! - range.kept_from + 1;
  if (complete || to < from) return;
  const periods = [];
  for (let period = from; period <= to; period += 1) periods.push({ period, label: calendar.label(period) });
  await bulkInsert(sql, 'lifecycle_periods', { period: 'integer', label: 'text' }, periods, 'ON CONFLICT (period) DO NOTHING');
}
