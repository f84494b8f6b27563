import { parseTouchpointStrict, type ParseResult } from './rejection.js';
import { TOUCHPOINT_TYPES, type Money, type Touchpoint, type TouchpointType } from './touchpoint.js';

/**
 * Decodes and validates one touchpoint given as JSON text: the same answer as
 * `parseTouchpointStrict` for every input, several times faster on the common line. JSON.parse
 * and zod cost more than the rest of ingest, so a line made only of the contract's own fields,
 * plain strings and integer amounts is read and checked in one pass over its text. Any other
 * line (escapes, unknown extra fields, numbers written otherwise, anything invalid) is answered
 * by the strict path, so every rejection is the strict path's own.
 */
export function parseTouchpoint(input: string | Uint8Array): ParseResult {
  const touchpoint = fastTouchpoint(input);
  return touchpoint === undefined ? parseTouchpointStrict(input) : { ok: true, touchpoint };
}

/**
 * The touchpoint of a line the fast path is sure about: valid, and exactly the object the strict
 * path would return. Undefined for every other line, valid or not.
 */
export function fastTouchpoint(input: string | Uint8Array): Touchpoint | undefined {
  // A byte holds at most one UTF-16 unit, so checking bytes before decoding bounds the text too.
  if ((typeof input === 'string' ? input.length : input.byteLength) > MAX_LINE) return undefined;
  const text = typeof input === 'string' ? input : utf8.decode(input);
  return readTouchpoint(text, text.charCodeAt(0) === 0xfeff ? 1 : 0);
}

/**
 * The longest line the fast path reads, in UTF-16 units or bytes: well above any line of the
 * contract's fields (under 1 500), so only whitespace or repeated fields make a valid line
 * longer. The touchpoint's strings are slices of its line and keep it in memory: this bounds
 * that; and a line this short is far under MAX_TOUCHPOINT_BYTES, which the strict path checks.
 */
const MAX_LINE = 4096;

// Keeps a leading BOM, like the strict path's decoding. No separate UTF-8 check: bytes that are
// not UTF-8 decode to U+FFFD, which the fast path refuses.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN = 0x7b;
const CLOSE = 0x7d;

// The string rules of touchpoint.ts, with lengths in UTF-16 units: zod counts code points, and a
// string of at most `max` units has at most `max` code points (a longer one takes the strict path).
interface Limits {
  min: number;
  max: number;
}
const IDENTIFIER: Limits = { min: 1, max: 128 };
const TEXT_128: Limits = { min: 0, max: 128 };
const TEXT_256: Limits = { min: 0, max: 256 };
/** The rule of a Money field. */
const MONEY = 'money';

/** Field names (or literal strings) to recognise in the text: each in quotes, as UTF-16 codes. */
interface Tokens {
  tokens: Uint16Array[];
  /** The indexes of the names that start with each ASCII letter. */
  byLetter: number[][];
}
function tokens(names: readonly string[]): Tokens {
  const byLetter: number[][] = Array.from({ length: 128 }, () => []);
  names.forEach((name, k) => byLetter[name.charCodeAt(0)]!.push(k));
  return { tokens: names.map((name) => Uint16Array.from(`"${name}"`, (c) => c.charCodeAt(0))), byLetter };
}

// Fields are known by their position in these lists. A field that the schema gains is unknown
// here, so the lines that have it take the strict path until it is added.
const ENVELOPE = tokens(['id', 'occurredAt', 'customerId', 'anonymousId', 'source', 'type', 'properties']);
const [ID, OCCURRED_AT, CUSTOMER_ID, ANONYMOUS_ID, SOURCE, TYPE, PROPERTIES] = [0, 1, 2, 3, 4, 5, 6] as const;
/** The limits of the envelope's strings, by position; occurredAt is checked by isInstant. */
const ENVELOPE_LIMITS = [IDENTIFIER, undefined, IDENTIFIER, IDENTIFIER, TEXT_256];

