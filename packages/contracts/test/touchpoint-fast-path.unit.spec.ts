import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { MAX_TOUCHPOINT_BYTES, TOUCHPOINT_TYPES, parseTouchpoint, parseTouchpointStrict } from '@lifecycle/contracts';
import { fastTouchpoint } from '../src/touchpoint-fast-path.js';
import { fuzzLines } from '../../../test/support/touchpoint-fuzz.js';

// parseTouchpoint reads common lines without JSON.parse or zod; whatever it answers must be what
// the zod path answers: the same touchpoint, key order included, or the same rejection.

const SEED = Number(process.env.FUZZ_SEED ?? 20_240_501);
const RUNS = 2000;

/** The value with every object turned into its entries, so that equality also compares key order. */
const ordered = (value: unknown): unknown =>
  Array.isArray(value) ? value.map(ordered) : value !== null && typeof value === 'object' ? Object.entries(value).map(([k, v]) => [k, ordered(v)]) : value;

let fastAccepted = 0;

/** Whether both paths answer the same: the same touchpoint (key order, prototypes and -0 included) or the same rejection. */
function sameAnswer(input: string | Uint8Array): boolean {
  const fast = parseTouchpoint(input);
  const strict = parseTouchpointStrict(input);
  if (fastTouchpoint(input) !== undefined) fastAccepted += 1;
  return isDeepStrictEqual(ordered(fast), ordered(strict)) && isDeepStrictEqual(fast, strict);
}

/** For the line as given and in the other form parseTouchpoint takes (its UTF-8 bytes, or their decoding). */
const agrees = (line: string | Uint8Array) =>
  (typeof line === 'string' ? [line, Buffer.from(line, 'utf8')] : [line, Buffer.from(line).toString('utf8')]).every(sameAnswer);

// ---- JSON text written token by token, with whitespace where JSON allows it and raw tokens ----

/** A token written as is: a number such as `1e2`, `-0` or `01`, or any other JSON text. */
class Raw {
  constructor(readonly text: string) {}
}
type Json = null | boolean | number | string | Raw | Json[] | Obj;
type Obj = { [key: string]: Json };

/** A key written without this prefix: a way to give an object the same field twice. */
const AGAIN = '\u0000again:';

