/**
 * The oracle's own intake: validation of raw NDJSON lines and deduplication, written from SPEC §2
 * and the stricter rules the project decided on top of it (README, "Input: touchpoints"), in
 * plain code. Nothing here comes from packages/contracts but types: no parseTouchpoint, no
 * validateTouchpoint, no zod schema, no isUtf8. The acceptance test feeds the same raw lines to
 * the product's `ingest` and to this, so a validation or deduplication bug of the product shows
 * as a different dead letter or a different export.
 *
 * Decisions where SPEC §2 and the README leave a choice (kept narrow on purpose, see the notes):
 * - a line is checked in this order: size, UTF-8, JSON, object, type, fields; the first failing
 *   step gives the reason (a line over 64 KiB is `payload_too_large` even if it is not UTF-8);
 * - the size is the line's bytes as received (a leading BOM counts);
 * - occurredAt is the RFC 3339 profile of ISO-8601: `YYYY-MM-DDTHH:MM:SS[.fraction]` and `Z` or
 *   `±HH:MM` (upper-case T and Z, seconds required); an instant with more than millisecond
 *   precision is cut to the millisecond (that is also what the range check sees);
 * - every identifier field (id, customerId, anonymousId, referredBy, orderId, subscriptionId,
 *   referredCustomerId, channel) is 1–128 code points without control characters;
 * - "same content" compares the JSON values (key order, spacing and number spelling do not
 *   matter); an absent optional `properties` equals `{}`.
 */
import type { Touchpoint } from '@lifecycle/contracts';

export const ORACLE_MAX_LINE_BYTES = 64 * 1024;
/** The touchpoint object is level 1. */
export const ORACLE_MAX_NESTING = 32;
export const ORACLE_MAX_ID_CODE_POINTS = 128;

const EARLIEST_MS = 0; // 1970-01-01T00:00:00Z
const LATEST_MS = 4_102_444_800_000; // 2100-01-01T00:00:00Z, excluded

export type OracleRejection = 'malformed_json' | 'payload_too_large' | 'not_an_object' | 'unknown_type' | 'invalid_field';
export type OracleReason = OracleRejection | 'id_conflict';

export type OracleLine =
  | { readonly verdict: 'blank' }
  /** `paths`: dotted paths of every offending field ("" for the whole line). */
  | { readonly verdict: 'rejected'; readonly reason: OracleRejection; readonly paths: readonly string[] }
  | { readonly verdict: 'valid'; readonly touchpoint: Touchpoint; readonly ms: number };

const TYPES = ['ad_impression', 'registration', 'purchase', 'renewal', 'payment_failure', 'referral'];

// ---------------------------------------------------------------------------------------------
// Bytes and characters.
// ---------------------------------------------------------------------------------------------

/** The code points of well-formed UTF-8, or undefined (overlong forms, surrogates, > U+10FFFF, truncated sequences). */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  const codePoints: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    let cp: number;
    let continuation: number;
    let min: number;
    if (lead < 0x80) [cp, continuation, min] = [lead, 0, 0];
    else if (lead >= 0xc0 && lead < 0xe0) [cp, continuation, min] = [lead & 0x1f, 1, 0x80];
    else if (lead >= 0xe0 && lead < 0xf0) [cp, continuation, min] = [lead & 0x0f, 2, 0x800];
    else if (lead >= 0xf0 && lead < 0xf8) [cp, continuation, min] = [lead & 0x07, 3, 0x10000];
    else return undefined;
    for (let k = 1; k <= continuation; k++) {
      const byte = bytes[i + k];
      if (byte === undefined || (byte & 0xc0) !== 0x80) return undefined;
      cp = (cp << 6) | (byte & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
    codePoints.push(cp);
    i += continuation + 1;
  }
  let text = '';
  for (let start = 0; start < codePoints.length; start += 4096) text += String.fromCodePoint(...codePoints.slice(start, start + 4096));
  return text;
}

/** Bytes of a JS string in UTF-8 (an unpaired surrogate would be written as U+FFFD: 3 bytes). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

const JSON_WHITESPACE = new Set([0x20, 0x09, 0x0d, 0x0a]);

function isBlank(raw: Uint8Array | string): boolean {
  if (typeof raw === 'string') {
    for (let i = 0; i < raw.length; i++) if (!JSON_WHITESPACE.has(raw.charCodeAt(i))) return false;
    return true;
  }
  for (const byte of raw) if (!JSON_WHITESPACE.has(byte)) return false;
  return true;
}

/** U+0000, or a UTF-16 surrogate that is not half of a pair. */
function hasNulOrLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit === 0) return true;
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return true;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return true;
  }
  return false;
}

