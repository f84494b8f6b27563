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
import { recordedCohortFacts, rowAsOf, type CustomerHistory } from './customer-history.js';

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
  /** Its timed facts, from which its row and cohort facts as of any instant follow. */
  readonly history: CustomerHistory;
  /** Every stage change up to the as-of instant, in order, with its cause (empty when not asked for). */
  readonly timeline: readonly LifecycleEvent[];
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
    fold.add(t);
  }
  return fold.snapshot(input.customerId, input.linkedImpressions ?? [], asOf);
}

/** The first registration as a history keeps it: when, the channel it names, who referred it. */
function registrationFact(at: number, { channel, referredBy }: { channel?: string; referredBy?: string }): CustomerHistory['registration'] {
  const named = channel ?? (referredBy !== undefined ? 'referral' : null);
  return referredBy === undefined ? [at, named] : [at, named, referredBy];
}

function isCanonical(touchpoints: readonly TimedTouchpoint[]): boolean {
  for (let i = 1; i < touchpoints.length; i += 1) if (compareCanonical(touchpoints[i - 1]!, touchpoints[i]!) > 0) return false;
  return true;
}

/**
 * The walk of `foldCustomer`, kept between calls so that it resumes where it stopped: the
 * projector holds one per customer instead of its touchpoints, and folds a new touchpoint on
 * (O(1)) when it comes after every one folded (`follows`); an earlier one needs a walk from the
 * start. `add` is the walk's step; `snapshot` finishes a copy at an instant, so that the walk
 * itself never passes a deadline that a later touchpoint may yet come before.
 */
export class CustomerFold {
  private readonly graceMs: number;
  private readonly inactivityMs: number;
  readonly calendar: PeriodCalendar;

  private first: number | null = null;
  private firstRegistration: TimedTouchpoint | null = null;
  private firstOwnImpression: TimedTouchpoint | null = null;
  private conversion: TimedTouchpoint | null = null;
  private loyal = false;
  private readonly payments: [number, string, number][] = [];
  private readonly referrals: number[] = [];
  private readonly churns: [number, ChurnReason][] = [];
  private readonly reactivations: number[] = [];
  private readonly stages: [number, Stage][] = [];

  // The current churn episode (SPEC §3): its latest paying event, and the first failure after it.
  private anchor: TimedTouchpoint | null = null;
  private failure: TimedTouchpoint | null = null;
  private churned = false;

  private stage: Stage | null = null;
  private readonly timeline: LifecycleEvent[] = [];
  /** The last touchpoint folded, in canonical order. */
  private last: TimedTouchpoint | null = null;

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

  /** Whether `t` may be folded on: it comes after every touchpoint folded (SPEC §2 canonical order). */
  follows(t: TimedTouchpoint): boolean {
    return this.last === null || compareCanonical(this.last, t) < 0;
  }

  /** Folds the next touchpoint: one that `follows`. */
  add(t: TimedTouchpoint): void {
    if (!this.follows(t)) throw new Error(`touchpoint ${t.touchpoint.id} comes before ${this.last!.touchpoint.id}: a fold only goes forward in canonical order`);
    // A paying event exactly at a deadline is inside the window and prevents the churn.
    this.passDeadlines(t.at, !isPaying(t.touchpoint));
    this.apply(t);
    this.last = t;
  }

  /** No touchpoint folded yet. */
  get empty(): boolean {
    return this.last === null;
  }

  /** The facts it holds (the keyed state's bound weighs customers by them). */
  get weight(): number {
    return this.payments.length + this.referrals.length + this.churns.length + this.reactivations.length + this.stages.length + this.timeline.length;
  }

  /** Churns the episode if its deadline is before `t` (or at `t`, when `inclusive`). */
  private passDeadlines(t: number, inclusive: boolean): void {
    const deadline = this.deadline();
    if (deadline === null || deadline.at > t || (deadline.at === t && !inclusive)) return;
    this.churned = true;
    this.failure = null;
    this.churns.push([deadline.at, deadline.reason]);
    this.changeStage(deadline.at, {
      kind: 'deadline',
      deadline: deadline.reason === 'payment_failure' ? 'payment_grace' : 'inactivity',
      after: deadline.after.touchpoint.id,
    }, deadline.reason);
  }

