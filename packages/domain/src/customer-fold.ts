import type {
  ChurnReason,
  CustomerRow,
  LifecycleCause,
  LifecycleConfig,
  LifecycleEvent,
  LifecycleEventType,
  Stage,
  Touchpoint,
} from '@lifecycle/contracts';
import { DAY_MS, compareCanonical, isPaying, toIso, type TimedTouchpoint } from './canonical-order.js';
import { PeriodCalendar } from './periods.js';
import { sortedRevenue } from './cohorts.js';

/** An impression of a visitor linked to this customer by a registration at `linkAt` (SPEC §5). */
export interface LinkedImpression {
  readonly impression: TimedTouchpoint;
  readonly linkAt: number;
}

export interface CustomerInput {
  readonly customerId: string;
  /** The customer's own distinct touchpoints, in any order. */
  readonly touchpoints: readonly TimedTouchpoint[];
  readonly linkedImpressions?: readonly LinkedImpression[];
}

export interface PaymentFact {
  readonly period: number;
  readonly currency: string;
  readonly amountMinor: number;
}

/** What a customer contributes to the cohort table; periods are `PeriodCalendar` numbers. */
export interface CohortFacts {
  readonly cohortPeriod: number;
  readonly channel: string;
  readonly convertedPeriod: number | null;
  readonly payments: readonly PaymentFact[];
  readonly churnPeriods: readonly number[];
  readonly reactivationPeriods: readonly number[];
}

export interface CustomerSnapshot {
  readonly row: CustomerRow;
  /** `null` while the customer is not acquired. */
  readonly cohortFacts: CohortFacts | null;
  /** Every stage change up to the as-of instant, in order, with its cause (empty when not asked for). */
  readonly timeline: readonly LifecycleEvent[];
  /** The next churn deadline after the as-of instant, if one is pending: when to look again. */
  readonly nextDeadline: number | null;
}

interface Deadline {
  at: number;
  reason: ChurnReason;
  after: TimedTouchpoint;
}

const PROGRESSION: readonly Stage[] = ['reached', 'acquired', 'converted', 'retained', 'loyal'];
const PROGRESSION_EVENT: Record<string, LifecycleEventType> = {
  reached: 'CustomerReached',
  acquired: 'CustomerAcquired',
  converted: 'CustomerConverted',
  retained: 'CustomerRetained',
  loyal: 'CustomerBecameLoyal',
};

/**
 * The lifecycle of one customer as of `asOf` (SPEC §3): a single walk over its touchpoints in
 * canonical order, with churn deadlines checked before each touchpoint and at the end.
 */
export function foldCustomer(input: CustomerInput, asOf: number, config: LifecycleConfig, options: { timeline?: boolean } = {}): CustomerSnapshot {
  const fold = new CustomerFold(config, options.timeline ?? true);
  const touchpoints = isCanonical(input.touchpoints) ? input.touchpoints : [...input.touchpoints].sort(compareCanonical);
  for (const t of touchpoints) {
    if (t.at > asOf) break;
    // A paying event exactly at a deadline is inside the window and prevents the churn.
    fold.passDeadlines(t.at, !isPaying(t.touchpoint));
    fold.apply(t);
  }
  fold.passDeadlines(asOf, true);
  return fold.snapshot(input, asOf);
}

function isCanonical(touchpoints: readonly TimedTouchpoint[]): boolean {
  for (let i = 1; i < touchpoints.length; i += 1) if (compareCanonical(touchpoints[i - 1]!, touchpoints[i]!) > 0) return false;
  return true;
}

class CustomerFold {
  private readonly graceMs: number;
  private readonly inactivityMs: number;
  private readonly calendar: PeriodCalendar;

  private firstRegistration: TimedTouchpoint | null = null;
  private firstOwnImpression: TimedTouchpoint | null = null;
  private conversion: TimedTouchpoint | null = null;
  private payments = 0;
  private referrals = 0;
  private reactivations = 0;
  private loyal = false;
  private readonly revenue = new Map<string, number>();
  private readonly paymentFacts: PaymentFact[] = [];
  private readonly churnAts: number[] = [];
  private readonly reactivationAts: number[] = [];
  private lastChurn: { at: number; reason: ChurnReason } | null = null;

