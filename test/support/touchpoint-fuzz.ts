import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { MAX_TOUCHPOINT_BYTES, type RejectionReason } from '@lifecycle/contracts';

/** What an intake path answers for one line. */
export type Verdict = 'accepted' | RejectionReason;

/** One generated NDJSON line (bytes, without its LF) and, where the documented contract fixes it, the answer it must get. */
export interface FuzzLine {
  kind: string;
  bytes: Buffer;
  intent?: Verdict;
}

/** JSON text written as is: 1e400, -0, a raw control character inside a string. */
class Raw {
  constructor(readonly text: string) {}
}
type Json = null | boolean | number | string | Raw | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

/** Serialises like JSON.stringify (which escapes lone surrogates and control characters), but keeps Raw tokens and `__proto__` keys. */
function write(value: Json): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(write).join(',')}]`;
  if (value !== null && typeof value === 'object') return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${write(v)}`).join(',')}}`;
  return JSON.stringify(value);
}

/** An object whose keys are own data properties, `__proto__` included (an assignment would set the prototype). */
function obj(entries: [string, Json | undefined][]): Obj {
  const o: Obj = {};
  for (const [k, v] of entries) if (v !== undefined) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const isObj = (v: Json | undefined): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Raw);

/** A copy of `o` with `path` set to `value`, or removed when `value` is undefined; missing objects on the way are created. */
function setPath(o: Obj, path: readonly string[], value: Json | undefined): Obj {
  const [head, ...rest] = path as [string, ...string[]];
  const child = isObj(o[head]) ? (o[head] as Obj) : obj([]);
  const next = rest.length === 0 ? value : setPath(child, rest, value);
  const entries: [string, Json | undefined][] = Object.entries(o);
  // In place, so that the id stays the first field.
  return obj(Object.hasOwn(o, head) ? entries.map(([k, v]) => [k, k === head ? next : v]) : [...entries, [head, next]]);
}

/** Paths of the fields a touchpoint has, down to the money objects' fields. */
function fieldPaths(o: Obj, prefix: string[] = []): string[][] {
  return Object.entries(o).flatMap(([k, v]) => [[...prefix, k], ...(isObj(v) && prefix.length < 2 ? fieldPaths(v, [...prefix, k]) : [])]);
}

// The contract's rules as documented, to give targeted mutations their intended answer.
const NO_CONTROL = /^[^\u0000-\u001F\u007F-\u009F\uD800-\uDFFF]*$/u;
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;
// Lengths are in code points (the contract's zod counts them so).
const identifierVerdict = (s: string): Verdict => ([...s].length >= 1 && [...s].length <= 128 && NO_CONTROL.test(s) ? 'accepted' : 'invalid_field');
/** Strings and keys anywhere that no store can hold (what the contract refuses in unknown fields). */
const unstorable = (v: Json): boolean =>
  typeof v === 'string' ? UNSTORABLE.test(v) : isObj(v) ? Object.entries(v).some(([k, c]) => k === '__proto__' || UNSTORABLE.test(k) || unstorable(c)) : Array.isArray(v) && v.some(unstorable);

const EARLIEST = Date.parse('1970-01-01T00:00:00Z');
const LATEST = Date.parse('2100-01-01T00:00:00Z');

/** An instant written in a given offset (minutes; null for Z), with or without milliseconds. */
function instantText(ms: number, offset: number | null, millis: boolean, withOffset = true): string {
  const local = new Date(ms + (offset ?? 0) * 60_000).toISOString().slice(0, -1);
  const text = millis || ms % 1000 !== 0 ? local : local.slice(0, -4);
  if (!withOffset) return text;
  if (offset === null) return `${text}Z`;
  const a = Math.abs(offset);
  return `${text}${offset < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

// ---- arbitraries of valid fields ----

const printable = (max: number) => fc.string({ unit: 'grapheme', minLength: 1, maxLength: max }).filter((s) => s.length <= 4 * max && NO_CONTROL.test(s));
const identifier = fc.oneof(fc.constantFrom('alice', 'bob', 'Zoë', '客户-7', '🐱cat', 'a b', 'x'), printable(12));
const text = fc.oneof(printable(20), printable(10).map((s) => `${s}\n\t\r${s}`));
const offset = fc.oneof(fc.constant(null), fc.constantFrom(0, 60, -60, 330, -570, 14 * 60, -12 * 60, 23 * 60 + 59, -(23 * 60 + 59)), fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }));
const validMs = fc.oneof(fc.integer({ min: EARLIEST, max: LATEST - 1 }), fc.constantFrom(EARLIEST, LATEST - 1, Date.parse('2000-02-29T12:00:00Z')));
const instant = fc.tuple(validMs, offset, fc.boolean()).map(([ms, off, millis]) => instantText(ms, off, millis));
const money = fc.record({
  amountMinor: fc.oneof(fc.nat(100_000), fc.constantFrom(0, Number.MAX_SAFE_INTEGER), fc.maxSafeNat()),
  currency: fc.oneof(fc.constantFrom('EUR', 'USD', 'JPY'), fc.stringMatching(/^[A-Z]{3}$/)),
});
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
// fast-check puts `__proto__` keys into JSON values on purpose: not in valid touchpoints.
const extras = fc.dictionary(fc.string({ maxLength: 8 }).map((k) => `x_${k}`), fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, { maxKeys: 2 }).filter((e) => !unstorable(obj(Object.entries(e))));

