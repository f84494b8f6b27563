import { CohortCells, emptyCell, type CohortCell } from './cohorts.js';
import { cohortFactsAsOf, type CustomerHistory } from './customer-history.js';
import type { PeriodCalendar } from './periods.js';

/** A change of what one customer adds to one cohort cell, from the instant `at` on. */
export interface CohortStep {
  readonly at: number;
  readonly cell: CohortCell;
}

/**
 * What the customer adds to the cohort cells as of any instant T, as changes in time: the cells
 * of `cohortFactsAsOf(history, T)` are the sum of the steps at or before T. So a read model can
 * keep the steps of all customers summed by day, and give the cohort table as of any T without
 * reading a customer (SPEC §4 as of T).
 *
 * Between two changes of its acquisition a customer's contribution only grows, by what each fact
 * adds; where its acquisition (so its cohort) changes, the step is the difference of the whole
 * contributions just before and at that instant. Instants are whole milliseconds. Only the
 * steps at or after `from` are given.
 */
export function cohortSteps(history: CustomerHistory, calendar: PeriodCalendar, from = Number.NEGATIVE_INFINITY): CohortStep[] {
  const { conversion, payments, churns, reactivations } = history;
  const registration = history.registration?.[0] ?? null;
  const pending = history.pending?.[0] ?? null;
  // Acquired at the registration; before it, at the conversion if that came first (SPEC §3).
  const early = conversion !== null && (registration === null || conversion < registration) ? conversion : null;
  const steps: CohortStep[] = [];
  // The facts are walked in time order, so periods never decrease: a fact is the first of its
  // kind in its period (a cell counts a customer once) when the last one was in another period.
  let [lastPayment, lastChurn, lastReactivation] = [Number.NaN, Number.NaN, Number.NaN];
  let [p, c, r] = [0, 0, 0];
  let [conversionDone, registrationDone, pendingDone] = [conversion === null, registration === null, pending === null];
  let cohort: number | null = null;
  for (;;) {
    let at = Number.POSITIVE_INFINITY;
    if (p < payments.length) at = payments[p]![0];
    if (c < churns.length && churns[c]![0] < at) at = churns[c]![0];
    if (r < reactivations.length && reactivations[r]! < at) at = reactivations[r]!;
    if (!conversionDone && conversion! < at) at = conversion!;
    if (!registrationDone && registration! < at) at = registration!;
    if (!pendingDone && pending! < at) at = pending!;
    if (at === Number.POSITIVE_INFINITY) return steps;

    const regrouped = at === registration || at === early;
    const period = calendar.indexOf(at);
    if (at < from) {
      // Only the walk's state: the cohort is the period of the instant it regroups at.
      if (regrouped) cohort = period;
    } else if (regrouped) {
      const cells = new CohortCells();
      const before = cohortFactsAsOf(history, at - 1, calendar);
      const after = cohortFactsAsOf(history, at, calendar)!;
      if (before !== null) cells.addCustomer(before, -1);
      cells.addCustomer(after);
      for (const cell of cells.cells.values()) steps.push({ at, cell });
      cohort = after.cohortPeriod;
    }
    // What the instant's other facts add, to one cell (a regrouping's step already holds them).
    const counted = at >= from && !regrouped && cohort !== null;
    let cell: CohortCell | undefined;
    const into = (offset: number) => {
      if (cell === undefined) steps.push({ at, cell: (cell = emptyCell(cohort!, offset)) });
      return cell;
    };
    if (!conversionDone && conversion === at) {
      conversionDone = true;
      if (counted) into(Math.max(period - cohort!, 0)).converted += 1;
    }
    const inCohort = counted && period >= cohort!;
    for (; p < payments.length && payments[p]![0] === at; p += 1) {
      const [, currency, amountMinor] = payments[p]!;
      const first = period !== lastPayment;
      lastPayment = period;
      if (!inCohort) continue;
      const paid = into(period - cohort!);
      paid.revenue[currency] = (paid.revenue[currency] ?? 0) + amountMinor;
      paid.payments[currency] = (paid.payments[currency] ?? 0) + 1;
      if (first) paid.active += 1;
    }
    for (; c < churns.length && churns[c]![0] === at; c += 1) {
      if (period !== lastChurn && inCohort) into(period - cohort!).churned += 1;
      lastChurn = period;
    }
    if (!pendingDone && pending === at) {
      pendingDone = true;
      if (period !== lastChurn && inCohort) into(period - cohort!).churned += 1;
      lastChurn = period;
    }
    for (; r < reactivations.length && reactivations[r] === at; r += 1) {
      if (period !== lastReactivation && inCohort) into(period - cohort!).reactivated += 1;
      lastReactivation = period;
    }
    if (registration === at) registrationDone = true;
  }
}

/**
 * The earliest instant at which two histories of one customer may have different cohort steps:
 * the first fact (registration, conversion, payment, churn, pending churn, reactivation) that
 * one has and the other has not. Every step before it is the same in both, because a step at an
 * instant depends only on the facts up to it. Infinity when they have the same facts.
 */
export function firstStepChange(a: CustomerHistory, b: CustomerHistory): number {
  let change = Number.POSITIVE_INFINITY;
  const single = (x: number | null, y: number | null) => {
    if (x !== y) change = Math.min(change, x ?? Number.POSITIVE_INFINITY, y ?? Number.POSITIVE_INFINITY);
  };
  const list = <T>(xs: readonly T[], ys: readonly T[], at: (item: T) => number, same: (x: T, y: T) => boolean) => {
    let i = 0;
    while (i < xs.length && i < ys.length && same(xs[i]!, ys[i]!)) i += 1;
    if (i < xs.length) change = Math.min(change, at(xs[i]!));
    if (i < ys.length) change = Math.min(change, at(ys[i]!));
  };
  single(a.registration?.[0] ?? null, b.registration?.[0] ?? null);
  single(a.conversion, b.conversion);
  single(a.pending?.[0] ?? null, b.pending?.[0] ?? null);
  list(a.payments, b.payments, (p) => p[0], (x, y) => x[0] === y[0] && x[1] === y[1] && x[2] === y[2]);
  list(a.churns, b.churns, (c) => c[0], (x, y) => x[0] === y[0]);
  list(a.reactivations, b.reactivations, (at) => at, (x, y) => x === y);
  return change;
}
