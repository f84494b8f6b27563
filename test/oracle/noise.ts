/**
 * The oracle's own noisy delivery of a clean touchpoint stream: raw NDJSON lines (bytes) with
 * redeliveries (byte for byte, or re-serialised: other key order, spacing, number spelling, a
 * BOM), late lines, blank lines, invalid lines of every rejection reason, valid lines at the
 * edges of the rules (64 KiB exactly, 32 levels, 128-code-point ids, offsets, tab/LF/CR in free
 * text, control characters in unknown fields) and id conflicts (same id, other content) that
 * arrive before or after the copy they conflict with. Nothing from packages/generator's
 * `withDeliveryNoise`: what is noise, and what each line should get, is decided here.
 *
 * Every fault and edge is labelled by hand with the answer SPEC §2 and the README give it
 * (`intent`, `path`); batch-oracle's unit tests check the oracle's validation against those
 * labels, the acceptance test checks the product against the oracle.
 */
import type { Touchpoint } from '@lifecycle/contracts';
import { ORACLE_MAX_LINE_BYTES, ORACLE_MAX_NESTING, ORACLE_MAX_ID_CODE_POINTS, type OracleRejection } from './intake.js';

// ---------------------------------------------------------------------------------------------
// Small tools: a seeded generator, JSON values and their text.
// ---------------------------------------------------------------------------------------------

/** mulberry32: small, seeded, good enough to place noise. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed ^ 0x6f726163) >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = { [key: string]: Json };

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface TextStyle {
  /** Keys in reverse order. */
  readonly reversed?: boolean;
  /** A space after every `:` and `,`. */
  readonly spaced?: boolean;
  /** Integral numbers written as `1000.0`. */
  readonly decimalPoint?: boolean;
}

/** JSON text of a value, written in a style; strings as JSON.stringify writes them. */
export function jsonText(value: Json, style: TextStyle = {}): string {
  const colon = style.spaced ? ': ' : ':';
  const comma = style.spaced ? ', ' : ',';
  const write = (v: Json): string => {
    if (Array.isArray(v)) return `[${v.map(write).join(comma)}]`;
    if (isObj(v)) {
      const keys = Object.keys(v).filter((k) => v[k] !== undefined); // as JSON.stringify
      if (style.reversed) keys.reverse();
      return `{${keys.map((k) => `${JSON.stringify(k)}${colon}${write(v[k]!)}`).join(comma)}}`;
    }
    if (typeof v === 'number' && style.decimalPoint && Number.isInteger(v)) return `${v}.0`;
    return JSON.stringify(v);
  };
  return write(value);
}

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
const codePointLength = (s: string): number => [...s].length;

/** A private-use character standing for bytes that are not UTF-8 (replaced after encoding). */
const MARK = '\uE000';
function withBytes(text: string, bytes: readonly number[]): Buffer {
  const encoded = utf8(text);
  const at = encoded.indexOf(utf8(MARK));
  if (at < 0) throw new Error('no mark to replace');
  return Buffer.concat([encoded.subarray(0, at), Buffer.from(bytes), encoded.subarray(at + 3)]);
}

/** `value` with `key` set to raw JSON text (for what an object cannot hold, like a `__proto__` key). */
function withRaw(value: Obj, key: string, raw: string): string {
  const placeholder = `${MARK}raw${MARK}`;
  return jsonText({ ...value, [key]: placeholder }).replace(JSON.stringify(placeholder), () => raw);
}

/** `depth` arrays nested in one another around a leaf. */
const nested = (depth: number): Json => {
  let v: Json = 'leaf';
  for (let i = 0; i < depth; i++) v = [v];
  return v;
};
/** The path of the `n`-th of those arrays (1-based) under `key`. */
const nestedPath = (key: string, n: number): string => [key, ...Array<string>(n - 1).fill('0')].join('.');

/** A plain purchase with the touchpoint's id, time and customer (for faults about money or purchases). */
function asPurchase(t: Obj): Obj {
  return {
    id: t['id']!,
    type: 'purchase',
    occurredAt: t['occurredAt']!,
    customerId: (t['customerId'] as string | undefined) ?? `c-of-${String(t['anonymousId'])}`,
    properties: { orderId: `o-${String(t['id'])}`, amount: { amountMinor: 1999, currency: 'EUR' } },
  };
}