/** The properties of every type, each with its rule: the same in every type that allows it. */
const PROPERTY_RULES = {
  channel: IDENTIFIER,
  campaign: TEXT_256,
  cost: MONEY,
  referredBy: IDENTIFIER,
  orderId: IDENTIFIER,
  amount: MONEY,
  subscriptionId: IDENTIFIER,
  plan: TEXT_128,
  reason: TEXT_256,
  referredCustomerId: IDENTIFIER,
  code: TEXT_128,
} as const;
const PROPERTY_NAMES = Object.keys(PROPERTY_RULES) as (keyof typeof PROPERTY_RULES)[];
const PROPERTY = tokens(PROPERTY_NAMES);
const RULES: readonly (Limits | typeof MONEY)[] = PROPERTY_NAMES.map((name) => PROPERTY_RULES[name]);
const [CHANNEL, CAMPAIGN, COST, REFERRED_BY, ORDER_ID, AMOUNT, SUBSCRIPTION_ID, PLAN, REASON, REFERRED_CUSTOMER_ID, CODE] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as const;

const TYPES = tokens(TOUCHPOINT_TYPES);
const MONEY_FIELDS = tokens(['amountMinor', 'currency']);
const AMOUNT_MINOR = 0;

/**
 * The properties read from a line. Named fields, not an array by position: reading into and
 * building from named fields is what keeps this pass fast.
 */
class Properties {
  channel?: string;
  campaign?: string;
  cost?: Money;
  referredBy?: string;
  orderId?: string;
  amount?: Money;
  subscriptionId?: string;
  plan?: string;
  reason?: string;
  referredCustomerId?: string;
  code?: string;
  /** Which were there: bit i for PROPERTY_NAMES[i]. */
  present = 0;
}

const bits = (indexes: readonly number[]) => indexes.reduce((mask, i) => mask | (1 << i), 0);
/** Per type: its properties (any other is an unknown extra field), the required ones, whether `properties` has a default. */
const SHAPES: Record<TouchpointType, { allowed: number; required: number; defaulted: boolean }> = {
  ad_impression: { allowed: bits([CHANNEL, CAMPAIGN, COST]), required: bits([CHANNEL]), defaulted: false },
  registration: { allowed: bits([CHANNEL, CAMPAIGN, REFERRED_BY]), required: 0, defaulted: true },
  purchase: { allowed: bits([ORDER_ID, AMOUNT]), required: bits([ORDER_ID, AMOUNT]), defaulted: false },
  renewal: { allowed: bits([SUBSCRIPTION_ID, AMOUNT, PLAN]), required: bits([SUBSCRIPTION_ID, AMOUNT]), defaulted: false },
  payment_failure: { allowed: bits([SUBSCRIPTION_ID, AMOUNT, REASON]), required: 0, defaulted: true },
  referral: { allowed: bits([REFERRED_CUSTOMER_ID, CODE]), required: 0, defaulted: true },
};

/** True when `s` holds `token` at `i`. */
function at(s: string, i: number, token: Uint16Array): boolean {
  for (let j = 0; j < token.length; j += 1) if (s.charCodeAt(i + j) !== token[j]) return false;
  return true;
}

/** Which of `list`'s tokens `s` holds at `i`, or -1. */
function tokenAt(s: string, i: number, list: Tokens): number {
  const candidates = list.byLetter[s.charCodeAt(i + 1)];
  if (candidates === undefined) return -1;
  for (let j = 0; j < candidates.length; j += 1) if (at(s, i, list.tokens[candidates[j]!]!)) return candidates[j]!;
  return -1;
}

// Most lines have no whitespace at all: the helpers below look for the expected character first.

/** The index of the `,` or `}` after a member's value at `i`, or of whatever is there instead. */
const afterValue = (s: string, i: number) => (s.charCodeAt(i) === COMMA || s.charCodeAt(i) === CLOSE ? i : skipSpace(s, i));
/** The index of the member after the `,` at `i`. */
const nextMember = (s: string, i: number) => (s.charCodeAt(i + 1) === QUOTE ? i + 1 : skipSpace(s, i + 1));

function skipSpace(s: string, i: number): number {
  for (let c = s.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = s.charCodeAt(i)) i += 1;
  return i;
}