const TYPES = ['ad_impression', 'registration', 'purchase', 'renewal', 'payment_failure', 'referral'] as const;

const propertiesOf: Record<(typeof TYPES)[number], fc.Arbitrary<Obj | undefined>> = {
  ad_impression: fc.record({ channel: identifier, campaign: opt(text), cost: opt(money) }).map((p) => obj(Object.entries(p))),
  registration: opt(fc.record({ channel: opt(identifier), campaign: opt(text), referredBy: opt(identifier) }).map((p) => obj(Object.entries(p)))),
  purchase: fc.record({ orderId: identifier, amount: money }).map((p) => obj(Object.entries(p))),
  renewal: fc.record({ subscriptionId: identifier, amount: money, plan: opt(text) }).map((p) => obj(Object.entries(p))),
  payment_failure: opt(fc.record({ subscriptionId: opt(identifier), amount: opt(money), reason: opt(text) }).map((p) => obj(Object.entries(p)))),
  referral: opt(fc.record({ referredCustomerId: opt(identifier), code: opt(text) }).map((p) => obj(Object.entries(p)))),
};

/** A valid touchpoint of a type, given its unique id. */
const touchpointOf = (type: (typeof TYPES)[number]): fc.Arbitrary<(uid: string) => Obj> =>
  fc
    .record({
      idSuffix: fc.oneof(fc.constant(''), printable(8).map((s) => `-${s}`)),
      occurredAt: instant,
      who: type === 'ad_impression' ? fc.constantFrom('customer', 'anonymous', 'both') : fc.constantFrom('customer', 'both'),
      customerId: identifier,
      anonymousId: identifier,
      source: opt(text),
      properties: propertiesOf[type],
      extras,
    })
    .map((f) => (uid: string) =>
      obj([
        ['id', uid + f.idSuffix],
        ['type', type],
        ['occurredAt', f.occurredAt],
        ['customerId', f.who !== 'anonymous' ? f.customerId : undefined],
        ['anonymousId', f.who !== 'customer' ? f.anonymousId : undefined],
        ['source', f.source],
        ['properties', f.properties],
        ...Object.entries(f.extras),
      ]),
    );
const touchpoint = fc.constantFrom(...TYPES).chain(touchpointOf);

/** `t` turned into a touchpoint of `type` with these properties (and a customer, which every type may have). */
const retype = (t: Obj, type: string, properties: Obj) => setPath(setPath(setPath(t, ['type'], type), ['customerId'], 'c-retyped'), ['properties'], properties);