  private apply(t: TimedTouchpoint): void {
    const touchpoint = t.touchpoint;
    this.first ??= t.at;
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
        this.referrals.push(t.at);
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
    this.payments.push([t.at, currency, amountMinor]);
    this.conversion ??= t;
    if (this.churned) {
      this.churned = false;
      this.reactivations.push(t.at);
    }
    this.anchor = t;
    this.failure = null;
    if (this.payments.length >= this.config.loyalty.minPayments) this.loyal = true;
  }

  private currentStage(): Stage {
    if (this.churned) return 'churned';
    if (this.failure !== null) return 'at_risk';
    return this.baseStage();
  }

  private baseStage(): Stage {
    if (this.loyal) return 'loyal';
    if (this.payments.length >= 2) return 'retained';
    if (this.conversion !== null) return 'converted';
    if (this.firstRegistration !== null) return 'acquired';
    return 'reached';
  }

  private changeStage(at: number, cause: LifecycleCause, reason?: ChurnReason): void {
    const from = this.stage;
    const to = this.currentStage();
    if (from === to) return;
    this.stage = to;
    this.stages.push([at, to]);
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
        retained: this.payments.length >= 2,
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

  /**
   * The customer as of `asOf` (at or after every touchpoint folded): the deadlines up to it are
   * passed on a copy, whose facts the snapshot keeps (this fold goes on with its own).
   */
  snapshot(customerId: string, linkedImpressions: readonly LinkedImpression[], asOf: number): CustomerSnapshot {
    const copy = this.copy();
    copy.passDeadlines(asOf, true);
    return copy.finish(customerId, linkedImpressions, asOf);
  }

  private copy(): CustomerFold {
    const copy = new CustomerFold(this.config, this.recordTimeline);
    Object.assign(copy, this);
    for (const key of ['payments', 'referrals', 'churns', 'reactivations', 'stages', 'timeline'] as const) Object.assign(copy, { [key]: [...this[key]] });
    return copy;
  }

  private finish(customerId: string, linkedImpressions: readonly LinkedImpression[], asOf: number): CustomerSnapshot {
    const registration = this.firstRegistration?.touchpoint;
    const pending = this.deadline();
    const history: CustomerHistory = {
      first: this.first ?? asOf,
      registration:
        registration?.type === 'registration'
          ? registrationFact(this.firstRegistration!.at, registration.properties)
          : null,
      impressionChannel: this.impressionChannel(linkedImpressions, asOf),
      conversion: this.conversion?.at ?? null,
      payments: this.payments,
      referrals: this.referrals,
      churns: this.churns,
      reactivations: this.reactivations,
      stages: this.stages,
      pending: pending === null ? null : [pending.at, pending.reason],
    };
    return {
      row: rowAsOf(customerId, history, asOf, this.calendar)!,
      cohortFacts: recordedCohortFacts(history, this.calendar),
      history,
      timeline: this.timeline,
    };
  }

  /**
   * The channel of the canonically first impression the customer has, from each instant on
   * (SPEC §3, §5): its own first impression counts from its time, a linked visitor's from the
   * later of its time and the link's.
   */
  private impressionChannel(linkedImpressions: readonly LinkedImpression[], asOf: number): [number, string][] {
    const candidates: { from: number; impression: TimedTouchpoint }[] = [];
    if (this.firstOwnImpression !== null) candidates.push({ from: this.firstOwnImpression.at, impression: this.firstOwnImpression });
    for (const { impression, linkAt } of linkedImpressions) {
      const from = Math.max(linkAt, impression.at);
      if (from <= asOf) candidates.push({ from, impression });
    }
    candidates.sort((a, b) => a.from - b.from);
    const steps: [number, string][] = [];
    let first: TimedTouchpoint | null = null;
    for (const { from, impression } of candidates) {
      if (first !== null && compareCanonical(impression, first) >= 0) continue;
      first = impression;
      const channel = impression.touchpoint.type === 'ad_impression' ? impression.touchpoint.properties.channel : 'direct';
      if (steps.at(-1)?.[0] === from) steps[steps.length - 1] = [from, channel];
      else if (steps.at(-1)?.[1] !== channel) steps.push([from, channel]);
    }
    return steps;
  }
}