/** The index after `char` at `i` and the whitespace around it, or -1 if it is not there. */
function expect(s: string, i: number, char: number): number {
  if (s.charCodeAt(i) === char && s.charCodeAt(i + 1) > 0x20) return i + 1;
  i = skipSpace(s, i);
  return s.charCodeAt(i) === char ? skipSpace(s, i + 1) : -1;
}

/**
 * The index of the closing quote of the string at `i`, or -1 unless it is plain and its length
 * within `limits`. Plain: no escape, no control character (C0, DEL, C1), no unpaired surrogate,
 * no U+FFFD. What remains is what every string field of the contract accepts (JSON holds no raw
 * tab or line break), and a text without U+FFFD was decoded from UTF-8 without a replacement.
 */
function stringEnd(s: string, i: number, limits: Limits | undefined): number {
  if (s.charCodeAt(i) !== QUOTE) return -1;
  const start = i + 1;
  for (i = start; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f) {
      if (c === QUOTE) return limits === undefined || (i - start >= limits.min && i - start <= limits.max) ? i : -1;
      if (c === 0x5c) return -1;
    } else if (c < 0xa0 || c === 0xfffd) {
      return -1;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      if (c >= 0xdc00 || (s.charCodeAt(i + 1) & 0xfc00) !== 0xdc00) return -1;
      i += 1;
    }
  }
  return -1;
}

/**
 * The touchpoint in `s` from `i` exactly as JSON.parse and the schema give it, fields in the
 * schema's order, if it is a line this pass is sure about; undefined otherwise. A field given
 * twice counts with its last value, as in JSON.parse (here the first one must be valid too).
 */
function readTouchpoint(s: string, i: number): Touchpoint | undefined {
  i = expect(s, i, OPEN);
  if (i < 0) return undefined;
  let id: string | undefined;
  let occurredAt: string | undefined;
  let customerId: string | undefined;
  let anonymousId: string | undefined;
  let source: string | undefined;
  let type = -1;
  let properties: Properties | undefined;
  for (;; i = nextMember(s, i)) {
    const key = tokenAt(s, i, ENVELOPE);
    if (key < 0) return undefined;
    i = expect(s, i + ENVELOPE.tokens[key]!.length, COLON);
    if (i < 0) return undefined;
    if (key === TYPE) {
      type = tokenAt(s, i, TYPES);
      if (type < 0) return undefined;
      i += TYPES.tokens[type]!.length;
    } else if (key === PROPERTIES) {
      properties = new Properties();
      i = readProperties(s, i, properties);
      if (i < 0) return undefined;
    } else {
      const end = stringEnd(s, i, ENVELOPE_LIMITS[key]);
      if (end < 0 || (key === OCCURRED_AT && !isInstant(s, i + 1, end))) return undefined;
      const value = s.slice(i + 1, end);
      i = end + 1;
      if (key === ID) id = value;
      else if (key === OCCURRED_AT) occurredAt = value;
      else if (key === CUSTOMER_ID) customerId = value;
      else if (key === ANONYMOUS_ID) anonymousId = value;
      else source = value;
    }
    i = afterValue(s, i);
    if (s.charCodeAt(i) === CLOSE) break;
    if (s.charCodeAt(i) !== COMMA) return undefined;
  }
  if (skipSpace(s, i + 1) !== s.length || type < 0) return undefined;
  const typeName = TOUCHPOINT_TYPES[type]!;
  if (id === undefined || occurredAt === undefined) return undefined;
  if (customerId === undefined && (typeName !== 'ad_impression' || anonymousId === undefined)) return undefined;
  const { allowed, required, defaulted } = SHAPES[typeName];
  if (properties === undefined ? !defaulted : (properties.present & required) !== required || (properties.present & ~allowed) !== 0) return undefined;

  const touchpoint: Record<string, unknown> = { id, occurredAt };
  if (customerId !== undefined) touchpoint.customerId = customerId;
  if (anonymousId !== undefined) touchpoint.anonymousId = anonymousId;
  if (source !== undefined) touchpoint.source = source;
  touchpoint.type = typeName;
  touchpoint.properties = properties === undefined ? {} : propertiesOf(typeName, properties);
  return touchpoint as Touchpoint;
}