// ---- arbitraries of what breaks things ----

const LONE = ['\uD800', '\uDBFF', '\uDC00', '\uDFFF'];
const CONTROL = ['\u0000', '\u0001', '\u001F', '\t', '\n', '\r', '\u007F', '\u0085', '\u009F'];
const ODD = ['\uFEFF', '\u2028', '\uFFFF', '\uFFFE', '\u{1F600}', '\u{10FFFF}', '\u00A0', '"', '\\', '€'];
/** Strings of any code point, lone surrogates and control characters included. */
const weirdString = fc.string({
  unit: fc.oneof({ weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }, fc.constantFrom(...LONE, ...CONTROL, ...ODD)),
  minLength: 1,
  maxLength: 8,
});
const numberTokens = ['1e400', '-1e400', '-0', '-0.0', '1e-400', '0.5', '-1', '1.0', '1E2', '123456789012345678901234567890', '9007199254740991', '9007199254740992', '5e-324', '1.7976931348623157e308'];
const nested = (depth: number, leaf: Json, kind: 'array' | 'object'): Json => {
  let v = leaf;
  for (let i = 0; i < depth; i += 1) v = kind === 'array' ? [v] : obj([['k', v]]);
  return v;
};
const weirdValue: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }) as fc.Arbitrary<Json>,
  fc.constantFrom(...numberTokens).map((t) => new Raw(t)),
  weirdString,
  fc.tuple(fc.integer({ min: 28, max: 36 }), fc.constantFrom<'array' | 'object'>('array', 'object')).map(([d, k]) => nested(d, 1, k)),
  fc.constantFrom<Json>(obj([['__proto__', obj([['polluted', true]])]]), obj([['constructor', obj([['prototype', obj([['polluted', true]])]])]])),
);
const weirdKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', '', 'x\u0000', 'x\uD800', 'x\u0001', '\u{1F600}'), weirdString);

type Mutation = fc.Arbitrary<{ kind: string; apply: (t: Obj, uid: string) => Obj; intent?: Verdict }>;

