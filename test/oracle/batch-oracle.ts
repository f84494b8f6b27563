/**
 * Independent batch recomputation ("oracle") of SPEC §3–§5 and the §7 exports.
 *
 * Written for clarity, not speed: deduplicate, keep what happened by T, sort everything in
 * canonical order, walk each customer from scratch and derive its row, then build the cohort
 * table from the customer results. It shares no code with packages/domain, projection or
 * readmodel on purpose: acceptance tests compare the incremental implementation against it.
 * Its input is the distinct valid touchpoints; the raw lines before that are intake.ts's business
 * (validation and deduplication), the noisy delivery noise.ts's.
 */
import { DateTime } from 'luxon';
import type { ChannelCohortRow, ChannelRow, ChurnRow, ReferralRow, StageRow, ChurnReason, CohortRow, CustomerRow, Granularity, LifecycleConfig, Revenue, Stage, Touchpoint } from '@lifecycle/contracts';

const DAY_MS = 86_400_000;

const TYPE_RANK: Record<Touchpoint['type'], number> = {
  ad_impression: 0,
  registration: 1,
  purchase: 2,
  renewal: 3,
  payment_failure: 4,
  referral: 5,
};

/** A touchpoint with its instant parsed once. */
interface Tp {
  readonly ms: number;
  readonly tp: Touchpoint;
}

/** SPEC §2 canonical order: occurredAt, then type rank, then id (plain string comparison). */
function canonical(x: Tp, y: Tp): number {
  if (x.ms !== y.ms) return x.ms - y.ms;
  const r = TYPE_RANK[x.tp.type] - TYPE_RANK[y.tp.type];
  if (r !== 0) return r;
  return x.tp.id < y.tp.id ? -1 : x.tp.id > y.tp.id ? 1 : 0;
}

const isPaying = (t: Touchpoint): boolean => t.type === 'purchase' || t.type === 'renewal';

