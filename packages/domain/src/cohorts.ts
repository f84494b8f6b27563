import type { ChannelCohortRow, CohortRow, LifecycleConfig, Revenue } from '@lifecycle/contracts';
import type { CohortFacts } from './customer-fold.js';
import { PeriodCalendar } from './periods.js';

/**
 * One cell of the cohort table before it is read as of an instant: what a set of customers
 * contributes to cohort `cohortPeriod` in period `cohortPeriod + offset`. Cells add up, so a
 * read model keeps them by adding a customer's new contribution and subtracting its old one.
 */
export interface CohortCell {
  cohortPeriod: number;
  offset: number;
  /** Customers acquired in the cohort (only on offset 0). */
  customers: number;
  /** Customers converted in this period (or, on offset 0, before the cohort). */
  converted: number;
  active: number;
  churned: number;
  reactivated: number;
  revenue: Revenue;
  /** Paying events per currency: a currency stays in the table while it has one, even at 0. */
  payments: Record<string, number>;
}

const cellKey = (cohortPeriod: number, offset: number) => `${cohortPeriod}:${offset}`;

/** A cell with nothing added to it. */
export const emptyCell = (cohortPeriod: number, offset: number): CohortCell => ({
  cohortPeriod,
  offset,
  customers: 0,
  converted: 0,
  active: 0,
  churned: 0,
  reactivated: 0,
  revenue: {},
  payments: {},
});

/** Adds `cell`'s counts and amounts (times `sign`) to `into`'s. */
export function addToCell(into: CohortCell, cell: CohortCell, sign = 1): void {
  into.customers += sign * cell.customers;
  into.converted += sign * cell.converted;
  into.active += sign * cell.active;
  into.churned += sign * cell.churned;
  into.reactivated += sign * cell.reactivated;
  for (const [currency, amount] of Object.entries(cell.revenue)) into.revenue[currency] = (into.revenue[currency] ?? 0) + sign * amount;
  for (const [currency, count] of Object.entries(cell.payments)) into.payments[currency] = (into.payments[currency] ?? 0) + sign * count;
}

/** A cell that adds nothing: every count and amount 0. */
export const isEmptyCell = (cell: CohortCell): boolean =>
  cell.customers === 0 &&
  cell.converted === 0 &&
  cell.active === 0 &&
  cell.churned === 0 &&
  cell.reactivated === 0 &&
  Object.values(cell.revenue).every((amount) => amount === 0) &&
  Object.values(cell.payments).every((count) => count === 0);

/** Sums contributions into cells; `sign` -1 takes a contribution back out. */
export class CohortCells {
  readonly cells = new Map<string, CohortCell>();

  private cell(cohortPeriod: number, offset: number): CohortCell {
    const key = cellKey(cohortPeriod, offset);
    let cell = this.cells.get(key);
    if (cell === undefined) this.cells.set(key, (cell = emptyCell(cohortPeriod, offset)));
    return cell;
  }

  addCell(cell: CohortCell, sign = 1): void {
    addToCell(this.cell(cell.cohortPeriod, cell.offset), cell, sign);
  }

  /** Adds one customer's contribution (SPEC §4 columns, each customer once per period). */
  addCustomer(facts: CohortFacts, sign = 1): void {
    const c = facts.cohortPeriod;
    this.cell(c, 0).customers += sign;
    if (facts.convertedPeriod !== null) this.cell(c, Math.max(facts.convertedPeriod - c, 0)).converted += sign;
    const once = (periods: readonly number[], field: 'active' | 'churned' | 'reactivated') => {
      for (const period of new Set(periods)) if (period >= c) this.cell(c, period - c)[field] += sign;
    };
    once(facts.payments.map((p) => p.period), 'active');
    once(facts.churnPeriods, 'churned');
    once(facts.reactivationPeriods, 'reactivated');
    for (const payment of facts.payments) {
      if (payment.period < c) continue;
      const cell = this.cell(c, payment.period - c);
      cell.revenue[payment.currency] = (cell.revenue[payment.currency] ?? 0) + sign * payment.amountMinor;
      cell.payments[payment.currency] = (cell.payments[payment.currency] ?? 0) + sign;
    }
  }
}

/**
 * The cohort table of SPEC §4 as of `asOf` from summed cells: a row for every period of every
 * non-empty cohort that has started by then, sorted by cohort label then period index.
 */
export function cohortRowsFromCells(cells: Iterable<CohortCell>, asOf: number, config: LifecycleConfig): CohortRow[] {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const current = calendar.indexOf(asOf);
  const byCohort = new Map<number, Map<number, CohortCell>>();
  for (const cell of cells) {
    const cohort = byCohort.get(cell.cohortPeriod) ?? new Map<number, CohortCell>();
    cohort.set(cell.offset, cell);
    byCohort.set(cell.cohortPeriod, cohort);
  }
  const rows: CohortRow[] = [];
  for (const [c, cohort] of byCohort) {
    const size = cohort.get(0)?.customers ?? 0;
    if (size <= 0) continue;
    let converted = 0;
    for (let k = 0; c + k <= current; k += 1) {
      const cell = cohort.get(k);
      converted += cell?.converted ?? 0;
      rows.push({
        cohort: calendar.label(c),
        periodIndex: k,
        period: calendar.label(c + k),
        size,
        converted,
        active: cell?.active ?? 0,
        churned: cell?.churned ?? 0,
        reactivated: cell?.reactivated ?? 0,
        revenue: cell === undefined ? {} : cellRevenue(cell),
      });
    }
  }
  return rows.sort((a, b) => (a.cohort < b.cohort ? -1 : a.cohort > b.cohort ? 1 : a.periodIndex - b.periodIndex));
}

/** The cohort table as of `asOf` from the customers' facts as of the same instant. */
export function cohortRows(facts: Iterable<CohortFacts>, asOf: number, config: LifecycleConfig): CohortRow[] {
  const cells = new CohortCells();
  for (const customer of facts) cells.addCustomer(customer);
  return cohortRowsFromCells(cells.cells.values(), asOf, config);
}

/** The cohort table of each acquisition channel (SPEC §7 `--by channel`), sorted by cohort, channel, period index. */
export function cohortRowsByChannel(facts: Iterable<CohortFacts>, asOf: number, config: LifecycleConfig): ChannelCohortRow[] {
  const byChannel = new Map<string, CohortFacts[]>();
  for (const customer of facts) {
    const list = byChannel.get(customer.channel);
    if (list) list.push(customer);
    else byChannel.set(customer.channel, [customer]);
  }
  const rows: ChannelCohortRow[] = [];
  for (const [channel, members] of byChannel) {
    for (const { cohort, ...rest } of cohortRows(members, asOf, config)) rows.push({ cohort, channel, ...rest });
  }
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return rows.sort((a, b) => order(a.cohort, b.cohort) || order(a.channel, b.channel) || a.periodIndex - b.periodIndex);
}

const cellRevenue = (cell: CohortCell): Revenue =>
  sortedRevenue(new Map(Object.entries(cell.revenue).filter(([currency]) => (cell.payments[currency] ?? 0) > 0)));

/** Revenue with currencies in alphabetical order. */
export function sortedRevenue(revenue: ReadonlyMap<string, number>): Revenue {
  const sorted: Revenue = {};
  for (const currency of [...revenue.keys()].sort()) sorted[currency] = revenue.get(currency)!;
  return sorted;
}
