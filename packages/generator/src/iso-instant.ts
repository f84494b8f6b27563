const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const SECOND = 1_000;

const PAD2 = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

// 'YYYY-MM-DDT' of recently formatted days: a stream in time order hits the same few days.
const CACHE_SLOTS = 64;
const cachedDays = new Float64Array(CACHE_SLOTS).fill(Number.NaN);
const cachedPrefixes: string[] = new Array<string>(CACHE_SLOTS).fill('');

function datePrefix(day: number): string {
  const slot = day & (CACHE_SLOTS - 1);
  if (cachedDays[slot] === day) return cachedPrefixes[slot]!;
  const prefix = new Date(day * DAY).toISOString().slice(0, 11);
  cachedDays[slot] = day;
  cachedPrefixes[slot] = prefix;
  return prefix;
}

/**
 * `ms` (epoch milliseconds, whole) as ISO-8601 with milliseconds, written in the local time of a
 * fixed offset: `offsetMs` 0 and suffix `Z` give what `Date.prototype.toISOString` gives;
 * `offsetMs` 7 200 000 and suffix `+02:00` give the same instant as `…T14:00:00.000+02:00`.
 * Several times faster than going through `Date`, which matters at a million touchpoints.
 */
export function isoInstant(ms: number, offsetMs: number, suffix: string): string {
  const local = ms + offsetMs;
  const day = Math.floor(local / DAY);
  let rest = local - day * DAY;
  const hours = Math.floor(rest / HOUR);
  rest -= hours * HOUR;
  const minutes = Math.floor(rest / MINUTE);
  rest -= minutes * MINUTE;
  const seconds = Math.floor(rest / SECOND);
  return datePrefix(day) + PAD2[hours]! + ':' + PAD2[minutes]! + ':' + PAD2[seconds]! + '.' + PAD3[rest - seconds * SECOND]! + suffix;
}