/** The touchpoint (or a purchase made of it) and the key of the money it carries in `properties`. */
function withMoney(t: Obj): { t: Obj; key: string } {
  const p = t['properties'];
  if (isObj(p) && isObj(p['amount'])) return { t, key: 'amount' };
  if (isObj(p) && isObj(p['cost'])) return { t, key: 'cost' };
  return { t: asPurchase(t), key: 'amount' };
}

function withMoneyChanged(t: Obj, change: (money: Obj) => Obj): Obj {
  const { t: u, key } = withMoney(clone(t));
  const p = u['properties'] as Obj;
  p[key] = change(p[key] as Obj);
  return u;
}

const moneyPath = (t: Obj, field: string): string => `properties.${withMoney(t).key}.${field}`;

/** An ad impression with the touchpoint's id, time and customer (for faults about channels). */
const asImpression = (t: Obj, channel: string): Obj => ({
  id: t['id']!,
  type: 'ad_impression',
  occurredAt: t['occurredAt']!,
  ...(t['customerId'] !== undefined ? { customerId: t['customerId'] } : { anonymousId: t['anonymousId']! }),
  properties: { channel },
});

const without = (t: Obj, ...keys: string[]): Obj => Object.fromEntries(Object.entries(t).filter(([k]) => !keys.includes(k)));
const idOf = (t: Obj): string => String(t['id']);
/** An id of exactly `n` code points that starts with the touchpoint's id (astral padding). */
function longId(t: Obj, n: number): string {
  let id = `${idOf(t)}-`;
  while (codePointLength(id) < n) id += '\u{1F600}';
  return id;
}

// ---------------------------------------------------------------------------------------------
// Faults: lines the contract rejects, each labelled with its reason (and path, for a field).
// ---------------------------------------------------------------------------------------------

export interface Fault {
  readonly kind: string;
  readonly intent: OracleRejection;
  /** For invalid_field: the one offending field. */
  readonly path?: (t: Obj) => string;
  /** The line keeps the touchpoint's id: it must not stop the valid copy from being recorded. */
  readonly keepsId: boolean;
  readonly line: (t: Obj, rng: Rng) => Buffer;
}

const field = (kind: string, path: string | ((t: Obj) => string), make: (t: Obj) => Obj | string, keepsId = true): Fault => ({
  kind,
  intent: 'invalid_field',
  path: typeof path === 'string' ? () => path : path,
  keepsId,
  line: (t) => {
    const made = make(clone(t));
    return utf8(typeof made === 'string' ? made : jsonText(made));
  },
});
const at = (occurredAt: string) => (t: Obj): Obj => ({ ...t, occurredAt });
const fresh = (t: Obj, suffix: string): Obj => ({ ...t, id: `${idOf(t)}~${suffix}` });

/** An object text padded with an extra field to exactly `bytes` bytes of UTF-8. */
function paddedTo(t: Obj, bytes: number): string {
  const empty = jsonText({ ...t, x_pad: '' });
  const missing = bytes - utf8(empty).length;
  if (missing < 0) throw new Error('touchpoint too large to pad');
  return jsonText({ ...t, x_pad: 'a'.repeat(missing) });
}