/** Amount of a paying event (purchase or renewal). */
function amountOf(t: Touchpoint): { amountMinor: number; currency: string } {
  if (t.type !== 'purchase' && t.type !== 'renewal') throw new Error(`not a paying event: ${t.id}`);
  return t.properties.amount;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function addRevenue(into: Map<string, number>, t: Touchpoint): void {
  const { amountMinor, currency } = amountOf(t);
  into.set(currency, (into.get(currency) ?? 0) + amountMinor);
}

/** Revenue map with keys sorted alphabetically. */
function revenueObject(sums: Map<string, number>): Revenue {
  const out: Revenue = {};
  for (const currency of [...sums.keys()].sort()) out[currency] = sums.get(currency)!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Periods (SPEC §4): every period is identified by an integer ordinal, so that "c + k" is plain
// integer arithmetic and the label of an ordinal is computed back from it.
//   month: year * 12 + (month - 1)             of the local date in the configured zone
//   day:   days since 1970-01-01 of the local date
//   week:  weeks since the Monday 1969-12-29 of the Monday that starts the local ISO week
// ---------------------------------------------------------------------------------------------

/** Days since 1970-01-01 of a calendar date (pure date arithmetic, no zone involved). */
const epochDay = (year: number, month: number, day: number): number => Date.UTC(year, month - 1, day) / DAY_MS;

function periodOrdinal(ms: number, granularity: Granularity, zone: string): number {
  const local = DateTime.fromMillis(ms, { zone });
  if (!local.isValid) throw new Error(`invalid time zone ${zone}`);
  switch (granularity) {
    case 'month':
      return local.year * 12 + (local.month - 1);
    case 'day':
      return epochDay(local.year, local.month, local.day);
    case 'week': {
      // weekday: 1 = Monday … 7 = Sunday. 1970-01-01 (epoch day 0) was a Thursday, so the
      // Monday of its week is epoch day -3.
      const monday = epochDay(local.year, local.month, local.day) - (local.weekday - 1);
      return (monday + 3) / 7;
    }
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function periodLabel(ordinal: number, granularity: Granularity): string {
  switch (granularity) {
    case 'month': {
      const year = Math.floor(ordinal / 12);
      const month = ordinal - year * 12 + 1;
      return `${pad(year, 4)}-${pad(month)}`;
    }
    case 'day':
      return new Date(ordinal * DAY_MS).toISOString().slice(0, 10);
    case 'week': {
      const monday = DateTime.fromMillis((ordinal * 7 - 3) * DAY_MS, { zone: 'UTC' });
      return `${pad(monday.weekYear, 4)}-W${pad(monday.weekNumber)}`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One customer's lifecycle as of T (SPEC §3).
// ---------------------------------------------------------------------------------------------

interface Churn {
  readonly at: number;
  readonly reason: ChurnReason;
}

interface Lifecycle {
  acquiredAt: number | null;
  convertedAt: number | null;
  paying: Tp[];
  churns: Churn[];
  reactivations: number[];
  referrals: number;
  stage: Stage;
}

/**
 * Walks the customer's own touchpoints (all ≤ T, canonical order) and returns its lifecycle.
 * Impressions play no part here (only in the channel).
 */
function lifecycleOf(own: readonly Tp[], T: number, config: LifecycleConfig): Lifecycle {
  const graceMs = config.churn.paymentGraceDays * DAY_MS;
  const inactivityMs = config.churn.inactivityDays * DAY_MS;

  const firstRegistration = own.find((x) => x.tp.type === 'registration');
  const paying = own.filter((x) => isPaying(x.tp));
  const firstPaying = paying[0];
  const acquiredAt = firstRegistration?.ms ?? firstPaying?.ms ?? null;
  const convertedAt = firstPaying?.ms ?? null;

  // Episode state.
  let converted = false;
  let a = 0; // latest paying event of the current episode
  let failure: number | null = null; // first payment_failure after a, not yet recovered
  let churned = false; // the current episode has ended in churn
  const churns: Churn[] = [];
  const reactivations: number[] = [];

  /** The instant the current episode churns unless a paying event comes by then, and why. */
  const deadline = (): Churn => {
    const inactivity = a + inactivityMs;
    if (failure !== null && failure + graceMs <= inactivity) return { at: failure + graceMs, reason: 'payment_failure' };
    return { at: inactivity, reason: 'inactivity' };
  };

  /** Ends the current episode if its deadline lies strictly before `t` (or at/before T at the end). */
  const churnIfDeadlineBefore = (t: number, inclusive: boolean): void => {
    if (!converted || churned) return;
    const d = deadline();
    if (d.at < t || (inclusive && d.at === t)) {
      churns.push(d);
      churned = true;
      failure = null;
    }
  };

  for (const x of own) {
    // A paying event exactly at a deadline is inside the window: only deadlines strictly before
    // the touchpoint have passed. (For a failure or referral the tie does not change anything.)
    churnIfDeadlineBefore(x.ms, false);
    if (isPaying(x.tp)) {
      if (!converted) converted = true;
      else if (churned) {
        reactivations.push(x.ms);
        churned = false;
      }
      a = x.ms;
      failure = null;
    } else if (x.tp.type === 'payment_failure') {
      // Ignored before conversion, while churned, and when a failure is already pending.
      if (converted && !churned && failure === null) failure = x.ms;
    }
  }
  churnIfDeadlineBefore(T, true);

  const referralTps = own.filter((x) => x.tp.type === 'referral');
  const referredAfterConversion =
    firstPaying !== undefined && referralTps.some((r) => canonical(r, firstPaying) > 0);
  const loyal = converted && (paying.length >= config.loyalty.minPayments || referredAfterConversion);
  const atRisk = converted && !churned && failure !== null && failure <= T && T < failure + graceMs;

  let stage: Stage;
  if (churned) stage = 'churned';
  else if (atRisk) stage = 'at_risk';
  else if (loyal) stage = 'loyal';
  else if (paying.length >= 2) stage = 'retained';
  else if (converted) stage = 'converted';
  else if (acquiredAt !== null) stage = 'acquired';
  else stage = 'reached';

  return { acquiredAt, convertedAt, paying, churns, reactivations, referrals: referralTps.length, stage };
}

// ---------------------------------------------------------------------------------------------
// The export.
// ---------------------------------------------------------------------------------------------

interface CustomerResult {
  readonly row: CustomerRow;
  readonly life: Lifecycle;
  readonly cohortOrdinal: number | null;
}

/** The periods (ordinals) in which a customer's cohort-relevant instants fall. */
interface CustomerPeriods {
  readonly converted: number | null;
  readonly paying: { readonly period: number; readonly tp: Touchpoint }[];
  readonly churns: number[];
  readonly reactivations: number[];
}

export interface OracleExport {
  customers: CustomerRow[];
  cohorts: CohortRow[];
  cohortsByChannel: ChannelCohortRow[];
  channels: ChannelRow[];
  churns: ChurnRow[];
  stages: StageRow[];
  referrals: ReferralRow[];
}

/** round(numerator / denominator), halves up, for non-negative integers. */
function roundHalfUp(numerator: bigint, denominator: bigint): number {
  const quotient = numerator / denominator;
  const remainder = numerator % denominator;
  return Number(2n * remainder >= denominator ? quotient + 1n : quotient);
}

export function oracleExport(touchpoints: readonly Touchpoint[], config: LifecycleConfig, asOf?: string): OracleExport {
  const { granularity, timeZone } = config.cohort;

  // 1. Distinct touchpoints: the first of each id wins.
  const byId = new Map<string, Tp>();
  for (const tp of touchpoints) if (!byId.has(tp.id)) byId.set(tp.id, { ms: Date.parse(tp.occurredAt), tp });
  const distinct = [...byId.values()];
  if (distinct.length === 0 && asOf === undefined) return { customers: [], cohorts: [], cohortsByChannel: [], channels: [], churns: [], stages: [], referrals: [] };

  // 2. As of T (default: latest occurredAt, impressions included); only touchpoints ≤ T count.
  const T = asOf !== undefined ? Date.parse(asOf) : distinct.reduce((max, x) => Math.max(max, x.ms), -Infinity);
  if (Number.isNaN(T)) throw new Error(`invalid asOf ${asOf}`);
  const known = distinct.filter((x) => x.ms <= T).sort(canonical);

  // 3. Split into customers' own touchpoints and visitors' impressions (SPEC §5).
  const ownOf = new Map<string, Tp[]>();
  const visitorImpressions = new Map<string, Tp[]>();
  for (const x of known) {
    const { customerId, anonymousId } = x.tp;
    if (customerId !== undefined) {
      if (!ownOf.has(customerId)) ownOf.set(customerId, []);
      ownOf.get(customerId)!.push(x);
    } else if (anonymousId !== undefined) {
      if (!visitorImpressions.has(anonymousId)) visitorImpressions.set(anonymousId, []);
      visitorImpressions.get(anonymousId)!.push(x);
    }
  }

  // 4. Links: a visitor belongs to the customer of the earliest registration carrying its id.
  const linkedVisitors = new Map<string, string[]>(); // customerId → anonymousIds
  const linkedTo = new Map<string, string>(); // anonymousId → customerId
  for (const x of known) {
    if (x.tp.type !== 'registration' || x.tp.anonymousId === undefined) continue;
    if (linkedTo.has(x.tp.anonymousId)) continue;
    linkedTo.set(x.tp.anonymousId, x.tp.customerId);
    if (!linkedVisitors.has(x.tp.customerId)) linkedVisitors.set(x.tp.customerId, []);
    linkedVisitors.get(x.tp.customerId)!.push(x.tp.anonymousId);
  }

  const channelOf = (customerId: string, own: readonly Tp[]): string => {
    const registration = own.find((x) => x.tp.type === 'registration');
    if (registration !== undefined && registration.tp.type === 'registration') {
      const { channel, referredBy } = registration.tp.properties;
      if (channel !== undefined) return channel;
      if (referredBy !== undefined) return 'referral';
    }
    // Without a registration no visitor is linked, so only the customer's own impressions count.
    const impressions = own.filter((x) => x.tp.type === 'ad_impression');
    for (const anonymousId of linkedVisitors.get(customerId) ?? []) impressions.push(...(visitorImpressions.get(anonymousId) ?? []));
    impressions.sort(canonical);
    const first = impressions[0];
    if (first !== undefined && first.tp.type === 'ad_impression') return first.tp.properties.channel;
    return 'direct';
  };

  // 5. One row per customerId, sorted by customerId.
  const customerIds = [...ownOf.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const results: CustomerResult[] = customerIds.map((customerId) => {
    const own = ownOf.get(customerId)!;
    const life = lifecycleOf(own, T, config);
    const cohortOrdinal = life.acquiredAt === null ? null : periodOrdinal(life.acquiredAt, granularity, timeZone);
    const lastChurn = life.churns.at(-1);
    const revenue = new Map<string, number>();
    for (const p of life.paying) addRevenue(revenue, p.tp);
    const row: CustomerRow = {
      customerId,
      stage: life.stage,
      acquiredAt: life.acquiredAt === null ? null : iso(life.acquiredAt),
      cohort: cohortOrdinal === null ? null : periodLabel(cohortOrdinal, granularity),
      channel: life.acquiredAt === null ? null : channelOf(customerId, own),
      convertedAt: life.convertedAt === null ? null : iso(life.convertedAt),
      churnedAt: lastChurn === undefined ? null : iso(lastChurn.at),
      churnReason: lastChurn === undefined ? null : lastChurn.reason,
      payments: life.paying.length,
      reactivations: life.reactivations.length,
      referrals: life.referrals,
      revenue: revenueObject(revenue),
    };
    return { row, life, cohortOrdinal };
  });

  // 6. Cohorts: for every cohort c, rows k = 0..K where period c + K contains T.
  const periodOfT = periodOrdinal(T, granularity, timeZone);
  const members = new Map<number, CustomerResult[]>();
  for (const r of results) {
    if (r.cohortOrdinal === null) continue;
    if (!members.has(r.cohortOrdinal)) members.set(r.cohortOrdinal, []);
    members.get(r.cohortOrdinal)!.push(r);
  }

  const periodsOf = ({ life }: CustomerResult): CustomerPeriods => {
    const ordinal = (ms: number): number => periodOrdinal(ms, granularity, timeZone);
    return {
      converted: life.convertedAt === null ? null : ordinal(life.convertedAt),
      paying: life.paying.map((p) => ({ period: ordinal(p.ms), tp: p.tp })),
      churns: life.churns.map((ch) => ordinal(ch.at)),
      reactivations: life.reactivations.map(ordinal),
    };
  };

  /** The rows of one cohort's members, periods 0 … the period of T. */
  const cohortTable = (c: number, cohortMembers: readonly CustomerResult[]): CohortRow[] => {
    const label = periodLabel(c, granularity);
    const memberPeriods = cohortMembers.map(periodsOf);
    const rows: CohortRow[] = [];
    for (let k = 0; k <= periodOfT - c; k++) {
      const period = c + k;
      const revenue = new Map<string, number>();
      let converted = 0;
      let active = 0;
      let churned = 0;
      let reactivated = 0;
      for (const m of memberPeriods) {
        if (m.converted !== null && m.converted <= period) converted++;
        const payingNow = m.paying.filter((p) => p.period === period);
        if (payingNow.length > 0) active++;
        for (const p of payingNow) addRevenue(revenue, p.tp);
        if (m.churns.includes(period)) churned++;
        if (m.reactivations.includes(period)) reactivated++;
      }
      rows.push({
        cohort: label,
        periodIndex: k,
        period: periodLabel(period, granularity),
        size: cohortMembers.length,
        converted,
        active,
        churned,
        reactivated,
        revenue: revenueObject(revenue),
      });
    }
    return rows;
  };
  const byLabel = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);

  const cohorts: CohortRow[] = [];
  for (const [c, cohortMembers] of members) cohorts.push(...cohortTable(c, cohortMembers));
  cohorts.sort((x, y) => byLabel(x.cohort, y.cohort) || x.periodIndex - y.periodIndex);

  // 7. Cohorts by acquisition channel: the same table for each (cohort, channel) with a member.
  const cohortsByChannel: ChannelCohortRow[] = [];
  for (const [c, cohortMembers] of members) {
    const channels = new Map<string, CustomerResult[]>();
    for (const m of cohortMembers) {
      const channel = m.row.channel!;
      if (!channels.has(channel)) channels.set(channel, []);
      channels.get(channel)!.push(m);
    }
    for (const [channel, channelMembers] of channels) {
      for (const row of cohortTable(c, channelMembers)) {
        const { cohort, ...rest } = row;
        cohortsByChannel.push({ cohort, channel, ...rest });
      }
    }
  }
  cohortsByChannel.sort((x, y) => byLabel(x.cohort, y.cohort) || byLabel(x.channel, y.channel) || x.periodIndex - y.periodIndex);

  // 8. Channel economics (SPEC §4): every impression ≤ T by its own channel, linked or not;
  // acquisitions and revenue by the customer's acquisition channel.
  interface Economics {
    impressions: number;
    cost: Map<string, number>;
    acquired: number;
    revenue: Map<string, number>;
  }
  const economics = new Map<string, Economics>(); // `${channel}\u0000${period}`
  const at = (channel: string, period: number): Economics => {
    const key = `${channel}\u0000${period}`;
    if (!economics.has(key)) economics.set(key, { impressions: 0, cost: new Map(), acquired: 0, revenue: new Map() });
    return economics.get(key)!;
  };
  for (const x of known) {
    if (x.tp.type !== 'ad_impression') continue;
    const e = at(x.tp.properties.channel, periodOrdinal(x.ms, granularity, timeZone));
    e.impressions++;
    const cost = x.tp.properties.cost;
    if (cost !== undefined) e.cost.set(cost.currency, (e.cost.get(cost.currency) ?? 0) + cost.amountMinor);
  }
  for (const r of results) {
    if (r.life.acquiredAt === null) continue;
    const channel = r.row.channel!;
    at(channel, periodOrdinal(r.life.acquiredAt, granularity, timeZone)).acquired++;
    for (const p of r.life.paying) addRevenue(at(channel, periodOrdinal(p.ms, granularity, timeZone)).revenue, p.tp);
  }
  const channels: ChannelRow[] = [...economics]
    .map(([key, e]) => {
      const [channel, period] = key.split('\u0000') as [string, string];
      return { channel, ordinal: Number(period), e };
    })
    .sort((x, y) => byLabel(x.channel, y.channel) || x.ordinal - y.ordinal)
    .map(({ channel, ordinal, e }) => {
      const cost = revenueObject(e.cost);
      const per = (divisor: number, scale: bigint): Revenue => {
        const out: Revenue = {};
        for (const [currency, amount] of Object.entries(cost)) out[currency] = roundHalfUp(BigInt(amount) * scale, BigInt(divisor));
        return out;
      };
      return {
        channel,
        period: periodLabel(ordinal, granularity),
        impressions: e.impressions,
        cost,
        acquired: e.acquired,
        revenue: revenueObject(e.revenue),
        cpm: e.impressions > 0 ? per(e.impressions, 1000n) : {},
        cpa: e.acquired > 0 ? per(e.acquired, 1n) : null,
      };
    });

  // 9. Churns by period and reason; customers by stage.
  const churnCounts = new Map<string, number>(); // `${ordinal}\u0000${reason}`
  for (const r of results) {
    for (const churn of r.life.churns) {
      const key = `${periodOrdinal(churn.at, granularity, timeZone)}\u0000${churn.reason}`;
      churnCounts.set(key, (churnCounts.get(key) ?? 0) + 1);
    }
  }
  const churns: ChurnRow[] = [...churnCounts]
    .map(([key, count]) => {
      const [ordinal, reason] = key.split('\u0000') as [string, ChurnReason];
      return { ordinal: Number(ordinal), reason, count };
    })
    .sort((x, y) => x.ordinal - y.ordinal || byLabel(x.reason, y.reason))
    .map(({ ordinal, reason, count }) => ({ period: periodLabel(ordinal, granularity), reason, churns: count }));
  const stageOrder: Stage[] = ['churned', 'at_risk', 'loyal', 'retained', 'converted', 'acquired', 'reached'];
  const stages: StageRow[] = stageOrder.map((stage) => ({ stage, customers: results.filter((r) => r.row.stage === stage).length }));

  // 10. The referral loop: customers whose first registration (by T) names a referrer.
  const referred = new Map<string, CustomerResult[]>();
  for (const r of results) {
    const first = ownOf.get(r.row.customerId)!.find((x) => x.tp.type === 'registration');
    const referrer = first?.tp.type === 'registration' ? first.tp.properties.referredBy : undefined;
    if (referrer === undefined) continue;
    if (!referred.has(referrer)) referred.set(referrer, []);
    referred.get(referrer)!.push(r);
  }
  const referrals: ReferralRow[] = [...referred.keys()].sort(byLabel).map((referrer) => {
    const members = referred.get(referrer)!;
    const revenue = new Map<string, number>();
    for (const m of members) for (const p of m.life.paying) addRevenue(revenue, p.tp);
    return { referrer, referred: members.length, converted: members.filter((m) => m.life.convertedAt !== null).length, revenue: revenueObject(revenue) };
  });

  return { customers: results.map((r) => r.row), cohorts, cohortsByChannel, channels, churns, stages, referrals };
}
