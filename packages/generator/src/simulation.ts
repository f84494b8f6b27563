import type { Touchpoint } from '@lifecycle/contracts';
import { isoInstant } from './iso-instant.js';
import { MinHeap } from './min-heap.js';
import { Random } from './random.js';

export interface GenerateOptions {
  /** Customers to simulate; besides them, a quarter as many anonymous visitors never register. */
  customers: number;
  /** Same options, same output, byte for byte. */
  seed: number;
  /** Start of the simulated period (an ISO-8601 instant), default 2024-01-01T00:00:00Z. */
  start?: string | undefined;
  /** Length of the simulated period in calendar months, default 12. */
  months?: number | undefined;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const AVERAGE_MONTH = 30.436875 * DAY;

// ---------------------------------------------------------------------------------------------
// The world: channels, campaigns, prices, producers' time zones.

type Currency = 'USD' | 'EUR' | 'GBP';
/** One currency per customer, by weight: half USD, 30 % EUR, 20 % GBP. */
const CURRENCIES: readonly Currency[] = ['USD', 'USD', 'USD', 'USD', 'USD', 'EUR', 'EUR', 'EUR', 'GBP', 'GBP'];

interface Channel {
  readonly name: string;
  readonly campaigns: readonly string[];
  /** Cost of one impression in minor units, [min, max]. */
  readonly cost: readonly [number, number];
}
const channel = (name: string, cost: readonly [number, number], ...campaigns: string[]): Channel => ({
  name,
  cost,
  campaigns: campaigns.map((campaign) => `${name}-${campaign}`),
});
const CHANNELS: readonly Channel[] = [
  channel('search', [30, 250], 'brand', 'generic', 'competitor'),
  channel('social', [5, 90], 'spring-sale', 'lookalike', 'video-teaser'),
  channel('display', [1, 30], 'retargeting', 'black-friday', 'awareness'),
  channel('email', [0, 3], 'newsletter', 'product-launch'),
  channel('affiliate', [20, 300], 'partner-blogs', 'cashback'),
];
/** Win-back campaigns aimed at churned customers, by customerId. */
const WIN_BACK: readonly Channel[] = [channel('email', [0, 3], 'winback'), channel('display', [1, 30], 'winback')];
/** Up-sell campaigns aimed at paying customers, by customerId. */
const UP_SELL: readonly Channel[] = [channel('email', [0, 3], 'upsell'), channel('social', [5, 90], 'upsell')];

interface Plan {
  readonly plan: string;
  readonly price: Readonly<Record<Currency, number>>;
}
const BASIC: Plan = { plan: 'basic', price: { USD: 999, EUR: 899, GBP: 799 } };
const PRO: Plan = { plan: 'pro', price: { USD: 1999, EUR: 1799, GBP: 1599 } };
const TEAM: Plan = { plan: 'team', price: { USD: 4999, EUR: 4499, GBP: 3999 } };
const PLANS: readonly Plan[] = [BASIC, BASIC, BASIC, BASIC, BASIC, PRO, PRO, PRO, TEAM, TEAM];
const UPGRADE = new Map<Plan, Plan>([
  [BASIC, PRO],
  [PRO, TEAM],
]);

/** Share of customers who cancel at their n-th billing date of an episode (index n). */
const CANCEL_BY_TENURE: readonly number[] = [0, 0.2, 0.12, 0.08];
const LONG_TERM_CANCEL = 0.05;
/** Share of billing dates whose payment fails: the first charge after the purchase more often. */
const FIRST_FAILURE_SHARE = 0.2;
const FAILURE_SHARE = 0.1;

const FAILURE_REASONS = ['card_declined', 'insufficient_funds', 'expired_card', 'processing_error'] as const;

/** A fixed UTC offset some producers write their instants in (same instant, other notation). */
interface Zone {
  readonly ms: number;
  readonly suffix: string;
}
const zone = (minutes: number): Zone => {
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return { ms: minutes * MINUTE, suffix: `${minutes < 0 ? '-' : '+'}${hh}:${mm}` };
};
const ZONES: Readonly<Record<Currency, readonly Zone[]>> = {
  USD: [zone(-300), zone(-240), zone(-360), zone(-480), zone(-420)],
  EUR: [zone(60), zone(120)],
  GBP: [zone(0), zone(60)],
};

// ---------------------------------------------------------------------------------------------
// One life: a small state machine whose `at` is the event time of its next touchpoint.

const DONE = -1;
const IMPRESSION = 0;
/** A referral touchpoint of the referrer, just before the referred customer registers. */
const INVITE = 1;
const REGISTRATION = 2;
/** First purchase of a subscription episode (also the comeback purchase after a churn). */
const PURCHASE = 3;
const RENEWAL = 4;
const FAILURE = 5;
/** A referral sent by the customer on its own, with a code only. */
const REFERRAL = 6;
/** A one-off purchase between two renewals. */
const ADD_ON = 7;
/** An up-sell impression between two renewals. */
const UP_SELL_IMPRESSION = 8;

const VISITOR = 0;
const PROSPECT = 1;
const REGISTRANT = 2;
const BUYER = 3;

interface Life {
  /** The event time of the next touchpoint. */
  at: number;
  step: number;
  readonly customerId: string;
  readonly anonymousId: string;
  readonly currency: Currency;
  /** The offset of this customer's sign-up and billing producers; undefined: they write `Z`. */
  readonly zone: Zone | undefined;
  impressionsLeft: number;
  /** Whether the impressions are anonymous (before registering) or aimed at the known customer. */
  impressionsAnonymous: boolean;
  impressionChannels: readonly Channel[];
  /** The step after the impressions run out. */
  afterImpressions: number;
  /** The time of the step after an interposed one (invite, referral, add-on, win-back impression). */
  nextAt: number;
  /** The channel of the latest impression: the one most sign-ups come through. */
  lastChannel: Channel | undefined;
  seenImpressions: number;
  referredBy: string | undefined;
  plan: Plan;
  subscriptionId: string;
  orders: number;
  /** Billing dates of the current episode so far. */
  billings: number;
  /** The latest billing date paid: the next one is a month later. */
  lastPaid: number;
  /** The latest paying event (a one-off purchase counts too): churn deadlines run from it. */
  lastPaying: number;
  firstFailure: number;
  failures: number;
  comebackChance: number;
}

class World {
  private readonly random: Random;
  private readonly end: number;
  private readonly idPrefix: string;
  private readonly seed: number;
  private touchpoints = 0;
  private customers = 0;
  /** Recently converted customers, who may refer the next registrants. */
  private readonly referrers: string[] = [];
  private referrerSlot = 0;