/** Reads the properties object at `i` into `read`: the index after it, or -1. */
function readProperties(s: string, i: number, read: Properties): number {
  i = expect(s, i, OPEN);
  if (i < 0) return -1;
  if (s.charCodeAt(i) === CLOSE) return i + 1;
  for (;; i = nextMember(s, i)) {
    const p = tokenAt(s, i, PROPERTY);
    if (p < 0) return -1;
    read.present |= 1 << p;
    i = expect(s, i + PROPERTY.tokens[p]!.length, COLON);
    if (i < 0) return -1;
    const rule = RULES[p]!;
    if (rule === MONEY) {
      const money: Money = { amountMinor: -1, currency: '' };
      i = readMoney(s, i, money);
      if (i < 0) return -1;
      if (p === COST) read.cost = money;
      else read.amount = money;
    } else {
      const end = stringEnd(s, i, rule);
      if (end < 0) return -1;
      const value = s.slice(i + 1, end);
      i = end + 1;
      switch (p) {
        case CHANNEL: read.channel = value; break;
        case CAMPAIGN: read.campaign = value; break;
        case REFERRED_BY: read.referredBy = value; break;
        case ORDER_ID: read.orderId = value; break;
        case SUBSCRIPTION_ID: read.subscriptionId = value; break;
        case PLAN: read.plan = value; break;
        case REASON: read.reason = value; break;
        case REFERRED_CUSTOMER_ID: read.referredCustomerId = value; break;
        default: read.code = value;
      }
    }
    i = afterValue(s, i);
    if (s.charCodeAt(i) === CLOSE) return i + 1;
    if (s.charCodeAt(i) !== COMMA) return -1;
  }
}

/** Reads `{"amountMinor": <integer>, "currency": "<ABC>"}` (either order, nothing else) at `i` into `money`: the index after it, or -1. */
function readMoney(s: string, i: number, money: Money): number {
  i = expect(s, i, OPEN);
  if (i < 0) return -1;
  for (;; i = nextMember(s, i)) {
    const field = tokenAt(s, i, MONEY_FIELDS);
    if (field < 0) return -1;
    i = expect(s, i + MONEY_FIELDS.tokens[field]!.length, COLON);
    if (i < 0) return -1;
    if (field === AMOUNT_MINOR) {
      // Digits only (a fraction or an exponent is not followed by the `,` or `}` checked below),
      // no leading zero (that is not JSON), at most 15 of them: always a safe integer.
      const first = i;
      let amount = 0;
      for (let c = s.charCodeAt(i); c >= 0x30 && c <= 0x39; c = s.charCodeAt(i)) {
        amount = amount * 10 + (c - 0x30);
        i += 1;
      }
      if (i === first || i - first > 15 || (s.charCodeAt(first) === 0x30 && i - first > 1)) return -1;
      money.amountMinor = amount;
    } else {
      if (stringEnd(s, i, undefined) !== i + 4 || !isUpperCase(s, i + 1, i + 4)) return -1;
      money.currency = s.slice(i + 1, i + 4);
      i += 5;
    }
    i = afterValue(s, i);
    if (s.charCodeAt(i) === CLOSE) return money.amountMinor >= 0 && money.currency !== '' ? i + 1 : -1;
    if (s.charCodeAt(i) !== COMMA) return -1;
  }
}

function isUpperCase(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i += 1) if (!(s.charCodeAt(i) >= 0x41 && s.charCodeAt(i) <= 0x5a)) return false;
  return true;
}

