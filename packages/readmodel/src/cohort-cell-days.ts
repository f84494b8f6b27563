import type { CohortRow, LifecycleConfig, Revenue } from '@lifecycle/contracts';
import { addToCell, CohortCells, cohortRowsFromCells, cohortSteps, emptyCell, firstStepChange, isEmptyCell, PeriodCalendar, type CohortCell, type CohortStep } from '@lifecycle/domain';
import { copyRows, jsonLines, type SqlExecutor } from '@lifecycle/sql';
import type { ProjectedChanges, ReadModel } from './read-model.js';

/** Set (in projection_state) once the table holds the steps of every customer. */
export const COHORT_CELL_DAYS_COMPLETE = 'cohort_cell_days_complete';

const DAY_MS = 86_400_000;

/** A cell's counts and amounts as a row keeps them. */
type StoredCounts = [customers: number, converted: number, active: number, churned: number, reactivated: number, revenue: Revenue, payments: Record<string, number>];
/** A step as a row keeps it: its instant, then the cell's counts and amounts. */
type StoredStep = [at: number, ...counts: StoredCounts];

/** Changes of the steps of one cell, one part and one UTC day, by instant. */
interface DayRow {
  readonly cohortPeriod: number;
  readonly offset: number;
  readonly part: number;
  readonly day: number;
  readonly steps: Map<number, CohortCell>;
}

/** A day of a cell and part has fewer pieces than this: the write that would add this many merges them all into one. */
const MERGE_AT = 16;

const rowKey = (cohortPeriod: number, offset: number, part: number, day: number) => `${cohortPeriod}:${offset}:${part}:${day}`;

const COLUMNS = ['cohort_period', 'period_offset', 'part', 'day', 'customers', 'converted', 'active', 'churned', 'reactivated', 'revenue', 'payments', 'steps'];
const KEYS = 'json_to_recordset($1::json) AS k(cohort_period integer, period_offset integer, part integer, day integer)';
const OF_KEYS = `(cohort_period, period_offset, part, day) IN (SELECT * FROM ${KEYS})`;

/**
 * `cohort_cell_days`: the customers' cohort steps (`cohortSteps`: what each adds to a cohort
 * cell, from which instant on), summed per cell, part and UTC day, with the day's steps kept by
 * instant. The cohort table as of any T is the sum of the days before T's and of T's own steps
 * up to T: a few thousand rows, however many customers (the as-of export read every customer's
 * history before). Parts as in `cohort_cell_parts`: a customer's owning partition, 0 in the
 * embedded store.
 *
 * A transaction adds its changes as a new piece of each day it changes, without reading the
 * ones there (a replay writes every day once per chunk of customers); the write that would make
 * a day's `MERGE_AT`th piece merges its pieces into one.
 */
export const cohortCellDaysReadModel: ReadModel = {
  tables: ['cohort_cell_days'],
  write: (sql, changes, config) => addPieces(sql, stepChanges(changes, config)),
  async replayed(sql) {
    await sql.query(`INSERT INTO projection_state (key, value) VALUES ($1, 'true') ON CONFLICT (key) DO NOTHING`, [COHORT_CELL_DAYS_COMPLETE]);
  },
};

/** The re-folded customers' new steps minus their old ones, by day; what cancels out is left out. */
function stepChanges(changes: ProjectedChanges, config: LifecycleConfig): Map<string, DayRow> {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const rows = new Map<string, DayRow>();
  const add = ({ at, cell }: CohortStep, part: number, sign: number) => {
    const day = Math.floor(at / DAY_MS);
    const key = rowKey(cell.cohortPeriod, cell.offset, part, day);
    let row = rows.get(key);
    if (row === undefined) rows.set(key, (row = { cohortPeriod: cell.cohortPeriod, offset: cell.offset, part, day, steps: new Map() }));
    let step = row.steps.get(at);
    if (step === undefined) row.steps.set(at, (step = emptyCell(cell.cohortPeriod, cell.offset)));
    addToCell(step, cell, sign);
  };
  for (const { before, after, rowChanged } of changes.customers) {
    if (!rowChanged) continue;
    // A history mostly grows at its end: only the steps from its first change on differ.
    const from = before?.history && after.history ? firstStepChange(before.history, after.history) : Number.NEGATIVE_INFINITY;
    if (from === Number.POSITIVE_INFINITY) continue;
    const part = after.ownerPartition ?? 0;
    if (before?.history) for (const step of cohortSteps(before.history, calendar, from)) add(step, part, -1);
    if (after.history) for (const step of cohortSteps(after.history, calendar, from)) add(step, part, 1);
  }
  // Empty steps are left out when the pieces are written.
  for (const [key, row] of rows) if ([...row.steps.values()].every(isEmptyCell)) rows.delete(key);
  return rows;
}