  // The current churn episode (SPEC §3): its latest paying event, and the first failure after it.
  private anchor: TimedTouchpoint | null = null;
  private failure: TimedTouchpoint | null = null;
  private churned = false;

  private stage: Stage | null = null;
  private readonly timeline: LifecycleEvent[] = [];

  constructor(
    private readonly config: LifecycleConfig,
    private readonly recordTimeline: boolean,
  ) {
    this.graceMs = config.churn.paymentGraceDays * DAY_MS;
    this.inactivityMs = config.churn.inactivityDays * DAY_MS;
    this.calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
  }

  private deadline(): Deadline | null {
    if (this.anchor === null || this.churned) return null;
    const inactivity = this.anchor.at + this.inactivityMs;
    if (this.failure !== null) {
      const grace = this.failure.at + this.graceMs;
      if (grace <= inactivity) return { at: grace, reason: 'payment_failure', after: this.failure };
    }
    return { at: inactivity, reason: 'inactivity', after: this.anchor };
  }

  /** Churns the episode if its deadline is before `t` (or at `t`, when `inclusive`). */
  passDeadlines(t: number, inclusive: boolean): void {
    const deadline = this.deadline();
    if (deadline === null || deadline.at > t || (deadline.at === t && !inclusive)) return;
    this.churned = true;
    this.failure = null;
    this.lastChurn = { at: deadline.at, reason: deadline.reason };
    this.churnAts.push(deadline.at);
    this.changeStage(deadline.at, {
      kind: 'deadline',
      deadline: deadline.reason === 'payment_failure' ? 'payment_grace' : 'inactivity',
      after: deadline.after.touchpoint.id,
    }, deadline.reason);
  }

  apply(t: TimedTouchpoint): void {
    const touchpoint = t.touchpoint;
    switch (touchpoint.type) {
      case 'ad_impression':
        this.firstOwnImpression ??= t;
        break;
      case 'registration':
        this.firstRegistration ??= t;
        break;
      case 'purchase':
      case 'renewal':
        this.pay(t, touchpoint.properties.amount.currency, touchpoint.properties.amount.amountMinor);
        break;
      case 'payment_failure':
        if (this.anchor !== null && !this.churned) this.failure ??= t;
        break;
      case 'referral':
        this.referrals += 1;
        if (this.conversion !== null) this.loyal = true;
        break;
      default: {
        const unexpected: never = touchpoint;
        throw new Error(`unhandled touchpoint type ${(unexpected as Touchpoint).type}`);
      }
    }
    if (this.stage !== this.currentStage()) {
      this.changeStage(t.at, { kind: 'touchpoint', touchpointId: touchpoint.id, touchpointType: touchpoint.type });
    }
  }

  private pay(t: TimedTouchpoint, currency: string, amountMinor: number): void {
    this.payments += 1;
    this.revenue.set(currency, (this.revenue.get(currency) ?? 0) + amountMinor);
    this.paymentFacts.push({ period: this.calendar.indexOf(t.at), currency, amountMinor });
    this.conversion ??= t;
    if (this.churned) {
      this.churned = false;
      this.reactivations += 1;
      this.reactivationAts.push(t.at);
    }
    this.anchor = t;
    this.failure = null;
    if (this.payments >= this.config.loyalty.minPayments) this.loyal = true;
  }

  private currentStage(): Stage {
    if (this.churned) return 'churned';
    if (this.failure !== null) return 'at_risk';
    return this.baseStage();
  }

  private baseStage(): Stage {
    if (this.loyal) return 'loyal';
    if (this.payments >= 2) return 'retained';
    if (this.conversion !== null) return 'converted';
    if (this.firstRegistration !== null) return 'acquired';
    return 'reached';
  }