/** C0, DEL and C1 (README: "control characters (C0, DEL, C1)"). */
const isControl = (cp: number): boolean => cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);

function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Field rules.
// ---------------------------------------------------------------------------------------------

type JsonObject = { [key: string]: unknown };
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: JsonObject, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);
const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

class Checker {
  readonly paths: string[] = [];
  ms = Number.NaN;

  private issue(path: string): void {
    if (!this.paths.includes(path)) this.paths.push(path);
  }

  /** NUL and unpaired surrogates in any string or key, `__proto__` keys, nesting deeper than 32 levels. */
  storable(value: unknown, path: string, level: number): void {
    if (typeof value === 'string') {
      if (hasNulOrLoneSurrogate(value)) this.issue(path);
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    if (level > ORACLE_MAX_NESTING) {
      this.issue(path);
      return;
    }
    const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.keys(value).map((k) => [k, (value as JsonObject)[k]]);
    for (const [key, child] of entries) {
      if (key === '__proto__' || hasNulOrLoneSurrogate(key)) this.issue(join(path, key));
      else this.storable(child, join(path, key), level + 1);
    }
  }

  /** An id, a customer key, a channel: 1–128 code points, no control character. */
  identifier(o: JsonObject, key: string, path: string, required: boolean): void {
    if (!has(o, key)) {
      if (required) this.issue(join(path, key));
      return;
    }
    const v = o[key];
    if (typeof v !== 'string' || hasNulOrLoneSurrogate(v)) return this.issue(join(path, key));
    const cps = codePoints(v);
    if (cps.length < 1 || cps.length > ORACLE_MAX_ID_CODE_POINTS || cps.some(isControl)) this.issue(join(path, key));
  }

  /** Free text: at most `max` code points, no control characters other than tab, line feed and carriage return. */
  text(o: JsonObject, key: string, path: string, max: number): void {
    if (!has(o, key)) return;
    const v = o[key];
    if (typeof v !== 'string' || hasNulOrLoneSurrogate(v)) return this.issue(join(path, key));
    const cps = codePoints(v);
    if (cps.length > max || cps.some((cp) => isControl(cp) && cp !== 0x09 && cp !== 0x0a && cp !== 0x0d)) this.issue(join(path, key));
  }

  /** Money: `amountMinor` an integer 0 … 2^53 − 1, `currency` three upper-case letters; other fields are kept. */
  money(o: JsonObject, key: string, path: string, required: boolean): void {
    if (!has(o, key)) {
      if (required) this.issue(join(path, key));
      return;
    }
    const m = o[key];
    const at = join(path, key);
    if (!isObject(m)) return this.issue(at);
    const amount = m['amountMinor'];
    if (typeof amount !== 'number' || !Number.isInteger(amount) || amount < 0 || amount > Number.MAX_SAFE_INTEGER) this.issue(join(at, 'amountMinor'));
    const currency = m['currency'];
    if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) this.issue(join(at, 'currency'));
  }

  /** occurredAt: an instant with Z or an offset, in [1970-01-01, 2100-01-01). */
  instant(o: JsonObject, key: string): void {
    const ms = has(o, key) ? instantMs(o[key]) : undefined;
    if (ms === undefined || ms < EARLIEST_MS || ms >= LATEST_MS) this.issue(key);
    else this.ms = ms;
  }

