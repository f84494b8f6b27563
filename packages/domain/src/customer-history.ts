import type { ChurnReason, CustomerRow, Stage } from '@lifecycle/contracts';
import type { CohortFacts, PaymentFact } from './customer-fold.js';
import { toIso } from './canonical-order.js';
import { sortedRevenue } from './cohorts.js';
import type { PeriodCalendar } from './periods.js';

/**
 * What a customer's fold saw, as timed facts: enough to give its row and its cohort facts as of
 * any instant without its touchpoints (SPEC §7 `--as-of`, `?asOf=`). Each fact is fixed once
 * its instant has passed, because the fold walks forward in time: the lifecycle as of T is the
 * walk stopped at T. What is not fixed that way (the acquisition a later registration takes
 * over, the channel a later-linked impression sets) is kept as its own step. A plain JSON
 * value: the read model stores it as is. Instants are epoch ms.
 */
export interface CustomerHistory {
  /** The earliest own touchpoint: the customer has a row from then on. */
  readonly first: number;
  /** The first registration, the channel it names (`referral` for a referred one) and the customer who referred it, if any. */
  readonly registration: readonly [at: number, channel: string | null, referredBy?: string] | null;
  /** The channel of the canonically first impression (own or of a linked visitor) from each instant on. */
  readonly impressionChannel: readonly (readonly [from: number, channel: string])[];
  readonly conversion: number | null;
  readonly payments: readonly (readonly [at: number, currency: string, amountMinor: number])[];
  readonly referrals: readonly number[];
  readonly churns: readonly (readonly [at: number, reason: ChurnReason])[];
  readonly reactivations: readonly number[];
  /** Every change of stage, in order. */
  readonly stages: readonly (readonly [at: number, stage: Stage])[];
  /** The churn that follows the last fact unless a touchpoint comes first. */
  readonly pending: readonly [at: number, reason: ChurnReason] | null;
}

const upTo = <T>(items: readonly T[], asOf: number, at: (item: T) => number): T[] => {
  let n = 0;
  while (n < items.length && at(items[n]!) <= asOf) n += 1;
  return items.slice(0, n);
};

/** The customer's churns (instant, reason) by `asOf`, its pending one included once due. */
export function churnsAsOf(history: CustomerHistory, asOf: number): (readonly [number, ChurnReason])[] {
  const churns = upTo(history.churns, asOf, (c) => c[0]);
  if (history.pending !== null && history.pending[0] <= asOf) churns.push(history.pending);
  return churns;
}

function acquisitionAsOf(history: CustomerHistory, asOf: number): number | null {
  if (history.registration !== null && history.registration[0] <= asOf) return history.registration[0];
  return history.conversion !== null && history.conversion <= asOf ? history.conversion : null;
}

function channelAsOf(history: CustomerHistory, asOf: number): string {
  const named = history.registration !== null && history.registration[0] <= asOf ? history.registration[1] : null;
  if (named !== null) return named;
  return upTo(history.impressionChannel, asOf, (step) => step[0]).at(-1)?.[1] ?? 'direct';
}

/** The customer's export row as of `asOf` (null before its first touchpoint): what `foldCustomer` gives at `asOf`. */
export function rowAsOf(customerId: string, history: CustomerHistory, asOf: number, calendar: PeriodCalendar): CustomerRow | null {
  if (history.first > asOf) return null;
  const acquiredAt = acquisitionAsOf(history, asOf);
  const churns = churnsAsOf(history, asOf);
  const lastChurn = churns.at(-1);
  const payments = upTo(history.payments, asOf, (p) => p[0]);
  const revenue = new Map<string, number>();
  for (const [, currency, amountMinor] of payments) revenue.set(currency, (revenue.get(currency) ?? 0) + amountMinor);
  const pendingChurned = history.pending !== null && history.pending[0] <= asOf;
  const conversion = history.conversion !== null && history.conversion <= asOf ? history.conversion : null;
  return {
    customerId,
    stage: pendingChurned ? 'churned' : (upTo(history.stages, asOf, (s) => s[0]).at(-1)?.[1] ?? 'reached'),
    acquiredAt: acquiredAt === null ? null : toIso(acquiredAt),
    cohort: acquiredAt === null ? null : calendar.label(calendar.indexOf(acquiredAt)),
    channel: acquiredAt === null ? null : channelAsOf(history, asOf),
    convertedAt: conversion === null ? null : toIso(conversion),
    churnedAt: lastChurn === undefined ? null : toIso(lastChurn[0]),
    churnReason: lastChurn?.[1] ?? null,
    payments: payments.length,
    reactivations: upTo(history.reactivations, asOf, (at) => at).length,
    referrals: upTo(history.referrals, asOf, (at) => at).length,
    revenue: sortedRevenue(revenue),
  };
}

/** What the customer adds to the cohort table as of `asOf`: what `foldCustomer` gives at `asOf`. */
export function cohortFactsAsOf(history: CustomerHistory, asOf: number, calendar: PeriodCalendar): CohortFacts | null {
  return cohortFactsOf(history, asOf, true, calendar);
}

/** What the customer adds to the cohort table at the instant it was folded at (its pending churn not yet). */
export function recordedCohortFacts(history: CustomerHistory, calendar: PeriodCalendar): CohortFacts | null {
  return cohortFactsOf(history, Number.POSITIVE_INFINITY, false, calendar);
}

function cohortFactsOf(history: CustomerHistory, asOf: number, withPending: boolean, calendar: PeriodCalendar): CohortFacts | null {
  const acquiredAt = acquisitionAsOf(history, asOf);
  if (acquiredAt === null) return null;
  const period = (at: number) => calendar.indexOf(at);
  const conversion = history.conversion !== null && history.conversion <= asOf ? history.conversion : null;
  const churns = withPending ? churnsAsOf(history, asOf) : upTo(history.churns, asOf, (c) => c[0]);
  return {
    cohortPeriod: period(acquiredAt),
    channel: channelAsOf(history, asOf),
    convertedPeriod: conversion === null ? null : period(conversion),
    payments: upTo(history.payments, asOf, (p) => p[0]).map(([at, currency, amountMinor]): PaymentFact => ({ period: period(at), currency, amountMinor })),
    churnPeriods: churns.map(([at]) => period(at)),
    reactivationPeriods: upTo(history.reactivations, asOf, (at) => at).map(period),
  };
}