  private changeStage(at: number, cause: LifecycleCause, reason?: ChurnReason): void {
    const from = this.stage;
    const to = this.currentStage();
    if (from === to) return;
    this.stage = to;
    if (!this.recordTimeline) return;
    const iso = toIso(at);
    if (to === 'churned') {
      this.timeline.push({ type: 'CustomerChurned', at: iso, from, to, cause, reason: reason ?? 'inactivity' });
    } else if (to === 'at_risk') {
      this.timeline.push({ type: 'CustomerAtRisk', at: iso, from, to, cause });
    } else if (from === 'at_risk') {
      this.timeline.push({ type: 'CustomerRecovered', at: iso, from, to, cause });
    } else if (from === 'churned') {
      this.timeline.push({ type: 'CustomerReactivated', at: iso, from, to, cause });
    } else {
      // Progress through reached → acquired → converted → retained → loyal, one event per
      // milestone that now holds (an implicit acquisition is acquired and converted at once).
      const holds: Record<string, boolean> = {
        reached: to === 'reached',
        acquired: true,
        converted: this.conversion !== null,
        retained: this.payments >= 2,
        loyal: this.loyal,
      };
      let previous: Stage | null = from;
      for (let i = from === null ? 0 : PROGRESSION.indexOf(from) + 1; i <= PROGRESSION.indexOf(to); i += 1) {
        const step = PROGRESSION[i]!;
        if (!holds[step]) continue;
        this.timeline.push({ type: PROGRESSION_EVENT[step]!, at: iso, from: previous, to: step, cause });
        previous = step;
      }
    }
  }

  snapshot(input: CustomerInput, asOf: number): CustomerSnapshot {
    const acquisition = this.firstRegistration ?? this.conversion;
    const channel = acquisition === null ? null : this.channel(input, asOf);
    const cohortPeriod = acquisition === null ? null : this.calendar.indexOf(acquisition.at);
    const row: CustomerRow = {
      customerId: input.customerId,
      stage: this.stage ?? 'reached',
      acquiredAt: acquisition === null ? null : toIso(acquisition.at),
      cohort: cohortPeriod === null ? null : this.calendar.label(cohortPeriod),
      channel,
      convertedAt: this.conversion === null ? null : toIso(this.conversion.at),
      churnedAt: this.lastChurn === null ? null : toIso(this.lastChurn.at),
      churnReason: this.lastChurn?.reason ?? null,
      payments: this.payments,
      reactivations: this.reactivations,
      referrals: this.referrals,
      revenue: sortedRevenue(this.revenue),
    };
    const cohortFacts: CohortFacts | null =
      cohortPeriod === null || channel === null
        ? null
        : {
            cohortPeriod,
            channel,
            convertedPeriod: this.conversion === null ? null : this.calendar.indexOf(this.conversion.at),
            payments: this.paymentFacts,
            churnPeriods: this.churnAts.map((at) => this.calendar.indexOf(at)),
            reactivationPeriods: this.reactivationAts.map((at) => this.calendar.indexOf(at)),
          };
    return { row, cohortFacts, timeline: this.timeline, nextDeadline: this.deadline()?.at ?? null };
  }

  /** Acquisition channel (SPEC §3): registration channel, referral, first linked impression, direct. */
  private channel(input: CustomerInput, asOf: number): string {
    const registration = this.firstRegistration?.touchpoint;
    if (registration?.type === 'registration') {
      if (registration.properties.channel !== undefined) return registration.properties.channel;
      if (registration.properties.referredBy !== undefined) return 'referral';
    }
    let first = this.firstOwnImpression;
    for (const { impression, linkAt } of input.linkedImpressions ?? []) {
      if (linkAt <= asOf && impression.at <= asOf && (first === null || compareCanonical(impression, first) < 0)) {
        first = impression;
      }
    }
    return first?.touchpoint.type === 'ad_impression' ? first.touchpoint.properties.channel : 'direct';
  }
}
