import type { CohortRow, LifecycleConfig } from '@lifecycle/contracts';
import { CohortCells, PeriodCalendar, cohortRowsFromCells, recordedCohortFacts, type CohortCell, type CohortFacts } from '@lifecycle/domain';
import { isDeepStrictEqual } from 'node:util';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';
import type { StoredCustomer } from './customers.js';
import type { ProjectedChanges, ReadModel } from './read-model.js';

interface CellRecord {
  cohort_period: number;
  period_offset: number;
  customers: number;
  converted: number;
  active: number;
  churned: number;
  reactivated: number;
  revenue: Record<string, number>;
  payments: Record<string, number>;
}

const toCell = (r: CellRecord): CohortCell => ({
  cohortPeriod: r.cohort_period,
  offset: r.period_offset,
  customers: r.customers,
  converted: r.converted,
  active: r.active,
  churned: r.churned,
  reactivated: r.reactivated,
  revenue: r.revenue,
  payments: r.payments,
});

const SELECT = 'SELECT cohort_period, period_offset, customers, converted, active, churned, reactivated, revenue, payments FROM cohort_cells';

const COLUMNS = {
  cohort_period: 'integer', period_offset: 'integer', cohort: 'text', period: 'text', customers: 'integer', converted: 'integer',
  active: 'integer', churned: 'integer', reactivated: 'integer', revenue: 'jsonb', payments: 'jsonb',
};
const COUNTS = ['customers', 'converted', 'active', 'churned', 'reactivated'];
const AMOUNTS = ['revenue', 'payments'];
const ADD =
  'ON CONFLICT (cohort_period, period_offset) DO UPDATE SET ' +
  [...COUNTS.map((c) => `${c} = cohort_cells.${c} + EXCLUDED.${c}`), ...AMOUNTS.map((c) => `${c} = lifecycle_add_amounts(cohort_cells.${c}, EXCLUDED.${c})`)].join(', ');

/**
 * `cohort_cells`: what the customers contribute to each cohort × period (SPEC §4), followed by
 * adding each re-folded customer's new contribution minus its old one, in SQL: instances that
 * change customers of one cohort at once each add their own part, none overwrites another's.
 */
export const cohortCellsReadModel: ReadModel = {
  tables: ['cohort_cells'],
  write: (sql, changes, config) => applyCohortDelta(sql, cohortDelta(changes, config), config),
};

/** What a stored customer adds to the cells: what its history recorded (or, in an older row, what was kept). */
function contribution(customer: StoredCustomer | undefined, calendar: PeriodCalendar): CohortFacts | null {
  if (customer === undefined) return null;
  return customer.history === null ? (customer.legacyCohortFacts ?? null) : recordedCohortFacts(customer.history, calendar);
}

function cohortDelta(changes: ProjectedChanges, config: LifecycleConfig): CohortCells {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const delta = new CohortCells();
  for (const { before, after, rowChanged } of changes.customers) {
    if (!rowChanged) continue;
    const [old, next] = [contribution(before, calendar), contribution(after, calendar)];
    if (isDeepStrictEqual(old, next)) continue;
    if (old) delta.addCustomer(old, -1);
    if (next) delta.addCustomer(next);
  }
  return delta;
}

/** Cells are written in key order, so two such transactions cannot deadlock on them. */
async function applyCohortDelta(sql: SqlExecutor, delta: CohortCells, config: LifecycleConfig): Promise<void> {
  if (delta.cells.size === 0) return;
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const records = [...delta.cells.values()]
    .sort((a, b) => a.cohortPeriod - b.cohortPeriod || a.offset - b.offset)
    .map((cell) => ({
      cohort_period: cell.cohortPeriod,
      period_offset: cell.offset,
      cohort: calendar.label(cell.cohortPeriod),
      period: calendar.label(cell.cohortPeriod + cell.offset),
      customers: cell.customers,
      converted: cell.converted,
      active: cell.active,
      churned: cell.churned,
      reactivated: cell.reactivated,
      revenue: cell.revenue,
      payments: cell.payments,
    }));
  await bulkInsert(sql, 'cohort_cells', COLUMNS, records, ADD);
}

/** The cohort table of SPEC §7 as of `asOf`, which must be the instant the cells were kept at. */
export async function readCohortRows(sql: SqlExecutor, asOf: number, config: LifecycleConfig): Promise<CohortRow[]> {
  const records = await sql.query<CellRecord>(SELECT);
  return cohortRowsFromCells(records.map(toCell), asOf, config);
}
