import { CHURN_REASONS, STAGES, type ChurnRow, type CohortRow, type CustomerRow, type LifecycleConfig, type ReferralRow, type StageRow, type Touchpoint } from '@lifecycle/contracts';
import { timed, type TimedTouchpoint } from './canonical-order.js';
import { cohortRows, sortedRevenue } from './cohorts.js';
import { foldCustomer, type CustomerInput, type CohortFacts, type LinkedImpression } from './customer-fold.js';
import { churnsAsOf, cohortFactsAsOf, rowAsOf, type CustomerHistory } from './customer-history.js';
import { PeriodCalendar } from './periods.js';

/** A registration carrying an `anonymousId`, as far as linking needs it. */
export interface LinkingRegistration {
  readonly at: number;
  readonly id: string;
}

/**
 * Who owns a visitor (SPEC §5): the customer of the canonically earliest registration carrying
 * its `anonymousId` (registrations share a type rank, so: by time, then id). True when
 * `candidate` takes the visitor from `current`.
 */
export function linksEarlier(candidate: LinkingRegistration, current: LinkingRegistration | undefined): boolean {
  return current === undefined || candidate.at < current.at || (candidate.at === current.at && candidate.id < current.id);
}

/**
 * Groups a set of distinct touchpoints (as a store holds them: one per id) into the fold's
 * inputs, each customer with its own touchpoints and the impressions of the visitors it owns;
 * `latest` is the latest event time of the whole set, the default as-of instant (SPEC §7).
 */
export function groupByCustomer(touchpoints: Iterable<Touchpoint>): { inputs: CustomerInput[]; latest: number } {
  const own = new Map<string, TimedTouchpoint[]>();
  const visitorImpressions = new Map<string, TimedTouchpoint[]>();
  const owners = new Map<string, TimedTouchpoint & LinkingRegistration>();
  let latest = Number.NEGATIVE_INFINITY;
  for (const touchpoint of touchpoints) {
    const t = timed(touchpoint);
    if (t.at > latest) latest = t.at;
    const customerId = touchpoint.customerId;
    const bucket = customerId !== undefined ? own : visitorImpressions;
    const key = customerId ?? touchpoint.anonymousId!;
    const list = bucket.get(key);
    if (list) list.push(t);
    else bucket.set(key, [t]);
    if (touchpoint.type === 'registration' && touchpoint.anonymousId !== undefined) {
      const candidate = { ...t, id: touchpoint.id };
      if (linksEarlier(candidate, owners.get(touchpoint.anonymousId))) owners.set(touchpoint.anonymousId, candidate);
    }
  }
  const linked = new Map<string, LinkedImpression[]>();
  for (const [anonymousId, registration] of owners) {
    const impressions = visitorImpressions.get(anonymousId);
    if (impressions === undefined) continue;
    const customerId = registration.touchpoint.customerId!;
    const list = linked.get(customerId) ?? [];
    for (const impression of impressions) list.push({ impression, linkAt: registration.at });
    linked.set(customerId, list);
  }
  const inputs = [...own].map(([customerId, list]) => ({ customerId, touchpoints: list, linkedImpressions: linked.get(customerId) ?? [] }));
  return { inputs, latest };
}

export interface Projection {
  /** The as-of instant, epoch ms. */
  asOf: number;
  customers: CustomerRow[];
  cohorts: CohortRow[];
}

/**
 * Customers and cohorts as of `asOf` from whole customer histories: the batch path, used by
 * `export --as-of` and `replay`. A customer has a row once any of its touchpoints is ≤ asOf.
 */
export function projectAsOf(inputs: readonly CustomerInput[], asOf: number, config: LifecycleConfig): Projection {
  const customers: CustomerRow[] = [];
  const facts: CohortFacts[] = [];
  for (const input of inputs) {
    if (!input.touchpoints.some((t) => t.at <= asOf)) continue;
    const snapshot = foldCustomer(input, asOf, config, { timeline: false });
    customers.push(snapshot.row);
    if (snapshot.cohortFacts !== null) facts.push(snapshot.cohortFacts);
  }
  customers.sort((a, b) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0));
  return { asOf, customers, cohorts: cohortRows(facts, asOf, config) };
}

/** The cohort facts as of `asOf` of the customers acquired by then, from their histories. */
export function cohortFactsOfHistories(histories: Iterable<{ readonly history: CustomerHistory }>, asOf: number, config: LifecycleConfig): CohortFacts[] {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const facts: CohortFacts[] = [];
  for (const { history } of histories) {
    const customerFacts = cohortFactsAsOf(history, asOf, calendar);
    if (customerFacts !== null) facts.push(customerFacts);
  }
  return facts;
}

/**
 * The same projection from the customers' histories (sorted by customerId) instead of their
 * touchpoints: an as-of export of the read models without a fold.
 */