/** The properties object as zod returns it: the type's fields in the schema's order, those present (SHAPES has checked which). */
function propertiesOf(type: TouchpointType, read: Properties): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  switch (type) {
    case 'ad_impression':
      p.channel = read.channel;
      if (read.campaign !== undefined) p.campaign = read.campaign;
      if (read.cost !== undefined) p.cost = read.cost;
      break;
    case 'registration':
      if (read.channel !== undefined) p.channel = read.channel;
      if (read.campaign !== undefined) p.campaign = read.campaign;
      if (read.referredBy !== undefined) p.referredBy = read.referredBy;
      break;
    case 'purchase':
      p.orderId = read.orderId;
      p.amount = read.amount;
      break;
    case 'renewal':
      p.subscriptionId = read.subscriptionId;
      p.amount = read.amount;
      if (read.plan !== undefined) p.plan = read.plan;
      break;
    case 'payment_failure':
      if (read.subscriptionId !== undefined) p.subscriptionId = read.subscriptionId;
      if (read.amount !== undefined) p.amount = read.amount;
      if (read.reason !== undefined) p.reason = read.reason;
      break;
    case 'referral':
      if (read.referredCustomerId !== undefined) p.referredCustomerId = read.referredCustomerId;
      if (read.code !== undefined) p.code = read.code;
      break;
  }
  return p;
}

/** The digit at `i` as a number: negative or over 9 if it is none. */
const digit = (s: string, i: number) => s.charCodeAt(i) - 0x30;
/** Negative unless `0 <= n <= max`; or-ed together, negative unless each is within its range. */
const within = (n: number, max: number) => n | (max - n);
/** Days in month MM (none for 00 or over 12), in a common year and then in a leap year. */
const DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0, 0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0];

/**
 * Whether `s` from `o` to `end` is `YYYY-MM-DDTHH:MM:SS`, maybe `.sss`, then `Z` or `±HH:MM`,
 * with a real date of 1971 to 2098 (where the leap years are those divisible by 4). A part of
 * what the schema accepts (its pattern, and its range whatever the offset) that needs neither the
 * pattern nor Date.parse; other instants take the strict path. Read in the line itself (a slice
 * of it is slower to read char by char) and with the checks or-ed together rather than a branch
 * each: both measured faster.
 */
function isInstant(s: string, o: number, end: number): boolean {
  const separators = (s.charCodeAt(o + 4) ^ 0x2d) | (s.charCodeAt(o + 7) ^ 0x2d) | (s.charCodeAt(o + 10) ^ 0x54) | (s.charCodeAt(o + 13) ^ COLON) | (s.charCodeAt(o + 16) ^ COLON);
  const digits =
    within(digit(s, o), 9) | within(digit(s, o + 1), 9) | within(digit(s, o + 2), 9) | within(digit(s, o + 3), 9) |
    within(digit(s, o + 5), 9) | within(digit(s, o + 6), 9) | within(digit(s, o + 8), 9) | within(digit(s, o + 9), 9) |
    within(digit(s, o + 11), 2) | within(digit(s, o + 12), 9) | within(digit(s, o + 14), 5) | within(digit(s, o + 15), 9) |
    within(digit(s, o + 17), 5) | within(digit(s, o + 18), 9);
  if (separators !== 0 || digits < 0) return false;
  const year = digit(s, o) * 1000 + digit(s, o + 1) * 100 + digit(s, o + 2) * 10 + digit(s, o + 3);
  const month = digit(s, o + 5) * 10 + digit(s, o + 6);
  const day = digit(s, o + 8) * 10 + digit(s, o + 9);
  const days = DAYS[(year % 4 === 0 ? 14 : 0) + Math.min(month, 13)]!;
  if ((within(year - 1971, 2098 - 1971) | within(day - 1, days - 1) | within(digit(s, o + 11) * 10 + digit(s, o + 12), 23)) < 0) return false;
  let zone = o + 19;
  if (s.charCodeAt(zone) === 0x2e) {
    if ((within(digit(s, zone + 1), 9) | within(digit(s, zone + 2), 9) | within(digit(s, zone + 3), 9)) < 0) return false;
    zone += 4;
  }
  if (s.charCodeAt(zone) === 0x5a) return end === zone + 1;
  const sign = s.charCodeAt(zone);
  const offset = within(digit(s, zone + 1), 2) | within(digit(s, zone + 2), 9) | within(digit(s, zone + 4), 5) | within(digit(s, zone + 5), 9);
  return end === zone + 6 && (sign === 0x2b || sign === 0x2d) && s.charCodeAt(zone + 3) === COLON && (offset | within(digit(s, zone + 1) * 10 + digit(s, zone + 2), 23)) >= 0;
}