  constructor(random: Random, seed: number, end: number) {
    this.random = random;
    this.seed = seed;
    this.end = end;
    this.idPrefix = `tp-${seed}-`;
  }

  /**
   * The life of entity `index` (every fifth one a visitor who never registers), arriving at `at`;
   * undefined if it has no touchpoint before the end of the period.
   */
  arrive(index: number, at: number): Life | undefined {
    const random = this.random;
    const currency = random.pick(CURRENCIES);
    const visitor = index % 5 === 4;
    const r = random.next();
    const kind = visitor ? VISITOR : r < 0.74 ? REGISTRANT : r < 0.92 ? BUYER : PROSPECT;
    // The first touchpoint comes a little after the arrival.
    at += random.exponential(3 * HOUR);
    if (at > this.end) return undefined;
    const life: Life = {
      at,
      step: IMPRESSION,
      customerId: visitor ? '' : `c-${this.seed}-${this.customers++}`,
      anonymousId: `v-${this.seed}-${index}`,
      currency,
      zone: !visitor && random.chance(0.3) ? random.pick(ZONES[currency]) : undefined,
      impressionsLeft: 0,
      impressionsAnonymous: kind !== PROSPECT,
      impressionChannels: CHANNELS,
      afterImpressions: DONE,
      nextAt: 0,
      lastChannel: undefined,
      seenImpressions: 0,
      referredBy: undefined,
      plan: random.pick(PLANS),
      subscriptionId: '',
      orders: 0,
      billings: 0,
      lastPaid: 0,
      lastPaying: 0,
      firstFailure: 0,
      failures: 0,
      comebackChance: 0.55,
    };
    switch (kind) {
      case VISITOR:
        life.impressionsLeft = random.int(1, 7);
        break;
      case PROSPECT:
        life.impressionsLeft = random.int(1, 6);
        break;
      case REGISTRANT:
        life.impressionsLeft = random.int(0, 10);
        life.afterImpressions = REGISTRATION;
        if (life.impressionsLeft === 0 && !this.toRegistration(life, at)) return undefined;
        break;
      default:
        life.step = PURCHASE;
    }
    return life;
  }