  properties(o: JsonObject, required: boolean): JsonObject | undefined {
    if (!has(o, 'properties')) {
      if (required) this.issue('properties');
      return undefined;
    }
    if (!isObject(o['properties'])) {
      this.issue('properties');
      return undefined;
    }
    return o['properties'];
  }
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** Epoch ms of an RFC 3339 instant (cut to the millisecond), or undefined if it is not one. */
export function instantMs(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = INSTANT.exec(value);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1) return undefined;
  if (day > (month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1]!)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (m[8] !== 'Z') {
    const [oh, om] = [Number(m[10]), Number(m[11])];
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const millis = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // not Date.UTC: it maps years 0–99 to 1900–1999
  date.setUTCHours(hour, minute, second, millis);
  return date.getTime() - offsetMinutes * 60_000;
}

function checkFields(o: JsonObject, type: string): Checker {
  const c = new Checker();
  c.storable(o, '', 1);
  c.identifier(o, 'id', '', true);
  c.instant(o, 'occurredAt');
  c.identifier(o, 'customerId', '', type !== 'ad_impression');
  c.identifier(o, 'anonymousId', '', false);
  c.text(o, 'source', '', 256);
  const p = c.properties(o, type === 'ad_impression' || type === 'purchase' || type === 'renewal');
  switch (type) {
    case 'ad_impression':
      if (!has(o, 'customerId') && !has(o, 'anonymousId')) c.identifier(o, 'customerId', '', true);
      if (p) {
        c.identifier(p, 'channel', 'properties', true);
        c.text(p, 'campaign', 'properties', 256);
        c.money(p, 'cost', 'properties', false);
      }
      break;
    case 'registration':
      if (p) {
        c.identifier(p, 'channel', 'properties', false);
        c.text(p, 'campaign', 'properties', 256);
        c.identifier(p, 'referredBy', 'properties', false);
      }
      break;
    case 'purchase':
      if (p) {
        c.identifier(p, 'orderId', 'properties', true);
        c.money(p, 'amount', 'properties', true);
      }
      break;
    case 'renewal':
      if (p) {
        c.identifier(p, 'subscriptionId', 'properties', true);
        c.money(p, 'amount', 'properties', true);
        c.text(p, 'plan', 'properties', 128);
      }
      break;
    case 'payment_failure':
      if (p) {
        c.identifier(p, 'subscriptionId', 'properties', false);
        c.money(p, 'amount', 'properties', false);
        c.text(p, 'reason', 'properties', 256);
      }
      break;
    case 'referral':
      if (p) {
        c.identifier(p, 'referredCustomerId', 'properties', false);
        c.text(p, 'code', 'properties', 128);
      }
      break;
  }
  return c;
}

const rejected = (reason: OracleRejection, paths: readonly string[] = ['']): OracleLine => ({ verdict: 'rejected', reason, paths });

/** The oracle's verdict on one raw line (bytes as received, without its LF; or a JS string). */
export function oracleParseLine(raw: Uint8Array | string): OracleLine {
  if (isBlank(raw)) return { verdict: 'blank' };
  const size = typeof raw === 'string' ? utf8Length(raw) : raw.length;
  if (size > ORACLE_MAX_LINE_BYTES) return rejected('payload_too_large');
  let text = typeof raw === 'string' ? raw : decodeUtf8(raw);
  if (text === undefined) return rejected('malformed_json');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // RFC 8259 §8.1 lets a parser ignore it
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return rejected('malformed_json');
  }
  if (!isObject(value)) return rejected('not_an_object');
  const type = has(value, 'type') ? value['type'] : undefined;
  if (typeof type !== 'string' || !TYPES.includes(type)) return rejected('unknown_type', ['type']);
  const checked = checkFields(value, type);
  if (checked.paths.length > 0) return rejected('invalid_field', checked.paths);
  // Optional properties default to {} (the fold reads them).
  const touchpoint = (has(value, 'properties') ? value : { ...value, properties: {} }) as unknown as Touchpoint;
  return { verdict: 'valid', touchpoint, ms: checked.ms };
}

/** Same JSON value: key order does not matter, numbers compare by value. */
export function sameContent(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((v, i) => sameContent(v, (b as unknown[])[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => has(b as JsonObject, k) && sameContent((a as JsonObject)[k], (b as JsonObject)[k]));
}

/** What the intake makes of one line. */
export type LineOutcome =
  | { readonly outcome: 'blank' | 'accepted' | 'duplicate' }
  | { readonly outcome: 'rejected'; readonly reason: OracleReason; readonly paths: readonly string[] };

export interface OracleIntake {
  /** The touchpoints recorded: for each id, its first valid copy in arrival order. */
  readonly accepted: Touchpoint[];
  /** One outcome per input line, in order. */
  readonly lines: LineOutcome[];
}

/**
 * Validates and deduplicates lines in arrival order (several ingest runs: their lines one after
 * the other). A valid line whose id was recorded before is a duplicate when its content is the
 * same and an `id_conflict` otherwise: the first valid copy to arrive stays. An invalid line
 * records nothing, so a later valid line with its id is new.
 */
export function oracleIntake(lines: Iterable<Uint8Array | string>): OracleIntake {
  const recorded = new Map<string, Touchpoint>();
  const accepted: Touchpoint[] = [];
  const outcomes: LineOutcome[] = [];
  for (const raw of lines) {
    const line = oracleParseLine(raw);
    if (line.verdict === 'blank') outcomes.push({ outcome: 'blank' });
    else if (line.verdict === 'rejected') outcomes.push({ outcome: 'rejected', reason: line.reason, paths: line.paths });
    else {
      const first = recorded.get(line.touchpoint.id);
      if (first === undefined) {
        recorded.set(line.touchpoint.id, line.touchpoint);
        accepted.push(line.touchpoint);
        outcomes.push({ outcome: 'accepted' });
      } else if (sameContent(first, line.touchpoint)) outcomes.push({ outcome: 'duplicate' });
      else outcomes.push({ outcome: 'rejected', reason: 'id_conflict', paths: ['id'] });
    }
  }
  return { accepted, lines: outcomes };
}
