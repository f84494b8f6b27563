import { CohortCells, emptyCell, type CohortCell } from './cohorts.js';
import { cohortFactsAsOf, type CustomerHistory } from './customer-history.js';
import type { PeriodCalendar } from './periods.js';

/** A change of what one customer adds to one cohort cell, from the instant `at` on. */
export interface CohortStep {
  readonly at: number;
  readonly cell: CohortCell;
}

type Fact = readonly [at: number, kind: 'acquisition' | 'payment' | 'conversion' | 'churn' | 'reactivation', currency?: string, amountMinor?: number];

/**
 * What the customer adds to the cohort cells as of any instant T, as changes in time: the cells
 * of `cohortFactsAsOf(history, T)` are the sum of the steps at or before T. So a read model can
 * keep the steps of all customers summed by day, and give the cohort table as of any T without
 * reading a customer (SPEC §4 as of T).
 *
 * Between two changes of its acquisition a customer's contribution only grows, by what each fact
 * adds; where its acquisition (so its cohort) changes, the step is the difference of the whole
 * contributions just before and at that instant. Instants are whole milliseconds.
 */
export function cohortSteps(history: CustomerHistory, calendar: PeriodCalendar): CohortStep[] {
  const registration = history.registration?.[0] ?? null;
  const conversion = history.conversion;
  // Acquired at the registration; before it, at the conversion if that came first (SPEC §3).
  const regroupings = new Set<number>();
  if (registration !== null) regroupings.add(registration);
  if (conversion !== null && (registration === null || conversion < registration)) regroupings.add(conversion);

  const facts: Fact[] = [];
  if (conversion !== null) facts.push([conversion, 'conversion']);
  for (const [at, currency, amountMinor] of history.payments) facts.push([at, 'payment', currency, amountMinor]);
  for (const [at] of history.churns) facts.push([at, 'churn']);
  if (history.pending !== null) facts.push([history.pending[0], 'churn']);
  for (const at of history.reactivations) facts.push([at, 'reactivation']);
  for (const at of regroupings) facts.push([at, 'acquisition']);
  facts.sort((a, b) => a[0] - b[0]);

  const steps: CohortStep[] = [];
  // Periods that already have a payment, a churn, a reactivation: a cell counts a customer once.
  const seen = { payment: new Set<number>(), churn: new Set<number>(), reactivation: new Set<number>() };
  let cohort: number | null = null;
  for (let i = 0; i < facts.length; ) {
    const at = facts[i]![0];
    const regrouped = regroupings.has(at);
    if (regrouped) {
      const cells = new CohortCells();
      const before = cohortFactsAsOf(history, at - 1, calendar);
      const after = cohortFactsAsOf(history, at, calendar)!;
      if (before !== null) cells.addCustomer(before, -1);
      cells.addCustomer(after);
      for (const cell of cells.cells.values()) steps.push({ at, cell });
      cohort = after.cohortPeriod;
    }
    // Every other fact of an instant has the same period, so adds to one cell.
    let cell: CohortCell | undefined;
    for (; i < facts.length && facts[i]![0] === at; i += 1) {
      const [, kind, currency, amountMinor] = facts[i]!;
      if (kind === 'acquisition') continue;
      const period = calendar.indexOf(at);
      const first = kind !== 'conversion' && !seen[kind].has(period);
      if (kind !== 'conversion') seen[kind].add(period);
      if (regrouped || cohort === null) continue;
      const offset = kind === 'conversion' ? Math.max(period - cohort, 0) : period - cohort;
      if (offset < 0) continue;
      if (cell === undefined) steps.push({ at, cell: (cell = emptyCell(cohort, offset)) });
      if (kind === 'conversion') cell.converted += 1;
      else if (kind === 'payment') {
        cell.revenue[currency!] = (cell.revenue[currency!] ?? 0) + amountMinor!;
        cell.payments[currency!] = (cell.payments[currency!] ?? 0) + 1;
        if (first) cell.active += 1;
      } else if (first) cell[kind === 'churn' ? 'churned' : 'reactivated'] += 1;
    }
  }
  return steps;
}