function write(value: Json, space: () => string): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${space()}${value.map((v) => write(v, space)).join(`${space()},${space()}`)}${space()}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k.replace(AGAIN, ''))}${space()}:${space()}${write(v, space)}`);
    return `{${space()}${members.join(`${space()},${space()}`)}${space()}}`;
  }
  return JSON.stringify(value);
}

/** An object with these entries in this order (defineProperty: `__proto__` stays a key). */
const obj = (entries: [string, Json | undefined][]): Obj => {
  const o: Obj = {};
  for (const [k, v] of entries) if (v !== undefined) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
};

// ---- touchpoints: mostly valid, some with one thing off; values around every rule ----

const CHARS = ['a', 'Z', '0', '-', '_', ' ', '~', '.', 'é', '中', '\u00a0', '\u2028', '\ufeff', '\ufffd', '\u{1F600}', '"', '\\', '/', '\t', '\n', '\u0000', '\u001b', '\u007f', '\u0085', '\u009f', '\ud800', '\udfff'];
const plain = fc.stringMatching(/^[a-zA-Z0-9 ._:-]{1,16}$/);
const unicode = fc.string({ unit: fc.constantFrom('a', '7', 'é', '中', '\u00a0', '\u2028', '\u{1F600}', '\u{10FFFF}'), minLength: 1, maxLength: 8 });
const odd = fc.string({ unit: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('a', 'b', '7', '-') }, fc.constantFrom(...CHARS)), minLength: 0, maxLength: 10 });
/** Strings of about `n` UTF-16 units: the limits are 128 and 256, counted by zod in code points. */
const around = (n: number) =>
  fc.tuple(fc.integer({ min: n - 2, max: n + 2 }), fc.constantFrom('x', 'é', '\u{1F600}')).map(([length, unit]) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length));
const identifier = fc.oneof({ weight: 12, arbitrary: plain }, { weight: 3, arbitrary: unicode }, around(128));
const text = (max: 128 | 256) => fc.oneof({ weight: 12, arbitrary: plain }, { weight: 3, arbitrary: unicode }, around(max), fc.constant(''));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const instantOf = (parts: { year: number; month: number; day: number; hour: number; minute: number; second: number; fraction: string; zone: string; t: string }) =>
  `${pad(parts.year, 4)}-${pad(parts.month, 2)}-${pad(parts.day, 2)}${parts.t}${pad(parts.hour, 2)}:${pad(parts.minute, 2)}:${pad(parts.second, 2)}${parts.fraction}${parts.zone}`;
const instantParts = {
  year: fc.integer({ min: 1971, max: 2098 }),
  month: fc.integer({ min: 1, max: 12 }),
  // 29 to 31 are not days of every month: those instants are refused.
  day: fc.integer({ min: 1, max: 31 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.integer({ min: 0, max: 59 }),
  fraction: fc.constantFrom('', '.123', '.000', '.999'),
  zone: fc.constantFrom('Z', '+00:00', '-05:00', '+05:30', '+23:59', '-23:59'),
  t: fc.constant('T'),
};
const instant = fc.record(instantParts).map(instantOf);
/** One part of a valid instant at or past an edge of the range or the pattern (leap days included). */
const EDGES = {
  year: fc.constantFrom(1969, 1970, 1971, 2000, 2096, 2097, 2098, 2099, 2100, 9999),
  month: fc.constantFrom(0, 2, 13, 99),
  day: fc.constantFrom(0, 28, 29, 30, 31, 32),
  hour: fc.constantFrom(23, 24, 29),
  minute: fc.constantFrom(59, 60),
  second: fc.constantFrom(59, 60),
  fraction: fc.constantFrom('.5', '.12', '.1234', '.', '.12a', ','),
  zone: fc.constantFrom('+23:59', '-23:59', '+24:00', '-24:00', '+29:00', '+05:60', '+05:99', '-00:00', '+0530', '+05', 'z', '', 'Z ', '+5:30', '+05:3a'),
  t: fc.constantFrom('t', ' ', '_'),
};
const edgyInstant = fc
  .tuple(fc.record(instantParts), fc.constantFrom(...(Object.keys(EDGES) as (keyof typeof EDGES)[])))
  .chain(([parts, part]) => (EDGES[part] as fc.Arbitrary<number | string>).map((edge) => instantOf({ ...parts, [part]: edge })));
/** Around the ends of [1970, 2100), where the offset decides. */
const rangeEnd = fc
  .tuple(fc.constantFrom('1969-12-31T23', '1970-01-01T00', '1970-01-01T01', '2099-12-31T22', '2099-12-31T23', '2100-01-01T00'), fc.constantFrom(':00:00', ':30:00.000', ':59:59.999'), fc.constantFrom('Z', '+01:00', '-01:00', '+00:30', '-00:30'))
  .map(([hour, rest, zone]) => `${hour}${rest}${zone}`);
/** The last days of February, April and June, in any year of the range: leap years are those divisible by 4. */
const monthEnd = fc
  .tuple(fc.record(instantParts), fc.constantFrom([2, 28], [2, 29], [2, 30], [4, 30], [4, 31], [6, 31]))
  .map(([parts, [month, day]]) => instantOf({ ...parts, month: month!, day: day! }));

const money = fc.record({ amountMinor: fc.oneof({ weight: 8, arbitrary: fc.nat(1_000_000) }, fc.constantFrom(0, 999_999_999_999_999, Number.MAX_SAFE_INTEGER)), currency: fc.constantFrom('EUR', 'USD', 'JPY') }).map((m): Json => obj(Object.entries(m)));

/** Every property with a valid value, so that a property of one type can be put on another. */
const propertyValues = fc.record({
  channel: identifier,
  campaign: text(256),
  cost: money,
  referredBy: identifier,
  orderId: identifier,
  amount: money,
  subscriptionId: identifier,
  plan: text(128),
  reason: text(256),
  referredCustomerId: identifier,
  code: text(128),
});
const SHAPES: Record<(typeof TOUCHPOINT_TYPES)[number], { required: string[]; optional: string[]; defaulted: boolean }> = {
  ad_impression: { required: ['channel'], optional: ['campaign', 'cost'], defaulted: false },
  registration: { required: [], optional: ['channel', 'campaign', 'referredBy'], defaulted: true },
  purchase: { required: ['orderId', 'amount'], optional: [], defaulted: false },
  renewal: { required: ['subscriptionId', 'amount'], optional: ['plan'], defaulted: false },
  payment_failure: { required: [], optional: ['subscriptionId', 'amount', 'reason'], defaulted: true },
  referral: { required: [], optional: ['referredCustomerId', 'code'], defaulted: true },
};

const valid = fc
  .record({
    type: fc.constantFrom(...TOUCHPOINT_TYPES),
    id: identifier,
    occurredAt: instant,
    who: fc.constantFrom('customer', 'customer', 'both', 'anonymous'),
    customerId: identifier,
    anonymousId: identifier,
    source: maybe(text(256)),
    values: propertyValues,
    optional: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    withProperties: fc.boolean(),
    order: fc.nat(),
  })
  .map((f) => {
    const shape = SHAPES[f.type];
    const names = [...shape.required, ...shape.optional.filter((_, i) => f.optional[i])];
    const properties = obj(names.map((name) => [name, f.values[name as keyof typeof f.values]]));
    const anonymous = f.who === 'anonymous' && f.type === 'ad_impression';
    const fields: [string, Json | undefined][] = [
      ['id', f.id],
      ['type', f.type],
      ['occurredAt', f.occurredAt],
      ['customerId', anonymous ? undefined : f.customerId],
      ['anonymousId', f.who === 'customer' ? undefined : f.anonymousId],
      ['source', f.source],
      ['properties', shape.defaulted && !f.withProperties ? undefined : properties],
    ];
    // Producers write the fields in any order.
    const k = f.order % fields.length;
    return obj(f.order % 2 === 0 ? fields : [...fields.slice(k), ...fields.slice(0, k)]);
  });

const isObj = (v: Json | undefined): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Raw);
/** `t` with `value` at `path` (removed if undefined), keeping the place of an existing field. */
function setPath(t: Obj, path: readonly string[], value: Json | undefined): Obj {
  const [head, ...rest] = path as [string, ...string[]];
  const next = rest.length === 0 ? value : setPath(isObj(t[head]) ? (t[head] as Obj) : obj([]), rest, value);
  const entries = Object.entries(t) as [string, Json | undefined][];
  return obj(Object.hasOwn(t, head) ? entries.map(([k, v]) => [k, k === head ? next : v]) : [...entries, [head, next]]);
}
const PROPERTY_NAMES = ['channel', 'campaign', 'cost', 'referredBy', 'orderId', 'amount', 'subscriptionId', 'plan', 'reason', 'referredCustomerId', 'code'];
const FIELD_PATHS = [
  ...['id', 'type', 'occurredAt', 'customerId', 'anonymousId', 'source', 'properties'].map((name) => [name]),
  ...PROPERTY_NAMES.map((name) => ['properties', name]),
  ...['amount', 'cost'].flatMap((name) => [['properties', name, 'amountMinor'], ['properties', name, 'currency']]),
];
/** Numbers as JSON can write them, valid amounts or not, and other tokens. */
const tokens = fc.constantFrom('-0', '0.0', '1.0', '1e2', '1E2', '1e+2', '-1', '0.5', '0', '00', '01', '10', '999999999999999', '1000000000000000', '9007199254740991', '9007199254740992', '1e400', 'null', 'true', '[]', '{}', '"1"').map((t) => new Raw(t));
const anyValue: fc.Arbitrary<Json> = fc.oneof(odd, edgyInstant, fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, tokens);

/** One thing off in a valid touchpoint. */
const deviation: fc.Arbitrary<(t: Obj) => Obj> = fc.oneof(
  fc.tuple(fc.constantFrom(...FIELD_PATHS), anyValue).map(([path, value]) => (t: Obj) => setPath(t, path, value)),
  fc.constantFrom(...FIELD_PATHS).map((path) => (t: Obj) => setPath(t, path, undefined)),
  fc.tuple(fc.constantFrom([], ['properties'], ['properties', 'amount'], ['properties', 'cost']), fc.constantFrom('x', 'constructor', '__proto__', 'Id', 'i\u0000d', ''), anyValue).map(([at, key, value]) => (t: Obj) => setPath(t, [...at, key], value)),
  fc.tuple(fc.constantFrom(...PROPERTY_NAMES), identifier).map(([name, value]) => (t: Obj) => setPath(t, ['properties', name], value)),
  fc.oneof(edgyInstant, monthEnd, rangeEnd).map((at) => (t: Obj) => setPath(t, ['occurredAt'], at)),
  // Only an anonymousId: enough for an ad_impression alone.
  identifier.map((anonymousId) => (t: Obj) => setPath(setPath(t, ['customerId'], undefined), ['anonymousId'], anonymousId)),
  tokens.map((amount) => (t: Obj) => setPath(setPath(t, ['type'], 'purchase'), ['properties'], obj([['orderId', 'o'], ['amount', obj([['amountMinor', amount], ['currency', 'EUR']])]]))),
  fc.constantFrom('Purchase', 'refund', '', 'registration ').map((type) => (t: Obj) => setPath(t, ['type'], type)),
  // A field twice: JSON.parse keeps the last value at the first one's place.
  fc.tuple(fc.constantFrom(...FIELD_PATHS), anyValue).map(([path, value]) => (t: Obj) => setPath(t, [...path.slice(0, -1), `${AGAIN}${path.at(-1)!}`], value)),
);
const touchpoint = fc.tuple(valid, fc.option(deviation, { freq: 2 })).map(([t, off]) => (off ? off(t) : t));

/** Valid touchpoints with any of the instants above. */
const withInstant = fc.tuple(valid, fc.oneof(instant, edgyInstant, monthEnd, rangeEnd)).map(([t, at]) => write(setPath(t, ['occurredAt'], at), () => ''));

const spacing = fc.oneof({ weight: 4, arbitrary: fc.constant(() => '') }, fc.constantFrom(' ', '\t', '\r\n', '  ').map((s) => () => s));
const line = fc.tuple(touchpoint, spacing, fc.constantFrom('', '', '', '\uFEFF', ' ', '\uFEFF\uFEFF')).map(([t, space, lead]) => `${lead}${write(t, space)}`);

/** One small change anywhere in a line: what a broken producer or a bit flip makes of it. */
const mutated = fc
  .tuple(line, fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.constantFrom(...CHARS, '{', '}', ',', ':', '1', 'e', 'E', '-', '+', '.', '[', ']', 'null', '""'))
  .map(([text, at, how, char]) => {
    const i = at % (text.length + 1);
    if (how === 'insert') return text.slice(0, i) + char + text.slice(i);
    if (how === 'delete') return text.slice(0, i) + text.slice(i + 1);
    return text.slice(0, i) + char + text.slice(i + 1);
  });

/** Bytes that are not UTF-8, or truncated sequences, put into a line. */
const badBytes = fc.tuple(line, fc.nat(), fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xef, 0xbf, 0xbd])).map(([text, at, bad]) => {
  const bytes = Buffer.from(text, 'utf8');
  const i = at % (bytes.length + 1);
  return Buffer.concat([bytes.subarray(0, i), Buffer.from(bad), bytes.subarray(i)]);
});

describe('parseTouchpoint: the fast path answers exactly as the zod path', () => {
  beforeEach(() => {
    fastAccepted = 0;
  });

  test('generated touchpoints, valid and invalid, in any field order and spacing', () => {
    fc.assert(fc.property(line, agrees), { seed: SEED, numRuns: RUNS });
    // Not vacuous: the fast path took a good part of them.
    expect(fastAccepted).toBeGreaterThan(RUNS / 2);
  });

  test('instants at the edges of the range and of the pattern', () => {
    fc.assert(fc.property(withInstant, agrees), { seed: SEED + 3, numRuns: RUNS });
    expect(fastAccepted).toBeGreaterThan(RUNS / 2);
  });

  test('lines with one character inserted, deleted or replaced', () => {
    fc.assert(fc.property(mutated, agrees), { seed: SEED + 1, numRuns: RUNS });
    expect(fastAccepted).toBeGreaterThan(RUNS / 10);
  });

  test('lines with bytes that are not UTF-8', () => {
    fc.assert(fc.property(badBytes, agrees), { seed: SEED + 2, numRuns: RUNS / 2 });
  });

  test('the intake fuzz lines (test/support/touchpoint-fuzz.ts)', () => {
    const differing = fuzzLines(SEED, 1000).filter(({ bytes }) => !agrees(bytes));
    expect(differing.map(({ kind, bytes }) => `${kind}: ${bytes.toString('utf8')}`)).toEqual([]);
    // Most of its valid lines have unknown extra fields, which the fast path leaves to zod.
    expect(fastAccepted).toBeGreaterThan(10);
  });

  test('long lines: around the byte limit (UTF-8 bytes, whatever the input) and shorter', () => {
    const line = (code: string) => `{"id":"i","type":"referral","occurredAt":"2024-01-01T00:00:00Z","customerId":"c","properties":{"code":"${code}"}}`;
    const lines: string[] = [];
    for (const code of ['', '中'.repeat(128), '\u{1F600}'.repeat(64)]) {
      for (const size of [1000, 4000, 4100, 16_000, MAX_TOUCHPOINT_BYTES]) {
        for (let delta = -3; delta <= 3; delta += 1) lines.push(' '.repeat(size + delta - Buffer.byteLength(line(code))) + line(code));
      }
    }
    expect(lines.filter((l) => !agrees(l)).map((l) => `${Buffer.byteLength(l)} bytes: ${l.trim()}`)).toEqual([]);
    expect(fastAccepted).toBeGreaterThan(0);
  });
});