const mutations: Mutation[] = [
  // Any field, or a new one, set to any value; an id keeps its unique prefix when it stays a string.
  fc.record({ at: fc.nat(), extra: fc.boolean(), value: weirdValue }).map(({ at, extra, value }) => ({
    kind: 'random-value',
    apply: (t, uid) => {
      const paths = [...fieldPaths(t), ['x_new'], ['properties', 'x_new']];
      const path = extra ? paths[paths.length - 1 - (at % 2)]! : paths[at % paths.length]!;
      return setPath(t, path, path.join('.') === 'id' && typeof value === 'string' ? uid + value : value);
    },
  })),
  fc.nat().map((at) => ({ kind: 'field-removed', apply: (t) => { const paths = fieldPaths(t); return setPath(t, paths[at % paths.length]!, undefined); } })),
  // Identifiers with control characters, lone surrogates, astral characters.
  fc.record({ id: fc.boolean(), s: weirdString }).map(({ id, s }) => ({
    kind: 'weird-identifier',
    intent: identifierVerdict(`${id ? 'fz0.' : 'c'}${s}`),
    apply: (t, uid) => (id ? setPath(t, ['id'], `${uid}${s}`) : setPath(t, ['customerId'], `c${s}`)),
  })),
  // Ids of 128 and 129 characters, padded with characters of 1 to 4 UTF-8 bytes.
  fc.record({ length: fc.constantFrom(127, 128, 129, 130), pad: fc.constantFrom('x', 'é', '中', '\u{1F600}'), field: fc.constantFrom('id', 'customerId', 'anonymousId') }).map(({ length, pad, field }) => ({
    kind: `${field}-of-${length}`,
    intent: length <= 128 ? 'accepted' : 'invalid_field',
    apply: (t, uid) => {
      let id = `${uid}-`;
      while ([...id].length < length) id += pad;
      const withField = setPath(t, [field], id);
      return field === 'id' ? withField : setPath(withField, ['id'], uid);
    },
  })),
  // Unknown extra fields, values and keys: only NUL, lone surrogates and __proto__ are refused there.
  fc.record({ key: weirdKey, value: fc.oneof(weirdString, fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>), where: fc.constantFrom<string[]>([], ['properties'], ['x_outer']) }).map(({ key, value, where }) => ({
    kind: 'weird-extra',
    intent: unstorable(obj([[key, value]])) ? 'invalid_field' : 'accepted',
    apply: (t) => (where.length === 0 ? setPath(t, [key], value) : setPath(t, [...where, key], value)),
  })),
  // Nesting around the limit: the root, maybe `properties`, and `depth` containers in an extra field.
  fc.record({ depth: fc.integer({ min: 28, max: 34 }), kind: fc.constantFrom<'array' | 'object'>('array', 'object'), inProperties: fc.boolean() }).map(({ depth, kind, inProperties }) => ({
    kind: `nested-${depth}${inProperties ? '-in-properties' : ''}`,
    intent: 1 + (inProperties ? 1 : 0) + depth <= 32 ? 'accepted' : 'invalid_field',
    apply: (t) => setPath(t, inProperties ? ['properties', 'x_deep'] : ['x_deep'], nested(depth, 'leaf', kind)),
  })),
  // Amounts: fractional, negative, over MAX_SAFE_INTEGER, -0, 1e400 (the number text is what matters).
  fc.constantFrom(...numberTokens, '"100"', '100.25').map((token) => ({
    kind: `amount-${token}`,
    apply: (t) => retype(t, 'purchase', obj([['orderId', 'o'], ['amount', obj([['amountMinor', new Raw(token)], ['currency', 'EUR']])]])),
    intent: (() => {
      const n = JSON.parse(token) as unknown;
      return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= Number.MAX_SAFE_INTEGER ? 'accepted' : 'invalid_field';
    })(),
  })),
  fc.constantFrom('eur', 'EURO', 'EU', 'E1R', '').map((currency) => ({
    kind: 'currency',
    intent: 'invalid_field',
    apply: (t) => retype(t, 'renewal', obj([['subscriptionId', 's'], ['amount', obj([['amountMinor', 1], ['currency', currency]])]])),
  })),
  // Instants out of [1970, 2100), or without an offset; and the edges inside.
  fc
    .oneof(
      fc.tuple(fc.oneof(fc.integer({ min: EARLIEST - 10 ** 12, max: EARLIEST - 1 }), fc.integer({ min: LATEST, max: Date.parse('9999-01-01T00:00:00Z') }), fc.constantFrom(EARLIEST - 1, LATEST)), offset, fc.boolean()).map(([ms, off, m]) => ({ text: instantText(ms, off, m), intent: 'invalid_field' as Verdict })),
      fc.tuple(validMs, fc.boolean()).map(([ms, m]) => ({ text: instantText(ms, null, m, false), intent: 'invalid_field' as Verdict })),
      fc.constantFrom(
        { text: '1970-01-01T00:00:00Z', intent: 'accepted' as Verdict },
        { text: '1970-01-01T01:00:00+01:00', intent: 'accepted' as Verdict },
        { text: '1970-01-01T00:59:59.999+01:00', intent: 'invalid_field' as Verdict },
        { text: '2099-12-31T23:59:59.999Z', intent: 'accepted' as Verdict },
        { text: '2099-12-31T23:30:00-01:00', intent: 'invalid_field' as Verdict },
        { text: '2100-01-01T00:00:00Z', intent: 'invalid_field' as Verdict },
        { text: '2025-03-01', intent: 'invalid_field' as Verdict },
        { text: '2025-03-01 10:00:00Z', intent: 'invalid_field' as Verdict },
        { text: '2025-03-01T10:00:00+24:00', intent: 'invalid_field' as Verdict },
      ),
    )
    .map(({ text: at, intent }) => ({ kind: 'occurredAt', intent, apply: (t) => setPath(t, ['occurredAt'], at) })),
  fc.oneof(weirdValue, fc.constantFrom<Json>('Registration', 'teleport', '', 'registration ', null), fc.constant(undefined)).map((type) => ({
    kind: 'type',
    ...(typeof type === 'string' && (TYPES as readonly string[]).includes(type) ? {} : { intent: 'unknown_type' as Verdict }),
    apply: (t) => setPath(t, ['type'], type),
  })),
];