  /** The touchpoint `life` has due now. */
  emit(life: Life): Touchpoint {
    const random = this.random;
    const id = this.idPrefix + String(++this.touchpoints);
    const ms = Math.round(life.at);
    const customerId = life.customerId;
    const currency = life.currency;
    switch (life.step) {
      case IMPRESSION:
      case UP_SELL_IMPRESSION: {
        const anonymous = life.step === IMPRESSION && life.impressionsAnonymous;
        const ch = random.pick(life.step === IMPRESSION ? life.impressionChannels : UP_SELL);
        life.lastChannel = ch;
        life.seenImpressions += 1;
        const properties = random.chance(0.7)
          ? { channel: ch.name, campaign: random.pick(ch.campaigns), cost: { amountMinor: random.int(ch.cost[0], ch.cost[1]), currency } }
          : { channel: ch.name, campaign: random.pick(ch.campaigns) };
        // The ad server writes UTC.
        const occurredAt = isoInstant(ms, 0, 'Z');
        return anonymous
          ? { id, type: 'ad_impression', occurredAt, anonymousId: life.anonymousId, source: 'ad-server', properties }
          : { id, type: 'ad_impression', occurredAt, customerId, source: 'ad-server', properties };
      }
      case INVITE:
        return {
          id,
          type: 'referral',
          occurredAt: isoInstant(ms, 0, 'Z'),
          customerId: life.referredBy!,
          source: 'referral-program',
          properties: { referredCustomerId: customerId, code: `ref-${life.referredBy!}` },
        };
      case REGISTRATION: {
        const properties: { channel?: string; campaign?: string; referredBy?: string } = {};
        const ch = life.lastChannel !== undefined && random.chance(0.7) ? life.lastChannel : random.pick(CHANNELS);
        if (random.chance(life.referredBy === undefined ? 0.8 : 0.3)) {
          properties.channel = ch.name;
          if (random.chance(0.4)) properties.campaign = random.pick(ch.campaigns);
        }
        if (life.referredBy !== undefined) properties.referredBy = life.referredBy;
        // Most sign-ups keep the visitor's cookie; a few lose it (their impressions stay a visitor's).
        const linked = random.chance(life.seenImpressions > 0 ? 0.9 : 0.2);
        const source = random.chance(0.25) ? 'mobile-app' : 'signup-form';
        const occurredAt = this.localTime(life, ms);
        return linked
          ? { id, type: 'registration', occurredAt, customerId, anonymousId: life.anonymousId, source, properties }
          : { id, type: 'registration', occurredAt, customerId, source, properties };
      }
      case PURCHASE:
      case ADD_ON: {
        life.orders += 1;
        const amountMinor =
          life.step === ADD_ON ? random.int(3, 40) * 100 - 1 : random.chance(0.03) ? 0 /* a 100 % coupon */ : life.plan.price[currency];
        return {
          id,
          type: 'purchase',
          occurredAt: this.localTime(life, ms),
          customerId,
          source: 'billing',
          properties: { orderId: `o-${customerId}-${life.orders}`, amount: { amountMinor, currency } },
        };
      }
      case RENEWAL:
        return {
          id,
          type: 'renewal',
          occurredAt: this.localTime(life, ms),
          customerId,
          source: 'billing',
          properties: { subscriptionId: life.subscriptionId, amount: { amountMinor: life.plan.price[currency], currency }, plan: life.plan.plan },
        };
      case FAILURE:
        return {
          id,
          type: 'payment_failure',
          occurredAt: this.localTime(life, ms),
          customerId,
          source: 'billing',
          properties: { subscriptionId: life.subscriptionId, amount: { amountMinor: life.plan.price[currency], currency }, reason: random.pick(FAILURE_REASONS) },
        };
      default:
        return {
          id,
          type: 'referral',
          occurredAt: isoInstant(ms, 0, 'Z'),
          customerId,
          source: 'referral-program',
          properties: { code: `ref-${customerId}` },
        };
    }
  }

