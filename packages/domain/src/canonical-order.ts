import { TOUCHPOINT_TYPES, type Touchpoint } from '@lifecycle/contracts';

const rankOf: Record<string, number> = Object.fromEntries(TOUCHPOINT_TYPES.map((type, rank) => [type, rank]));

/** A touchpoint with its event time decoded once, so ordering never re-parses ISO strings. */
export interface TimedTouchpoint {
  readonly touchpoint: Touchpoint;
  /** `occurredAt` in epoch milliseconds. */
  readonly at: number;
  readonly rank: number;
}

export function timed(touchpoint: Touchpoint): TimedTouchpoint {
  return { touchpoint, at: Date.parse(touchpoint.occurredAt), rank: rankOf[touchpoint.type] ?? 0 };
}

/** SPEC §2 canonical order: occurredAt, then type rank, then id. */
export function compareCanonical(a: TimedTouchpoint, b: TimedTouchpoint): number {
  if (a.at !== b.at) return a.at - b.at;
  if (a.rank !== b.rank) return a.rank - b.rank;
  const x = a.touchpoint.id;
  const y = b.touchpoint.id;
  return x < y ? -1 : x > y ? 1 : 0;
}

export const isPaying = (t: Touchpoint): t is Extract<Touchpoint, { type: 'purchase' | 'renewal' }> =>
  t.type === 'purchase' || t.type === 'renewal';

export const DAY_MS = 86_400_000;

export const toIso = (ms: number): string => new Date(ms).toISOString();