const utf8 = (s: string) => Buffer.from(s, 'utf8');
/** What every path skips as blank: only spaces, tabs and CRs. */
const blank = (bytes: Buffer) => bytes.every((b) => b === 0x20 || b === 0x09 || b === 0x0d);
const INVALID_UTF8 = [[0xff], [0xfe], [0x80], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80]];
const MARK = '\uE000';

/** A line's bytes with a leading BOM, surrounding blanks or a CRLF end (all ignored by the paths). */
const wrapped = fc.constantFrom('', '', '', 'bom', 'spaces', 'crlf').map((w) => (s: string) => (w === 'bom' ? `\uFEFF${s}` : w === 'spaces' ? ` \t${s} ` : w === 'crlf' ? `${s}\r` : s));

type LineArb = fc.Arbitrary<(uid: string) => FuzzLine>;

const validLine: LineArb = fc.tuple(touchpoint, wrapped).map(([t, wrap]) => (uid) => ({ kind: 'valid', bytes: utf8(wrap(write(t(uid)))), intent: 'accepted' }));

const mutatedLine: LineArb = fc.tuple(touchpoint, fc.oneof(...mutations)).map(([t, m]) => (uid) => ({ kind: m.kind, bytes: utf8(write(m.apply(t(uid), uid))), ...(m.intent ? { intent: m.intent } : {}) }));

const notAnObject: LineArb = fc
  .oneof(
    (fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>).filter((v) => !isObj(v)).map((v) => () => write(v)),
    fc.constantFrom('1e400', '-0', 'null', 'true', '"{}"', '[]').map((s) => () => s),
    touchpoint.map((t) => (uid: string) => write([t(uid)])),
  )
  .map((f) => (uid) => ({ kind: 'not-an-object', bytes: utf8(f(uid)), intent: 'not_an_object' }));

const notJson: LineArb = fc
  .oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map((s) => () => s.replaceAll('\n', ' ')),
    fc.constantFrom('{', '}', 'NaN', 'Infinity', 'undefined', "{'a':1}", '{"a":1}{"b":2}', '{"id":"x",}', '\uFEFF', '\uFEFF\uFEFF{}', '{"a":"\t"}', '// {}').map((s) => () => s),
    fc.tuple(touchpoint, fc.nat()).map(([t, cut]) => (uid: string) => { const s = write(t(uid)); return s.slice(0, 1 + (cut % (s.length - 1))); }),
  )
  .map((f) => (uid: string): FuzzLine => ({ kind: 'not-json', bytes: utf8(f(uid)) }))
  .filter((f) => !blank(f('fz0.').bytes));

const invalidUtf8: LineArb = fc.oneof(
  fc.tuple(touchpoint, fc.constantFrom(...INVALID_UTF8)).map(([t, bad]) => (uid: string) => {
    const bytes = utf8(write(setPath(t(uid), ['id'], `${uid}${MARK}`)));
    const at = bytes.indexOf(utf8(MARK));
    return { kind: 'invalid-utf8', bytes: Buffer.concat([bytes.subarray(0, at), Buffer.from(bad), bytes.subarray(at + 3)]), intent: 'malformed_json' as Verdict };
  }),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((a) => (): FuzzLine => {
    const bytes = Buffer.from(a.map((b) => (b === 0x0a ? 0xff : b)));
    return { kind: 'random-bytes', bytes, ...(isUtf8(bytes) ? {} : { intent: 'malformed_json' as Verdict }) };
  }).filter((f) => !blank(f().bytes)),
);