  /** Moves `life` past the touchpoint just emitted; false when it has nothing more to say. */
  advance(life: Life): boolean {
    const random = this.random;
    const now = life.at;
    switch (life.step) {
      case IMPRESSION:
        life.impressionsLeft -= 1;
        if (life.impressionsLeft > 0) return this.goTo(life, IMPRESSION, now + random.between(0.02, 4) * DAY);
        if (life.afterImpressions === REGISTRATION) return this.toRegistration(life, now);
        if (life.afterImpressions === PURCHASE) return this.goTo(life, PURCHASE, Math.max(life.nextAt, now + random.between(0.01, 1) * DAY));
        return false;
      case INVITE:
        return this.goTo(life, REGISTRATION, life.nextAt);
      case REGISTRATION: {
        const r = random.next();
        if (r < 0.66) return this.goTo(life, PURCHASE, now + Math.min(random.exponential(3 * DAY), 30 * DAY));
        if (r < 0.74) return this.goTo(life, PURCHASE, now + random.between(20, 120) * DAY);
        return false;
      }
      case PURCHASE:
        life.billings = 0;
        life.subscriptionId = `s-${life.customerId}-${life.orders}`;
        life.lastPaid = now;
        life.lastPaying = now;
        this.addReferrer(life.customerId);
        return this.toNextMonth(life);
      case RENEWAL:
        life.lastPaid = now;
        life.lastPaying = now;
        if (random.chance(0.02)) life.plan = UPGRADE.get(life.plan) ?? life.plan;
        return this.toNextMonth(life);
      case FAILURE: {
        life.failures += 1;
        const r = random.next();
        // The billing system retries a couple of times...
        if (life.failures < 3 && r < 0.25) return this.goTo(life, FAILURE, now + random.between(1.5, 3.5) * DAY);
        // ...and most customers fix their card within the grace period (recovered),
        const graceEnd = life.firstFailure + 13.5 * DAY;
        if (r < 0.6) return this.goTo(life, RENEWAL, now + (graceEnd - now) * random.between(0.02, 1));
        // some only after it (churned by payment failure, then reactivated by that renewal),
        if (r < 0.75) return this.goTo(life, RENEWAL, life.firstFailure + random.between(15, 45) * DAY);
        // and the others never pay again: involuntary churn.
        return this.churn(life, now);
      }
      case ADD_ON:
        life.lastPaying = now;
        return this.toBilling(life, life.nextAt, now);
      case REFERRAL:
      case UP_SELL_IMPRESSION:
        return this.toBilling(life, life.nextAt, now);
      default:
        return false;
    }
  }

  private toRegistration(life: Life, now: number): boolean {
    const random = this.random;
    const registrationAt = now + random.between(0.005, 3) * DAY;
    if (this.referrers.length > 0 && random.chance(0.12)) {
      life.referredBy = random.pick(this.referrers);
      life.nextAt = registrationAt;
      return this.goTo(life, INVITE, now + (registrationAt - now) * random.between(0.05, 0.95));
    }
    return this.goTo(life, REGISTRATION, registrationAt);
  }

  /** Monthly billing, sometimes preceded by a referral, a one-off purchase or an up-sell ad. */
  private toNextMonth(life: Life): boolean {
    const random = this.random;
    const now = life.at;
    life.failures = 0;
    const billingAt = life.lastPaid + random.between(29.5, 31.5) * DAY;
    const r = random.next();
    if (r < 0.2) {
      life.nextAt = billingAt;
      return this.goTo(life, r < 0.035 ? REFERRAL : r < 0.07 ? ADD_ON : UP_SELL_IMPRESSION, life.lastPaid + random.between(1, 28) * DAY);
    }
    return this.toBilling(life, billingAt, now);
  }

  private toBilling(life: Life, billingAt: number, now: number): boolean {
    life.billings += 1;
    const r = this.random.next();
    // Cancels (churns by inactivity): most often after the first month, less the longer one stays.
    if (r < (CANCEL_BY_TENURE[life.billings] ?? LONG_TERM_CANCEL)) return this.churn(life, now);
    if (r > 1 - (life.billings === 1 ? FIRST_FAILURE_SHARE : FAILURE_SHARE)) {
      life.firstFailure = billingAt;
      return this.goTo(life, FAILURE, billingAt);
    }
    return this.goTo(life, RENEWAL, billingAt);
  }