export function projectHistoriesAsOf(
  histories: Iterable<{ readonly customerId: string; readonly history: CustomerHistory }>,
  asOf: number,
  config: LifecycleConfig,
): Projection {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const customers: CustomerRow[] = [];
  const facts: CohortFacts[] = [];
  for (const { customerId, history } of histories) {
    const row = rowAsOf(customerId, history, asOf, calendar);
    if (row === null) continue;
    customers.push(row);
    const customerFacts = cohortFactsAsOf(history, asOf, calendar);
    if (customerFacts !== null) facts.push(customerFacts);
  }
  return { asOf, customers, cohorts: cohortRows(facts, asOf, config) };
}

/** Each customer's history as of `asOf` (those with a touchpoint by then), folded from whole histories, sorted by customerId. */
export function historiesOf(inputs: readonly CustomerInput[], asOf: number, config: LifecycleConfig): { customerId: string; history: CustomerHistory }[] {
  const histories: { customerId: string; history: CustomerHistory }[] = [];
  for (const input of inputs) {
    if (!input.touchpoints.some((t) => t.at <= asOf)) continue;
    histories.push({ customerId: input.customerId, history: foldCustomer(input, asOf, config, { timeline: false }).history });
  }
  return histories.sort((a, b) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0));
}

/** Churns by period and reason as of `asOf`, sorted by period, then reason. */
export function churnRows(histories: Iterable<{ readonly history: CustomerHistory }>, asOf: number, config: LifecycleConfig): ChurnRow[] {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const counts = new Map<number, Map<string, number>>();
  for (const { history } of histories) {
    for (const [at, reason] of churnsAsOf(history, asOf)) {
      const period = calendar.indexOf(at);
      const byReason = counts.get(period) ?? new Map<string, number>();
      byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
      counts.set(period, byReason);
    }
  }
  return [...counts.keys()]
    .sort((a, b) => a - b)
    .flatMap((period) => [...CHURN_REASONS].sort().flatMap((reason) => {
      const churns = counts.get(period)!.get(reason);
      return churns === undefined ? [] : [{ period: calendar.label(period), reason, churns }];
    }));
}

/** Customers by stage as of `asOf`, every stage in SPEC §3's order. */
export function stageRows(histories: Iterable<{ readonly customerId: string; readonly history: CustomerHistory }>, asOf: number, config: LifecycleConfig): StageRow[] {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const counts = new Map<string, number>();
  for (const { customerId, history } of histories) {
    const row = rowAsOf(customerId, history, asOf, calendar);
    if (row !== null) counts.set(row.stage, (counts.get(row.stage) ?? 0) + 1);
  }
  return STAGES.map((stage) => ({ stage, customers: counts.get(stage) ?? 0 }));
}

/**
 * SPEC §4's rolling churn rate over `windowMs` ending at `asOf`: customers with a churn in
 * (asOf − window, asOf] over customers converted and not churned at asOf − window; null without
 * a base (a rate of 0 would claim a calm that nobody could have broken).
 */
export function rollingChurnRateOf(histories: Iterable<{ readonly customerId: string; readonly history: CustomerHistory }>, asOf: number, windowMs: number, config: LifecycleConfig): number | null {
  const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  const start = asOf - windowMs;
  let base = 0;
  let churned = 0;
  for (const { customerId, history } of histories) {
    const before = rowAsOf(customerId, history, start, calendar);
    if (before !== null && before.convertedAt !== null && before.stage !== 'churned') base += 1;
    if (churnsAsOf(history, asOf).some(([at]) => at > start)) churned += 1;
  }
  return base === 0 ? null : churned / base;
}

/** The referral loop as of `asOf`: per referrer, the customers it referred, how many converted, their revenue; sorted by referrer. */
export function referralRows(histories: Iterable<{ readonly history: CustomerHistory }>, asOf: number): ReferralRow[] {
  const byReferrer = new Map<string, { referred: number; converted: number; revenue: Map<string, number> }>();
  for (const { history } of histories) {
    const registration = history.registration;
    if (registration === null || registration[0] > asOf || registration[2] === undefined) continue;
    const into = byReferrer.get(registration[2]) ?? { referred: 0, converted: 0, revenue: new Map<string, number>() };
    byReferrer.set(registration[2], into);
    into.referred += 1;
    if (history.conversion !== null && history.conversion <= asOf) into.converted += 1;
    for (const [at, currency, amountMinor] of history.payments) {
      if (at <= asOf) into.revenue.set(currency, (into.revenue.get(currency) ?? 0) + amountMinor);
    }
  }
  return [...byReferrer.keys()]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((referrer) => {
      const { referred, converted, revenue } = byReferrer.get(referrer)!;
      return { referrer, referred, converted, revenue: sortedRevenue(revenue) };
    });
}