/** A touchpoint padded to MAX_TOUCHPOINT_BYTES + delta bytes (with a BOM, if any), maybe not UTF-8. */
const padded = (delta: fc.Arbitrary<number>, bad = fc.boolean()): LineArb =>
  fc.record({ t: touchpoint, delta, pad: fc.constantFrom('a', 'é', '€', '\u{1F600}'), bom: fc.boolean(), bad }).map(({ t, delta, pad, bom, bad }) => (uid: string) => {
    const target = MAX_TOUCHPOINT_BYTES + delta;
    const base = t(uid);
    const empty = Buffer.byteLength(write(setPath(base, ['x_pad'], ''))) + (bom ? 3 : 0);
    const padBytes = Buffer.byteLength(pad);
    const filler = pad.repeat(Math.floor((target - empty) / padBytes)) + 'a'.repeat((target - empty) % padBytes);
    let bytes = utf8((bom ? '\uFEFF' : '') + write(setPath(base, ['x_pad'], filler)));
    if (bad) bytes = Buffer.concat([bytes.subarray(0, 40), Buffer.from([0xff]), bytes.subarray(41)]); // same length, not UTF-8
    return { kind: `large${delta >= 0 ? '+' : ''}${delta}`, bytes, intent: delta > 0 ? 'payload_too_large' : bad ? 'malformed_json' : 'accepted' };
  });

/** Lines around MAX_TOUCHPOINT_BYTES: padded to the limit ± a few bytes, or nested very deep. */
const largeLine: LineArb = fc.oneof(
  { weight: 4, arbitrary: padded(fc.integer({ min: -2, max: 2 })) },
  fc.constantFrom(
    { kind: 'deep-array', text: () => '['.repeat(30_000) + ']'.repeat(30_000), intent: 'not_an_object' as Verdict },
    { kind: 'deep-untyped', text: () => '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000), intent: 'unknown_type' as Verdict },
  ).map(({ kind, text: f, intent }) => () => ({ kind, bytes: utf8(f()), intent })),
  touchpoint.map((t) => (uid: string) => ({ kind: 'deep-extra', bytes: utf8(write(setPath(t(uid), ['x_deep'], new Raw('['.repeat(25_000) + ']'.repeat(25_000))))), intent: 'invalid_field' as Verdict })),
);

/** `count` lines from `seed`, each with a unique id where it has one (`fz<n>` and a suffix). */
export function fuzzLines(seed: number, count: number): FuzzLine[] {
  const small = [
    { weight: 30, arbitrary: validLine },
    { weight: 40, arbitrary: mutatedLine },
    { weight: 6, arbitrary: notAnObject },
    { weight: 6, arbitrary: notJson },
    { weight: 6, arbitrary: invalidUtf8 },
  ];
  const first = fc.sample(touchpointOf('registration'), { seed, numRuns: 1 })[0]!;
  const rest = fc.sample(fc.oneof(...small, { weight: 4, arbitrary: largeLine }), { seed: seed + 1, numRuns: count - 4 });
  // Whatever the seed: one line at the limit, one a byte under, one a byte over.
  const edges = fc.sample(fc.tuple(padded(fc.constant(0), fc.constant(false)), padded(fc.constant(-1), fc.constant(false)), padded(fc.constant(1))), { seed: seed + 2, numRuns: 1 })[0]!;
  rest.splice(Math.floor(count / 4), 0, edges[0]);
  rest.splice(Math.floor(count / 2), 0, edges[1]);
  rest.splice(Math.floor((3 * count) / 4), 0, edges[2]);
  // `fzN.`: no id is a prefix of another's.
  const lines = [{ kind: 'valid', bytes: utf8(write(first('fz0.'))), intent: 'accepted' as Verdict }, ...rest.map((f, i) => f(`fz${i + 1}.`))];
  for (const l of lines) {
    // Blank lines are skipped and LF splits lines: neither may be generated.
    if (l.bytes.includes(0x0a) || blank(l.bytes)) throw new Error(`generated an unusable line: ${JSON.stringify(l.bytes.toString())}`);
  }
  return lines;
}
