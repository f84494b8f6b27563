import type { ChannelRow, LifecycleConfig, Revenue } from '@lifecycle/contracts';
import type { CohortFacts } from './customer-fold.js';
import { sortedRevenue } from './cohorts.js';
import { PeriodCalendar } from './periods.js';

/** An `ad_impression` as channel economics count it: linked to a customer or not (SPEC §4). */
export interface ImpressionFact {
  readonly channel: string;
  /** `occurredAt`, epoch ms. */
  readonly at: number;
  readonly cost?: { readonly currency: string; readonly amountMinor: number };
}

interface Cell {
  impressions: number;
  cost: Map<string, number>;
  acquired: number;
  revenue: Map<string, number>;
}

/** `round(numerator / denominator)` to the nearest integer, halves up, exactly (amounts may exceed 2^53 / 1000). */
function roundHalfUp(numerator: bigint, denominator: bigint): number {
  return Number((2n * numerator + denominator) / (2n * denominator));
}

/**
 * Channel economics as of `asOf` (SPEC §4, §7): per acquisition channel and period, the
 * impressions and their cost, the customers acquired, their revenue, CPM and CPA. `facts` are
 * the customers' cohort facts as of `asOf` (their channel, acquisition period and payments);
 * `impressions` every recorded impression (those after `asOf` are left out here). Sorted by
 * channel, then period.
 */
export function channelEconomics(facts: Iterable<CohortFacts>, impressions: Iterable<ImpressionFact>, asOf: number, config: LifecycleConfig): ChannelRow[] {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const cells = new Map<string, Map<number, Cell>>();
  const cell = (channel: string, period: number): Cell => {
    let byPeriod = cells.get(channel);
    if (byPeriod === undefined) cells.set(channel, (byPeriod = new Map()));
    let found = byPeriod.get(period);
    if (found === undefined) byPeriod.set(period, (found = { impressions: 0, cost: new Map(), acquired: 0, revenue: new Map() }));
    return found;
  };
  for (const impression of impressions) {
    if (impression.at > asOf) continue;
    const into = cell(impression.channel, calendar.indexOf(impression.at));
    into.impressions += 1;
    if (impression.cost !== undefined) into.cost.set(impression.cost.currency, (into.cost.get(impression.cost.currency) ?? 0) + impression.cost.amountMinor);
  }
  for (const customer of facts) {
    cell(customer.channel, customer.cohortPeriod).acquired += 1;
    for (const { period, currency, amountMinor } of customer.payments) {
      const into = cell(customer.channel, period);
      into.revenue.set(currency, (into.revenue.get(currency) ?? 0) + amountMinor);
    }
  }
  const rows: ChannelRow[] = [];
  for (const channel of [...cells.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const byPeriod = cells.get(channel)!;
    for (const period of [...byPeriod.keys()].sort((a, b) => a - b)) {
      const c = byPeriod.get(period)!;
      const cost = sortedRevenue(c.cost);
      const perCurrency = (divide: (amount: number) => number): Revenue =>
        Object.fromEntries(Object.entries(cost).map(([currency, amount]) => [currency, divide(amount)]));
      rows.push({
        channel,
        period: calendar.label(period),
        impressions: c.impressions,
        cost,
        acquired: c.acquired,
        revenue: sortedRevenue(c.revenue),
        cpm: c.impressions === 0 ? {} : perCurrency((amount) => roundHalfUp(BigInt(amount) * 1000n, BigInt(c.impressions))),
        cpa: c.acquired === 0 ? null : perCurrency((amount) => roundHalfUp(BigInt(amount), BigInt(c.acquired))),
      });
    }
  }
  return rows;
}
