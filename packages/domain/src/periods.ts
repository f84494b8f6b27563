import { DateTime } from 'luxon';
import type { Granularity } from '@lifecycle/contracts';

const DAY_MS = 86_400_000;
const YEAR_MS = 366 * DAY_MS;

const labelFormat: Record<Granularity, (d: DateTime) => string> = {
  month: (d) => d.toFormat('yyyy-MM'),
  // ISO week-year: 2020-12-31 is in 2020-W53, 2024-12-30 in 2025-W01.
  week: (d) => d.toFormat("kkkk-'W'WW"),
  day: (d) => d.toFormat('yyyy-MM-dd'),
};

/** Days from 1970-01-01 to the local calendar date of `d`. */
const localDays = (d: DateTime) => Date.UTC(d.year, d.month - 1, d.day) / DAY_MS;

// A period's number comes from its local calendar date, so it does not depend on which range
// of boundaries happens to be computed. 1970-01-01 was a Thursday: Monday 1969-12-29 is day -3.
const numberOf: Record<Granularity, (start: DateTime) => number> = {
  month: (d) => (d.year - 1970) * 12 + d.month - 1,
  week: (d) => (localDays(d) + 3) / 7,
  day: (d) => localDays(d),
};

/**
 * Periods of one granularity cut in one IANA zone (SPEC §4), numbered consecutively (0 is the
 * period of 1970-01-01 in that zone). Boundaries are computed with luxon for the range of
 * instants seen so far, then looked up by binary search: the fold asks for a period per paying
 * event, far too often for calendar math on each.
 */
export class PeriodCalendar {
  private starts: number[] = [];
  private firstNumber = 0;
  /** Start of the period after the last computed one. */
  private end = Number.NEGATIVE_INFINITY;
  private readonly labels = new Map<number, string>();

  private constructor(
    readonly granularity: Granularity,
    readonly timeZone: string,
  ) {}

  private static readonly cache = new Map<string, PeriodCalendar>();

  static of(granularity: Granularity, timeZone: string): PeriodCalendar {
    const key = `${granularity}|${timeZone}`;
    let calendar = PeriodCalendar.cache.get(key);
    if (!calendar) {
      calendar = new PeriodCalendar(granularity, timeZone);
      PeriodCalendar.cache.set(key, calendar);
    }
    return calendar;
  }

  private startOf(ms: number): DateTime {
    return DateTime.fromMillis(ms, { zone: this.timeZone }).startOf(this.granularity);
  }

  /** Boundaries from the period containing `from` up to (excluding) the one starting at `until`. */
  private boundaries(from: number, until: number): number[] {
    const starts: number[] = [];
    for (let d = this.startOf(from); d.toMillis() < until; d = d.plus({ [this.granularity]: 1 }).startOf(this.granularity)) {
      starts.push(d.toMillis());
    }
    return starts;
  }

  private cover(ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`not an instant: ${ms}`);
    if (this.starts.length === 0) {
      const first = this.startOf(ms - YEAR_MS);
      this.firstNumber = numberOf[this.granularity](first);
      this.starts = this.boundaries(first.toMillis(), ms + YEAR_MS);
    } else if (ms < this.starts[0]!) {
      const before = this.boundaries(ms - YEAR_MS, this.starts[0]!);
      this.firstNumber -= before.length;
      this.starts = before.concat(this.starts);
    } else if (ms >= this.end) {
      const last = this.starts[this.starts.length - 1]!;
      this.starts.push(...this.boundaries(last, ms + YEAR_MS).slice(1));
    }
    const last = DateTime.fromMillis(this.starts[this.starts.length - 1]!, { zone: this.timeZone });
    this.end = last.plus({ [this.granularity]: 1 }).startOf(this.granularity).toMillis();
  }

  /** Number of the period containing the instant `ms`. */
  indexOf(ms: number): number {
    if (this.starts.length === 0 || ms < this.starts[0]! || ms >= this.end) this.cover(ms);
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= ms) lo = mid;
      else hi = mid - 1;
    }
    return this.firstNumber + lo;
  }

  /** Label of a period number; the calendar must have numbered some instant already (`indexOf`). */
  label(index: number): string {
    let label = this.labels.get(index);
    if (label === undefined) {
      label = labelFormat[this.granularity](DateTime.fromMillis(this.bounds(index)[0], { zone: this.timeZone }));
      this.labels.set(index, label);
    }
    return label;
  }

  /** The instants of a period number, [start, end) in epoch ms; as `label`, after some `indexOf`. */
  bounds(index: number): [start: number, end: number] {
    if (this.starts.length === 0) throw new RangeError(`period ${index}: no period numbered yet, ask indexOf first`);
    // Periods far from every instant seen so far (an old cohort, a late T): extend the range.
    while (index < this.firstNumber) this.cover(this.starts[0]! - 1);
    while (index + 1 >= this.firstNumber + this.starts.length) this.cover(this.end);
    return [this.starts[index - this.firstNumber]!, this.starts[index + 1 - this.firstNumber]!];
  }
}