const toStored = (at: number, c: CohortCell): StoredStep => [at, c.customers, c.converted, c.active, c.churned, c.reactivated, c.revenue, c.payments];
const fromStored = (cohortPeriod: number, offset: number, [customers, converted, active, churned, reactivated, revenue, payments]: StoredCounts): CohortCell => ({
  cohortPeriod,
  offset,
  customers,
  converted,
  active,
  churned,
  reactivated,
  revenue,
  payments,
});
const keyOf = (r: DayRow) => ({ cohort_period: r.cohortPeriod, period_offset: r.offset, part: r.part, day: r.day });

/** Writes the changes as a new piece of each day, or, where that would be the day's last piece, as one piece with its others. */
async function addPieces(sql: SqlExecutor, changes: Map<string, DayRow>): Promise<void> {
  if (changes.size === 0) return;
  // In key order, so that two transactions cannot deadlock on them.
  const ordered = [...changes.values()].sort((a, b) => a.cohortPeriod - b.cohortPeriod || a.offset - b.offset || a.part - b.part || a.day - b.day);
  const counts = await sql.query<{ cohort_period: number; period_offset: number; part: number; day: number; pieces: number }>(
    `SELECT cohort_period, period_offset, part, day, count(*)::integer AS pieces FROM cohort_cell_days WHERE ${OF_KEYS} GROUP BY 1, 2, 3, 4`,
    [JSON.stringify(ordered.map(keyOf))],
  );
  const full = new Set(counts.filter((c) => c.pieces >= MERGE_AT - 1).map((c) => rowKey(c.cohort_period, c.period_offset, c.part, c.day)));
  if (full.size > 0) {
    const merged = JSON.stringify(ordered.filter((r) => full.has(rowKey(r.cohortPeriod, r.offset, r.part, r.day))).map(keyOf));
    const pieces = await sql.query<{ cohort_period: number; period_offset: number; part: number; day: number; steps: StoredStep[] }>(
      `DELETE FROM cohort_cell_days WHERE ${OF_KEYS} RETURNING cohort_period, period_offset, part, day, steps`,
      [merged],
    );
    for (const piece of pieces) {
      const row = changes.get(rowKey(piece.cohort_period, piece.period_offset, piece.part, piece.day))!;
      for (const [at, ...counts] of piece.steps) {
        const step = row.steps.get(at);
        if (step === undefined) row.steps.set(at, fromStored(row.cohortPeriod, row.offset, counts));
        else addToCell(step, fromStored(row.cohortPeriod, row.offset, counts));
      }
    }
  }
  const records: object[] = [];
  for (const row of ordered) {
    const steps = [...row.steps].filter(([, step]) => !isEmptyCell(step)).sort(([a], [b]) => a - b);
    if (steps.length === 0) continue;
    const total = emptyCell(row.cohortPeriod, row.offset);
    for (const [, step] of steps) addToCell(total, step);
    const { customers, converted, active, churned, reactivated, revenue, payments } = total;
    records.push({ ...keyOf(row), customers, converted, active, churned, reactivated, revenue, payments, steps: steps.map(([at, step]) => toStored(at, step)) });
  }
  await copyRows(sql, 'cohort_cell_days', COLUMNS, records);
}

/**
 * The cohort table of SPEC §7 as of any instant, from the days before it and its own day's
 * steps up to it; null while the table does not hold every customer's steps (a store projected
 * by an older version, until its `replay`).
 */
export async function readCohortRowsAsOf(sql: SqlExecutor, asOf: number, config: LifecycleConfig): Promise<CohortRow[] | null> {
  const day = Math.floor(asOf / DAY_MS);
  // Two text values (`jsonLines`), not rows.
  const [row] = await sql.query<{ complete: boolean; whole: string | null; partial: string | null }>(
    `SELECT EXISTS (SELECT 1 FROM projection_state WHERE key = $2) AS complete,
       (SELECT string_agg(json_build_array(cohort_period, period_offset, customers, converted, active, churned, reactivated, revenue, payments)::text, E'\\n')
          FROM cohort_cell_days WHERE day < $1) AS whole,
       (SELECT string_agg(json_build_array(cohort_period, period_offset, steps)::text, E'\\n') FROM cohort_cell_days WHERE day = $1) AS partial`,
    [day, COHORT_CELL_DAYS_COMPLETE],
  );
  if (!row?.complete) return null;
  const cells = new CohortCells();
  for (const [cohortPeriod, offset, ...counts] of jsonLines<[number, number, ...StoredCounts]>(row.whole)) cells.addCell(fromStored(cohortPeriod, offset, counts));
  for (const [cohortPeriod, offset, steps] of jsonLines<[number, number, StoredStep[]]>(row.partial)) {
    for (const [at, ...counts] of steps) if (at <= asOf) cells.addCell(fromStored(cohortPeriod, offset, counts));
  }
  return cohortRowsFromCells(cells.cells.values(), asOf, config);
}