export const FAULTS: readonly Fault[] = [
  // malformed_json
  { kind: 'truncated', intent: 'malformed_json', keepsId: false, line: (t, rng) => { const s = jsonText(t); return utf8(s.slice(0, rng.int(1, s.length - 1))); } },
  { kind: 'byte-ff', intent: 'malformed_json', keepsId: true, line: (t) => withBytes(jsonText({ ...t, source: `billing${MARK}` }), [0xff]) },
  { kind: 'overlong-utf8', intent: 'malformed_json', keepsId: true, line: (t) => withBytes(jsonText({ ...t, source: `billing${MARK}` }), [0xc0, 0xaf]) },
  { kind: 'utf8-encoded-surrogate', intent: 'malformed_json', keepsId: true, line: (t) => withBytes(jsonText({ ...t, source: `billing${MARK}` }), [0xed, 0xa0, 0x80]) },
  { kind: 'cut-utf8-sequence', intent: 'malformed_json', keepsId: true, line: (t) => withBytes(jsonText({ ...t, source: `billing${MARK}` }), [0xe2, 0x82]) },
  { kind: 'two-boms', intent: 'malformed_json', keepsId: true, line: (t) => utf8(`\uFEFF\uFEFF${jsonText(t)}`) },
  { kind: 'trailing-comma', intent: 'malformed_json', keepsId: true, line: (t) => utf8(`${jsonText(t).slice(0, -1)},}`) },
  { kind: 'two-objects', intent: 'malformed_json', keepsId: true, line: (t) => utf8(jsonText(t) + jsonText(t)) },
  { kind: 'bom-only', intent: 'malformed_json', keepsId: false, line: () => utf8('\uFEFF') },
  // payload_too_large
  { kind: 'one-byte-over', intent: 'payload_too_large', keepsId: true, line: (t) => utf8(paddedTo(t, ORACLE_MAX_LINE_BYTES + 1)) },
  { kind: 'bom-makes-it-over', intent: 'payload_too_large', keepsId: true, line: (t) => utf8(`\uFEFF${paddedTo(t, ORACLE_MAX_LINE_BYTES)}`) },
  {
    kind: 'over-and-not-utf8',
    intent: 'payload_too_large',
    keepsId: true,
    line: (t) => { const b = utf8(paddedTo(t, ORACLE_MAX_LINE_BYTES + 100)); b[b.length - 10] = 0xff; return b; },
  },
  // not_an_object
  { kind: 'array', intent: 'not_an_object', keepsId: true, line: (t) => utf8(`[${jsonText(t)}]`) },
  { kind: 'string', intent: 'not_an_object', keepsId: true, line: (t) => utf8(JSON.stringify(jsonText(t))) },
  { kind: 'null', intent: 'not_an_object', keepsId: false, line: () => utf8('null') },
  { kind: 'number', intent: 'not_an_object', keepsId: false, line: () => utf8('42') },
  // unknown_type
  { kind: 'type-missing', intent: 'unknown_type', keepsId: true, line: (t) => utf8(jsonText(without(t, 'type'))) },
  { kind: 'type-unknown', intent: 'unknown_type', keepsId: true, line: (t) => utf8(jsonText({ ...t, type: 'refund' })) },
  { kind: 'type-wrong-case', intent: 'unknown_type', keepsId: true, line: (t) => utf8(jsonText({ ...t, type: 'Purchase' })) },
  { kind: 'type-not-a-string', intent: 'unknown_type', keepsId: true, line: (t) => utf8(jsonText({ ...t, type: 3 })) },
  // invalid_field: what no store can hold, anywhere
  field('nul-in-unknown-field', 'x_note', (t) => ({ ...t, x_note: 'a\u0000b' })),
  field('lone-surrogate-in-key', 'x_\uD800', (t) => ({ ...t, 'x_\uD800': 1 })),
  field('lone-surrogate-in-source', 'source', (t) => ({ ...t, source: 'billing\uDC00' })),
  field('lone-surrogate-deep', 'x_meta.a.0', (t) => ({ ...t, x_meta: { a: ['\uDBFF'] } })),
  field('proto-key-in-properties', 'properties.__proto__', (t) => withRaw(t, 'properties', jsonText(t['properties'] ?? {}).replace(/^\{/, `{"__proto__":{"polluted":true}${jsonText(t['properties'] ?? {}) === '{}' ? '' : ','}`))),
  field('proto-key-at-top', '__proto__', (t) => withRaw(t, '__proto__', '{"polluted":true}')),
  field(`nested-${ORACLE_MAX_NESTING + 1}-levels`, nestedPath('x_deep', ORACLE_MAX_NESTING), (t) => ({ ...t, x_deep: nested(ORACLE_MAX_NESTING) })),
  // invalid_field: control characters in ids and channels, and in free text
  field('esc-in-customerId', 'customerId', (t) => ({ ...t, customerId: `${String(t['customerId'] ?? 'c')}\u001b[31m` })),
  field('c1-in-anonymousId', 'anonymousId', (t) => ({ ...t, anonymousId: 'v\u0085' })),
  field('del-in-id', 'id', (t) => ({ ...t, id: `${idOf(t)}\u007f` }), false),
  field('c1-in-channel', 'properties.channel', (t) => asImpression(t, 'se\u009barch')),
  field('tab-in-channel', 'properties.channel', (t) => asImpression(t, 'search\t')),
  field('bell-in-source', 'source', (t) => ({ ...t, source: 'billing\u0007' })),
  field('backspace-in-campaign', 'properties.campaign', (t) => ({ ...asImpression(t, 'search'), properties: { channel: 'search', campaign: 'spring\u0008' } })),
  // invalid_field: lengths
  field(`id-of-${ORACLE_MAX_ID_CODE_POINTS + 1}-code-points`, 'id', (t) => ({ ...t, id: longId(t, ORACLE_MAX_ID_CODE_POINTS + 1) }), false),
  field(`customerId-of-${ORACLE_MAX_ID_CODE_POINTS + 1}-code-points`, 'customerId', (t) => ({ ...t, customerId: longId({ id: 'c' }, ORACLE_MAX_ID_CODE_POINTS + 1) })),
  field('empty-customerId', 'customerId', (t) => ({ ...t, customerId: '' })),
  field('empty-id', 'id', (t) => ({ ...t, id: '' }), false),
  // invalid_field: instants
  field('no-offset', 'occurredAt', (t) => ({ ...t, occurredAt: '2024-03-01T10:00:00.000' })),
  field('before-1970', 'occurredAt', at('1969-12-31T23:59:59.999Z')),
  field('at-2100', 'occurredAt', at('2100-01-01T00:00:00Z')),
  field('offset-pushes-past-2100', 'occurredAt', at('2099-12-31T23:30:00-01:00')),
  field('not-a-calendar-date', 'occurredAt', at('2023-02-29T12:00:00Z')),
  field('date-only', 'occurredAt', at('2024-03-01')),
  field('space-separator', 'occurredAt', at('2024-03-01 10:00:00Z')),
  field('hour-24', 'occurredAt', at('2024-03-01T24:00:00Z')),
  field('epoch-number', 'occurredAt', (t) => ({ ...t, occurredAt: 1_709_287_200_000 })),
  // invalid_field: money
  field('negative-amount', (t) => moneyPath(t, 'amountMinor'), (t) => withMoneyChanged(t, (m) => ({ ...m, amountMinor: -Math.max(1, Number(m['amountMinor'])) }))),
  field('fractional-amount', (t) => moneyPath(t, 'amountMinor'), (t) => withMoneyChanged(t, (m) => ({ ...m, amountMinor: 9.99 }))),
  field('amount-as-string', (t) => moneyPath(t, 'amountMinor'), (t) => withMoneyChanged(t, (m) => ({ ...m, amountMinor: String(m['amountMinor']) }))),
  field('amount-beyond-2^53', (t) => moneyPath(t, 'amountMinor'), (t) => withMoneyChanged(t, (m) => ({ ...m, amountMinor: 2 ** 53 }))),
  field('lower-case-currency', (t) => moneyPath(t, 'currency'), (t) => withMoneyChanged(t, (m) => ({ ...m, currency: String(m['currency']).toLowerCase() }))),
  field('four-letter-currency', (t) => moneyPath(t, 'currency'), (t) => withMoneyChanged(t, (m) => ({ ...m, currency: 'EURO' }))),
  // invalid_field: required fields and shapes
  field('missing-customerId', 'customerId', (t) => (t['type'] === 'ad_impression' ? without(t, 'customerId', 'anonymousId') : without(t, 'customerId'))),
  field('missing-orderId', 'properties.orderId', (t) => { const p = asPurchase(t); return { ...p, properties: without(p['properties'] as Obj, 'orderId') }; }),
  field('missing-amount', 'properties.amount', (t) => { const p = asPurchase(t); return { ...p, properties: without(p['properties'] as Obj, 'amount') }; }),
  field('missing-channel', 'properties.channel', (t) => ({ ...asImpression(t, 'x'), properties: {} })),
  field('missing-occurredAt', 'occurredAt', (t) => without(t, 'occurredAt')),
  field('properties-null', 'properties', (t) => ({ ...t, properties: null })),
  field('properties-array', 'properties', (t) => ({ ...t, properties: [] })),
  field('id-a-number', 'id', (t) => ({ ...t, id: 12345 }), false),
  field('anonymousId-null', 'anonymousId', (t) => ({ ...t, anonymousId: null })),
  field('referredBy-a-number', 'properties.referredBy', (t) => ({ ...t, type: 'registration', customerId: String(t['customerId'] ?? 'c'), properties: { referredBy: 7 } })),
];

// ---------------------------------------------------------------------------------------------
// Edges: valid touchpoints at the limits (applied to every copy of a touchpoint).
// ---------------------------------------------------------------------------------------------

export interface Edge {
  readonly kind: string;
  readonly applies: (t: Obj) => boolean;
  readonly apply: (t: Obj) => Obj;
  /** Only its compact form is valid (it is exactly at the byte limit). */
  readonly compactOnly?: boolean;
}

/** An instant written in another offset (minutes east of UTC), the same millisecond. */
function inOffset(occurredAt: string, minutes: number): string {
  const ms = Date.parse(occurredAt);
  const local = new Date(ms + minutes * 60_000).toISOString().slice(0, -1);
  const a = Math.abs(minutes);
  const sign = minutes < 0 ? '-' : '+';
  return `${local}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

export const EDGES: readonly Edge[] = [
  { kind: `id-of-${ORACLE_MAX_ID_CODE_POINTS}-code-points`, applies: () => true, apply: (t) => ({ ...t, id: longId(t, ORACLE_MAX_ID_CODE_POINTS) }) },
  { kind: `nested-${ORACLE_MAX_NESTING}-levels`, applies: () => true, apply: (t) => ({ ...t, x_deep: nested(ORACLE_MAX_NESTING - 1) }) },
  { kind: 'exactly-64-KiB', applies: () => true, apply: (t) => JSON.parse(paddedTo(t, ORACLE_MAX_LINE_BYTES)) as Obj, compactOnly: true },
  { kind: 'tab-lf-cr-in-free-text', applies: () => true, apply: (t) => ({ ...t, source: 'multi\tline\nsource\r\n' }) },
  {
    kind: 'controls-in-unknown-fields',
    applies: () => true,
    apply: (t) => ({ ...t, x_raw: '\u0001\u001b[2J\u007f\u0085\u009b', constructor: { prototype: 1 }, properties: { ...(t['properties'] as Obj), x_bell: '\u0007' } }),
  },
  { kind: 'astral-and-odd-characters-in-text', applies: () => true, apply: (t) => ({ ...t, source: '\u{1F600} \u00A0\u2028\uFEFF\uFFFF €' }) },
  { kind: 'offset-notation', applies: () => true, apply: (t) => ({ ...t, occurredAt: inOffset(String(t['occurredAt']), [330, -570, 840, -720, 0][idOf(t).length % 5]!) }) },
  { kind: 'zero-cost-in-another-currency', applies: (t) => t['type'] === 'ad_impression', apply: (t) => ({ ...t, properties: { ...(t['properties'] as Obj), cost: { amountMinor: 0, currency: 'JPY' } } }) },
  {
    kind: 'optional-properties-absent',
    // (A failure's or a referral's properties play no part in the fold; a registration's channel does.)
    applies: (t) => ['payment_failure', 'referral'].includes(String(t['type'])) || (t['type'] === 'registration' && jsonText(t['properties'] ?? {}) === '{}'),
    apply: (t) => without(t, 'properties'),
  },
  {
    kind: 'impression-with-customerId-and-anonymousId',
    applies: (t) => t['type'] === 'ad_impression' && t['anonymousId'] !== undefined && t['customerId'] === undefined,
    apply: (t) => ({ ...t, customerId: `c-of-${String(t['anonymousId'])}` }),
  },
];

// ---------------------------------------------------------------------------------------------
// Id conflicts: the same id with other content.
// ---------------------------------------------------------------------------------------------

/** Another version of a touchpoint under the same id: other amount, other instant, other channel or other customer. */
export function conflictingVersion(t: Obj, rng: Rng): { kind: string; t: Obj } {
  const p = t['properties'] as Obj | undefined;
  const choices: (() => { kind: string; t: Obj })[] = [
    () => ({ kind: 'other-instant', t: { ...t, occurredAt: new Date(Date.parse(String(t['occurredAt'])) + rng.pick([-1, 1]) * rng.int(3_600_000, 30 * 86_400_000)).toISOString() } }),
  ];
  if (p && isObj(p['amount'])) choices.push(() => ({ kind: 'other-amount', t: withMoneyChanged(t, (m) => ({ ...m, amountMinor: Number(m['amountMinor']) + rng.int(1, 500) })) }));
  if (t['type'] === 'ad_impression' || t['type'] === 'registration') choices.push(() => ({ kind: 'other-channel', t: { ...t, properties: { ...(p ?? {}), channel: 'partner' } } }));
  if (t['type'] !== 'ad_impression') choices.push(() => ({ kind: 'other-customer', t: { ...t, customerId: `${String(t['customerId'])}-typo` } }));
  return rng.pick(choices)();
}

// ---------------------------------------------------------------------------------------------
// The delivery.
// ---------------------------------------------------------------------------------------------

export interface OracleNoiseOptions {
  seed: number;
  /** Share of touchpoints delivered again (soon, or much later). */
  redeliveryRate: number;
  /** Share of touchpoints held back hundreds of lines, or to the very end. */
  lateRate: number;
  /** Share of touchpoints followed (or preceded) by an invalid line; the faults take turns. */
  invalidRate: number;
  /** Share of touchpoints that get an id conflict (a version with other content, before or after). */
  conflictRate: number;
  /** Share of touchpoints made edge cases (valid), besides one of each edge on the first touchpoint it applies to. */
  edgeRate: number;
  /** Share of touchpoints followed by a blank line (skipped, but counted as a line). */
  blankRate: number;
  /** Whether copies of a touchpoint that has an id conflict are redelivered too. */
  redeliverConflicting: boolean;
}

export interface NoisyLine {
  readonly bytes: Buffer;
  /** What the line is: `original`, `late`, `redelivery:<style>`, `conflict:<kind>:<before|after>`, `fault:<kind>`, `edge:<kind>`, `blank`. */
  readonly kind: string;
}

const STYLES: readonly { name: string; text: (t: Obj) => string }[] = [
  { name: 'same-bytes', text: (t) => jsonText(t) },
  { name: 'reformatted', text: (t) => jsonText(t, { reversed: true, spaced: true, decimalPoint: true }) },
  { name: 'bom', text: (t) => `\uFEFF${jsonText(t)}` },
  { name: 'blanks-around', text: (t) => ` \t${jsonText(t)} \r` },
  { name: 'explicit-empty-properties', text: (t) => jsonText(t['properties'] === undefined ? { ...t, properties: {} } : t) },
];
const BLANKS = ['', '   ', '\t', '\r', ' \t \r'];

/**
 * Noisy raw lines delivering `touchpoints` (which must be valid, with unique ids). Same seed and
 * options, same bytes.
 */
export function oracleNoisyLines(touchpoints: readonly Touchpoint[], options: OracleNoiseOptions): NoisyLine[] {
  const rng = new Rng(options.seed);
  const out: NoisyLine[] = [];
  const held: { due: number; order: number; line: NoisyLine }[] = [];
  let order = 0;
  let nextFault = 0;
  const used = new Map<Edge, number>();
  const hold = (due: number, line: NoisyLine) => held.push({ due, order: order++, line });
  const emit = (line: NoisyLine) => {
    out.push(line);
    for (;;) {
      let best = -1;
      for (let i = 0; i < held.length; i++) {
        const h = held[i]!;
        if (h.due <= out.length && (best < 0 || h.due < held[best]!.due || (h.due === held[best]!.due && h.order < held[best]!.order))) best = i;
      }
      if (best < 0) return;
      out.push(held.splice(best, 1)[0]!.line);
    }
  };
  const later = (min: number, max: number) => out.length + rng.int(min, max);

  for (const touchpoint of touchpoints) {
    let t = clone(touchpoint) as unknown as Obj;
    let compactOnly = false;
    let label = 'original';
    // Every edge once, on the first touchpoint it applies to; then at random, the least used first.
    const applicable = EDGES.filter((e) => e.applies(t));
    const edge = applicable.find((e) => !used.has(e)) ?? (rng.chance(options.edgeRate) ? applicable.sort((x, y) => (used.get(x) ?? 0) - (used.get(y) ?? 0))[0] : undefined);
    if (edge !== undefined) {
      used.set(edge, (used.get(edge) ?? 0) + 1);
      t = edge.apply(t);
      compactOnly = edge.compactOnly === true;
      label = `edge:${edge.kind}`;
    }
    const style = () => (compactOnly ? STYLES[0]! : rng.pick(STYLES));
    const first = compactOnly || rng.chance(0.8) ? STYLES[0]! : style();
    const copy = (kind: string, s = style()): NoisyLine => ({ bytes: utf8(s.text(t)), kind });
    const conflict = !compactOnly && rng.chance(options.conflictRate) ? conflictingVersion(t, rng) : undefined;
    // A touchpoint with an id conflict (when allowed): each version is retried right after itself
    // half the time, so that two copies of an id often share a batch after the first one recorded.
    const redeliver = conflict === undefined ? rng.chance(options.redeliveryRate) : options.redeliverConflicting && rng.chance(0.5);

    const original: NoisyLine = { bytes: utf8(first.text(t)), kind: label };
    const late = rng.chance(options.lateRate);
    if (conflict) {
      const before = rng.chance(0.5);
      const version: NoisyLine = { bytes: utf8(jsonText(conflict.t)), kind: `conflict:${conflict.kind}:${before ? 'before' : 'after'}` };
      const retried: NoisyLine = { bytes: utf8(jsonText(conflict.t, { reversed: true })), kind: `redelivery:conflict:${conflict.kind}` };
      const originalDue = before ? later(late ? 100 : 0, late ? 800 : 20) : late ? later(100, 800) : out.length;
      const versionDue = before ? out.length : later(0, 300);
      const versions: [number, NoisyLine][] = [[versionDue, version], ...(redeliver ? [[versionDue, retried] as [number, NoisyLine]] : [])];
      const originals: [number, NoisyLine][] = [
        [originalDue, late ? { ...original, kind: `late ${label}` } : original],
        ...(redeliver ? [[originalDue, copy('redelivery:same-bytes', STYLES[0]!)] as [number, NoisyLine]] : []),
      ];
      // Held lines with the same due come out in the order they were held.
      for (const [due, line] of before ? [...versions, ...originals] : [...originals, ...versions]) hold(due, line);
    } else {
      if (late) hold(rng.chance(0.1) ? Number.POSITIVE_INFINITY : later(100, 800), { ...original, kind: `late ${label}` });
      else emit(original);
      if (redeliver) {
        const s = style();
        hold(rng.chance(0.5) ? later(0, 3) : later(10, 1500), copy(`redelivery:${s.name}`, s));
      }
    }
    if (rng.chance(options.invalidRate)) {
      const fault = FAULTS[nextFault++ % FAULTS.length]!;
      // Made from the clean touchpoint, so that an edge (64 KiB of padding) does not hide the fault.
      emit({ bytes: fault.line(asObj(touchpoint), rng), kind: `fault:${fault.kind}` });
    }
    if (rng.chance(options.blankRate)) emit({ bytes: utf8(rng.pick(BLANKS)), kind: 'blank' });
  }
  held.sort((x, y) => x.due - y.due || x.order - y.order);
  for (const h of held) out.push(h.line);
  return out;
}

/** The touchpoint object of a valid base line, for building faults and edges in tests. */
export const asObj = (t: Touchpoint): Obj => clone(t) as unknown as Obj;
