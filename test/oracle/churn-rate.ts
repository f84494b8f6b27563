/**
 * SPEC §4's rolling churn rate from the independent batch oracle: customers with a churnedAt in
 * (T − W, T] over customers converted and not churned at T − W, each side an oracle export as of
 * its own instant (only what happened by then counts). Null without a base.
 */
import type { LifecycleConfig, Touchpoint } from '@lifecycle/contracts';
import { oracleExport } from './batch-oracle.js';

const iso = (ms: number): string => new Date(ms).toISOString();

export function oracleRollingChurnRate(touchpoints: readonly Touchpoint[], config: LifecycleConfig, asOf: number, windowMs: number): number | null {
  const start = asOf - windowMs;
  const base = oracleExport(touchpoints, config, iso(start)).customers.filter((c) => c.convertedAt !== null && c.stage !== 'churned').length;
  // The latest churn by T is in the window exactly when some churn by T is (a later one would be later still).
  const churned = oracleExport(touchpoints, config, iso(asOf)).customers.filter((c) => c.churnedAt !== null && Date.parse(c.churnedAt) > start).length;
  return base === 0 ? null : churned / base;
}
