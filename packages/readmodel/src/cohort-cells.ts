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
  cohort_period: 'integer', period_offset: 'integer', part: 'integer', cohort: 'text', period: 'text', customers: 'integer', converted: 'integer',
  active: 'integer', churned: 'integer', reactivated: 'integer', revenue: 'jsonb', payments: 'jsonb',
};
const COUNTS = ['customers', 'converted', 'active', 'churned', 'reactivated'];
const AMOUNTS = ['revenue', 'payments'];
const ADD =
  'ON CONFLICT (cohort_period, period_offset, part) DO UPDATE SET ' +
  [...COUNTS.map((c) => `${c} = cohort_cell_parts.${c} + EXCLUDED.${c}`), ...AMOUNTS.map((c) => `${c} = lifecycle_add_amounts(cohort_cell_parts.${c}, EXCLUDED.${c})`)].join(', ');

/**
 * `cohort_cells`: what the customers contribute to each cohort × period (SPEC §4), followed by
 * adding each re-folded customer's new contribution minus its old one, in SQL. A customer's
 * contribution goes to the part of its partition (`cohort_cell_parts`; `cohort_cells` is their
 * sum): the one instance that owns the partition writes it, so instances that change customers
 * of one cohort at once never wait on each other's rows (they did on one row per cell).
 */
export const cohortCellsReadModel: ReadModel = {
  tables: ['cohort_cell_parts'],
  write: (sql, changes, config) => applyCohortDeltas(sql, cohortDeltas(changes, config), config),
};

/** What a stored customer adds to the cells: what its history recorded (or, in an older row, what was kept). */
function contribution(customer: StoredCustomer | undefined, calendar: PeriodCalendar): CohortFacts | null {
  if (customer === undefined) return null;
  return customer.history === null ? (customer.legacyCohortFacts ?? null) : recordedCohortFacts(customer.history, calendar);
}

/** The changes of the cells, by part: a customer's owning partition, 0 in the embedded store. */
function cohortDeltas(changes: ProjectedChanges, config: LifecycleConfig): Map<number, CohortCells> {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const deltas = new Map<number, CohortCells>();
  for (const { before, after, rowChanged } of changes.customers) {
    if (!rowChanged) continue;
    const [old, next] = [contribution(before, calendar), contribution(after, calendar)];
    if (isDeepStrictEqual(old, next)) continue;
    const part = after.ownerPartition ?? 0;
    const delta = deltas.get(part) ?? new CohortCells();
    deltas.set(part, delta);
    if (old) delta.addCustomer(old, -1);
    if (next) delta.addCustomer(next);
  }
  return deltas;
}

async function applyCohortDeltas(sql: SqlExecutor, deltas: ReadonlyMap<number, CohortCells>, config: LifecycleConfig): Promise<void> {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const records = [...deltas].flatMap(([part, delta]) =>
    [...delta.cells.values()].map((cell) => ({
      cohort_period: cell.cohortPeriod,
      period_offset: cell.offset,
      part,
      cohort: calendar.label(cell.cohortPeriod),
      period: calendar.label(cell.cohortPeriod + cell.offset),
      customers: cell.customers,
      converted: cell.converted,
      active: cell.active,
      churned: cell.churned,
      reactivated: cell.reactivated,
      revenue: cell.revenue,
      payments: cell.payments,
    })),
  );
  if (records.length === 0) return;
  // In key order, so that two transactions cannot deadlock on them (a replay writes every part).
  records.sort((a, b) => a.cohort_period - b.cohort_period || a.period_offset - b.period_offset || a.part - b.part);
  await bulkInsert(sql, 'cohort_cell_parts', COLUMNS, records, ADD);
}

/** The cohort table of SPEC §7 as of `asOf`, which must be the instant the cells were kept at. */
export async function readCohortRows(sql: SqlExecutor, asOf: number, config: LifecycleConfig): Promise<CohortRow[]> {
  const records = await sql.query<CellRecord>(SELECT);
  return cohortRowsFromCells(records.map(toCell), asOf, config);
}
