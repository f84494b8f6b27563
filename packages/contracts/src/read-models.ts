/** Stages of SPEC §3, in the priority order used to pick one. */
export const STAGES = ['churned', 'at_risk', 'loyal', 'retained', 'converted', 'acquired', 'reached'] as const;
export type Stage = (typeof STAGES)[number];

export const CHURN_REASONS = ['payment_failure', 'inactivity'] as const;
export type ChurnReason = (typeof CHURN_REASONS)[number];

/** Currency code → sum of minor units. Never summed across currencies. */
export type Revenue = Record<string, number>;

/** One line of `export customers` (SPEC §7); key order is the export's. */
export interface CustomerRow {
  customerId: string;
  stage: Stage;
  acquiredAt: string | null;
  cohort: string | null;
  channel: string | null;
  convertedAt: string | null;
  churnedAt: string | null;
  churnReason: ChurnReason | null;
  payments: number;
  reactivations: number;
  referrals: number;
  revenue: Revenue;
}

/** One line of `export cohorts` (SPEC §7); key order is the export's. */
export interface CohortRow {
  cohort: string;
  periodIndex: number;
  period: string;
  size: number;
  converted: number;
  active: number;
  churned: number;
  reactivated: number;
  revenue: Revenue;
}

/** One line of `export cohorts --by channel` (SPEC §7): a cohort row of one acquisition channel, `channel` written after `cohort`. */
export interface ChannelCohortRow extends CohortRow {
  channel: string;
}

/** One line of `export channels` (SPEC §4, §7); key order is the export's. */
export interface ChannelRow {
  channel: string;
  period: string;
  impressions: number;
  /** Currency → the impressions' cost. */
  cost: Revenue;
  acquired: number;
  revenue: Revenue;
  /** Currency of `cost` → cost per thousand impressions, rounded half up; `{}` without cost. */
  cpm: Revenue;
  /** Currency of `cost` → cost per customer acquired, rounded half up; null when none was. */
  cpa: Revenue | null;
}

/** One line of `export churns`: churns by reason and period as of an instant. */
export interface ChurnRow {
  period: string;
  reason: ChurnReason;
  /** Churns whose `churnedAt` is in the period (a customer churning twice counts twice). */
  churns: number;
}

/** One line of `export stages`: customers by stage as of an instant. */
export interface StageRow {
  stage: Stage;
  customers: number;
}

/** One line of `export referrals`: a referrer and the customers whose first registration names it (SPEC §3 `referredBy`). */
export interface ReferralRow {
  referrer: string;
  /** Customers referred by `referrer`, registered by the instant. */
  referred: number;
  /** Of them, those converted by the instant. */
  converted: number;
  /** Their paying events' revenue by the instant. */
  revenue: Revenue;
}