  /** After a churn, some customers come back months later, some after a win-back campaign. */
  private churn(life: Life, now: number): boolean {
    const random = this.random;
    if (!random.chance(life.comebackChance)) return false;
    life.comebackChance /= 2;
    // Past both churn deadlines (inactivity: 60 days after the last payment; grace: 14 days
    // after a failure at most 31.5 + 7 days after the last billing date paid), so the comeback
    // is a reactivation.
    const comebackAt = life.lastPaying + (62 + random.exponential(30)) * DAY;
    if (random.chance(0.6)) {
      life.impressionsLeft = random.int(1, 2);
      life.impressionsAnonymous = false;
      life.impressionChannels = WIN_BACK;
      life.afterImpressions = PURCHASE;
      life.nextAt = comebackAt;
      return this.goTo(life, IMPRESSION, Math.max(now, comebackAt - random.between(1, 20) * DAY));
    }
    return this.goTo(life, PURCHASE, comebackAt);
  }

  private goTo(life: Life, step: number, at: number): boolean {
    if (at > this.end) return false;
    life.step = step;
    life.at = at;
    return true;
  }

  private addReferrer(customerId: string): void {
    if (this.referrers.length < 256) this.referrers.push(customerId);
    else {
      this.referrers[this.referrerSlot] = customerId;
      this.referrerSlot = (this.referrerSlot + 1) & 255;
    }
  }

  /** Sign-up forms and billing write the customer's offset when they have one, else UTC. */
  private localTime(life: Life, ms: number): string {
    const z = life.zone;
    return z === undefined ? isoInstant(ms, 0, 'Z') : isoInstant(ms, z.ms, z.suffix);
  }
}

function endOf(start: number, months: number): number {
  const whole = Math.floor(months);
  const date = new Date(start);
  date.setUTCMonth(date.getUTCMonth() + whole);
  return date.getTime() + (months - whole) * AVERAGE_MONTH;
}

/** A share of touchpoints reaches the stream late (batch uploads, retried webhooks, offline apps). */
const DELAYED_SHARE = 0.08;
const MEAN_DELAY = 30 * MINUTE;
const MAX_DELAY = 12 * 60 * MINUTE;

/**
 * A realistic stream of valid touchpoints in roughly event-time order. Every customer is a small
 * state machine; a heap merges them by the time of their next touchpoint, so memory grows with
 * the customers alive at once, never with the length of the stream. A few touchpoints are
 * delivered up to some hours late, as real sources do.
 */
export function* generateTouchpoints(options: GenerateOptions): Generator<Touchpoint> {
  const { customers, seed } = options;
  if (!Number.isSafeInteger(customers) || customers < 0) throw new RangeError(`customers must be a whole number ≥ 0, got ${customers}`);
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  const start = Date.parse(options.start ?? '2024-01-01T00:00:00Z');
  if (Number.isNaN(start)) throw new RangeError(`start must be an ISO-8601 instant, got ${options.start}`);
  const months = options.months ?? 12;
  if (!(months > 0) || !Number.isFinite(months)) throw new RangeError(`months must be a positive number, got ${months}`);

  const end = endOf(start, months);
  const random = new Random(seed);
  const world = new World(random, seed, end);
  const entities = customers + Math.floor(customers / 4);
  // A launch campaign brings a fifth of the newcomers in the first month; the others arrive
  // evenly until shortly before the end.
  const launch = Math.min(30 * DAY, (end - start) / 4);
  const launched = Math.floor(entities / 5);
  const steady = (end - start) * 0.92 - launch;
  const arrival = (i: number): number =>
    i < launched ? start + (launch * (i + 0.5)) / launched : start + launch + (steady * (i - launched + 0.5)) / (entities - launched);

  const lives = new MinHeap<Life>();
  const delayed = new MinHeap<Touchpoint>();
  let entity = 0;
  let nextArrival = arrival(0);
  for (;;) {
    while (entity < entities && nextArrival <= lives.peekKey()) {
      const newcomer = world.arrive(entity, nextArrival);
      if (newcomer !== undefined) lives.push(newcomer.at, newcomer);
      entity += 1;
      nextArrival = arrival(entity);
    }
    const life = lives.peek();
    if (life === undefined) break;
    const now = life.at;
    const touchpoint = world.emit(life);
    while (delayed.peekKey() <= now) yield delayed.pop()!;
    if (random.chance(DELAYED_SHARE)) delayed.push(now + Math.min(random.exponential(MEAN_DELAY), MAX_DELAY), touchpoint);
    else yield touchpoint;
    if (world.advance(life)) lives.replaceTopKey(life.at);
    else lives.pop();
  }
  while (delayed.size > 0) yield delayed.pop()!;
}
