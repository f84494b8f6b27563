import { DEFAULT_CONFIG, MAX_TOUCHPOINT_BYTES, TOUCHPOINT_TYPES, parseTouchpoint, validateTouchpoint, type Touchpoint } from '@lifecycle/contracts';
import { groupByCustomer, projectAsOf } from '@lifecycle/domain';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { isoInstant } from '../src/iso-instant.js';
import { MinHeap } from '../src/min-heap.js';

const DAY = 86_400_000;
const START = Date.parse('2024-01-01T00:00:00Z');
const END = Date.parse('2025-01-01T00:00:00Z');
const INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)$/;

const moneyOf = (t: Touchpoint) =>
  t.type === 'purchase' || t.type === 'renewal'
    ? t.properties.amount
    : t.type === 'payment_failure'
      ? t.properties.amount
      : t.type === 'ad_impression'
        ? t.properties.cost
        : undefined;

describe('generateTouchpoints', () => {
  const customers = 500;
  const stream = [...generateTouchpoints({ customers, seed: 9 })];
  const times = stream.map((t) => Date.parse(t.occurredAt));

  test('the same options give the same stream byte for byte; another seed, another stream', () => {
    const text = JSON.stringify(stream);
    expect(JSON.stringify([...generateTouchpoints({ customers, seed: 9 })])).toBe(text);
    expect(JSON.stringify([...generateTouchpoints({ customers, seed: 10 })])).not.toBe(text);
    expect(JSON.stringify([...generateTouchpoints({ customers, seed: 9, months: 6 })])).not.toBe(text);
  });

  test('every touchpoint is valid and reads back from its JSON line unchanged', () => {
    expect(stream.length).toBeGreaterThan(0);
    for (const t of stream) {
      const checked = validateTouchpoint(t);
      if (!checked.ok) throw new Error(`${JSON.stringify(t)}: ${JSON.stringify(checked.rejection)}`);
      const read = parseTouchpoint(JSON.stringify(t));
      expect(read.ok && read.touchpoint).toEqual(t);
    }
  });

  test('ids are unique and deterministic', () => {
    expect(new Set(stream.map((t) => t.id)).size).toBe(stream.length);
    expect(stream.every((t) => /^tp-9-\d+$/.test(t.id))).toBe(true);
  });

  test('every type occurs, in each of its roles', () => {
    expect(new Set(stream.map((t) => t.type))).toEqual(new Set(TOUCHPOINT_TYPES));
    const registered = new Set(stream.flatMap((t) => (t.type === 'registration' ? [t.customerId] : [])));
    const some = (predicate: (t: Touchpoint) => boolean) => expect(stream.some(predicate)).toBe(true);
    some((t) => t.type === 'ad_impression' && t.anonymousId !== undefined && t.customerId === undefined);
    some((t) => t.type === 'ad_impression' && t.customerId !== undefined);
    some((t) => t.type === 'ad_impression' && t.properties.cost !== undefined);
    some((t) => t.type === 'registration' && t.anonymousId !== undefined);
    some((t) => t.type === 'registration' && t.properties.referredBy !== undefined);
    some((t) => t.type === 'registration' && t.properties.channel !== undefined);
    some((t) => t.type === 'purchase' && !registered.has(t.customerId!)); // implicit acquisition
    some((t) => t.type === 'renewal' && t.properties.plan !== undefined);
    some((t) => t.type === 'referral' && t.properties.referredCustomerId !== undefined);
    some((t) => t.type === 'referral' && t.properties.referredCustomerId === undefined);
  });

  test('a referred customer registers after its referrer converted, and after the referral', () => {
    const firstPayment = new Map<string, number>();
    const referralOf = new Map<string, number>();
    for (const t of stream) {
      const at = Date.parse(t.occurredAt);
      if ((t.type === 'purchase' || t.type === 'renewal') && at < (firstPayment.get(t.customerId!) ?? Infinity)) firstPayment.set(t.customerId!, at);
      if (t.type === 'referral' && t.properties.referredCustomerId !== undefined) referralOf.set(t.properties.referredCustomerId, at);
    }
    const referred = stream.filter((t) => t.type === 'registration' && t.properties.referredBy !== undefined);
    expect(referred.length).toBeGreaterThan(0);
    for (const r of referred) {
      if (r.type !== 'registration') continue;
      const at = Date.parse(r.occurredAt);
      expect(firstPayment.get(r.properties.referredBy!)).toBeLessThanOrEqual(referralOf.get(r.customerId!)!);
      expect(referralOf.get(r.customerId!)).toBeLessThanOrEqual(at);
    }
  });

  test('three currencies, one per customer (its visitor impressions included)', () => {
    const currencyOf = new Map<string, Set<string>>();
    const owner = new Map<string, string>();
    for (const t of stream) if (t.type === 'registration' && t.anonymousId !== undefined) owner.set(t.anonymousId, t.customerId);
    for (const t of stream) {
      const money = moneyOf(t);
      if (money === undefined) continue;
      const key = t.customerId ?? owner.get(t.anonymousId!) ?? t.anonymousId!;
      const set = currencyOf.get(key) ?? new Set<string>();
      set.add(money.currency);
      currencyOf.set(key, set);
    }
    expect(new Set([...currencyOf.values()].flatMap((s) => [...s]))).toEqual(new Set(['USD', 'EUR', 'GBP']));
    expect([...currencyOf.entries()].filter(([, s]) => s.size > 1)).toEqual([]);
  });

  test('instants have milliseconds, mostly Z, some with an explicit offset', () => {
    expect(stream.filter((t) => !INSTANT.test(t.occurredAt))).toEqual([]);
    const offsets = stream.filter((t) => !t.occurredAt.endsWith('Z'));
    expect(offsets.length / stream.length).toBeGreaterThan(0.05);
    expect(offsets.length / stream.length).toBeLessThan(0.4);
    const kinds = new Set(offsets.map((t) => t.occurredAt.slice(23)));
    expect(kinds.size).toBeGreaterThan(3);
    expect([...kinds].some((k) => k.startsWith('+'))).toBe(true);
    expect([...kinds].some((k) => k.startsWith('-'))).toBe(true);
  });

  test('about 8 to 15 touchpoints per customer', () => {
    expect(stream.length / customers).toBeGreaterThanOrEqual(8);
    expect(stream.length / customers).toBeLessThanOrEqual(15);
  });

  test('stays inside the period, roughly in event-time order with a little jitter', () => {
    expect(Math.min(...times)).toBeGreaterThanOrEqual(START);
    expect(Math.max(...times)).toBeLessThanOrEqual(END);
    let latest = -Infinity;
    let backwards = 0;
    let worst = 0;
    for (const at of times) {
      if (at < latest) {
        backwards += 1;
        worst = Math.max(worst, latest - at);
      }
      latest = Math.max(latest, at);
    }
    expect(backwards).toBeGreaterThan(0);
    expect(backwards / times.length).toBeLessThan(0.1);
    expect(worst).toBeLessThanOrEqual(12 * 3_600_000);
  });

  test('start and months set the period', () => {
    const from = Date.parse('2023-06-15T12:00:00+02:00');
    const to = Date.parse('2023-09-15T12:00:00+02:00');
    const short = [...generateTouchpoints({ customers: 200, seed: 3, start: '2023-06-15T12:00:00+02:00', months: 3 })].map((t) => Date.parse(t.occurredAt));
    expect(short.length).toBeGreaterThan(200);
    expect(Math.min(...short)).toBeGreaterThanOrEqual(from);
    expect(Math.max(...short)).toBeLessThanOrEqual(to);
    expect(Math.max(...short)).toBeGreaterThan(to - 15 * DAY);
    // A period of hours: still inside it.
    const hours = [...generateTouchpoints({ customers: 300, seed: 3, months: 0.01 })].map((t) => Date.parse(t.occurredAt));
    expect(hours.length).toBeGreaterThan(0);
    expect(Math.max(...hours)).toBeLessThanOrEqual(START + 0.01 * 30.436875 * DAY);
  });

  test('every lifecycle stage, both churn reasons, reactivations and all acquisition channels occur', () => {
    const { inputs } = groupByCustomer(stream);
    const stages = new Set<string>();
    const reasons = new Set<string | null>();
    const channels = new Set<string | null>();
    let reactivated = 0;
    for (let asOf = START + 30 * DAY; asOf <= END; asOf += 30 * DAY) {
      for (const row of projectAsOf(inputs, asOf, DEFAULT_CONFIG).customers) {
        stages.add(row.stage);
        reasons.add(row.churnReason);
        channels.add(row.channel);
        if (row.reactivations > 0) reactivated += 1;
      }
    }
    expect(stages).toEqual(new Set(['reached', 'acquired', 'converted', 'retained', 'loyal', 'at_risk', 'churned']));
    expect(reasons).toEqual(new Set([null, 'inactivity', 'payment_failure']));
    for (const channel of ['search', 'social', 'display', 'email', 'affiliate', 'referral', 'direct']) expect(channels).toContain(channel);
    expect(reactivated).toBeGreaterThan(0);
    // Only the customers, never the anonymous visitors, have rows.
    const rows = projectAsOf(inputs, END, DEFAULT_CONFIG).customers;
    expect(rows.length).toBe(customers);
  });

  // No time limit (speed is the bench's business): a generator that simulated the 62.5 million
  // customers and visitors before its first touchpoint would never get there, running out of memory.
  test('is lazy: the first touchpoints of a population of 50 million come without simulating it whole', () => {
    const first: Touchpoint[] = [];
    for (const t of generateTouchpoints({ customers: 50_000_000, seed: 1 })) {
      first.push(t);
      if (first.length === 1000) break;
    }
    expect(first).toHaveLength(1000);
  });

  test('no customers, no touchpoints; nonsense options are refused', () => {
    expect([...generateTouchpoints({ customers: 0, seed: 1 })]).toEqual([]);
    expect(() => [...generateTouchpoints({ customers: -1, seed: 1 })]).toThrow(RangeError);
    expect(() => [...generateTouchpoints({ customers: 1.5, seed: 1 })]).toThrow(RangeError);
    expect(() => [...generateTouchpoints({ customers: 1, seed: 1, start: 'yesterday' })]).toThrow(RangeError);
    expect(() => [...generateTouchpoints({ customers: 1, seed: 1, months: 0 })]).toThrow(RangeError);
  });
});

describe('isoInstant', () => {
  test('writes what Date writes, and an offset notation of the same instant', () => {
    const samples = [0, 1, 999, -1, Date.parse('2024-02-29T23:59:59.999Z'), Date.parse('1999-12-31T23:00:00Z'), Date.parse('2099-12-31T23:59:59.999Z')];
    for (let i = 0; i < 2000; i += 1) samples.push(START + Math.floor(((i * 7919) % 2000) * 0.5 * DAY + i * 12_345.678));
    for (const ms of samples) {
      expect(isoInstant(ms, 0, 'Z')).toBe(new Date(ms).toISOString());
      for (const [minutes, suffix] of [[120, '+02:00'], [-300, '-05:00'], [330, '+05:30'], [0, '+00:00']] as const) {
        const text = isoInstant(ms, minutes * 60_000, suffix);
        expect(text).toMatch(INSTANT);
        expect(Date.parse(text)).toBe(ms);
      }
    }
  });
});

describe('MinHeap', () => {
  test('gives items in key order', () => {
    const heap = new MinHeap<number>();
    const keys = Array.from({ length: 500 }, (_, i) => (i * 7919) % 503);
    for (const k of keys) heap.push(k, k);
    heap.replaceTopKey(1000);
    const out: number[] = [];
    while (heap.size > 0) {
      const key = heap.peekKey();
      out.push(key);
      heap.pop();
    }
    expect(out).toEqual([...keys.slice().sort((a, b) => a - b).slice(1), 1000]);
    expect(heap.peekKey()).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('withDeliveryNoise', () => {
  const touchpoints = [...generateTouchpoints({ customers: 400, seed: 4 })];
  const snapshot = JSON.stringify(touchpoints);
  const inputLines = touchpoints.map((t) => JSON.stringify(t));
  const inputSet = new Set(inputLines);
  const options = { seed: 4, duplicateRate: 0.1, invalidRate: 0.1, lateRate: 0.1 };
  const lines = [...withDeliveryNoise(touchpoints, options)];
  const verdicts = lines.map((line) => ({ line, result: parseTouchpoint(line) }));
  const rejected = verdicts.flatMap((v) => (v.result.ok ? [] : [{ line: v.line, ...v.result.rejection }]));

  test('is deterministic by seed and leaves its input alone', () => {
    expect([...withDeliveryNoise(touchpoints, options)]).toEqual(lines);
    expect([...withDeliveryNoise(touchpoints, { ...options, seed: 5 })]).not.toEqual(lines);
    expect(JSON.stringify(touchpoints)).toBe(snapshot);
  });

  test('without faults, the lines are the touchpoints in order', () => {
    expect([...withDeliveryNoise(touchpoints, { seed: 1 })]).toEqual(inputLines);
  });

  test('the valid lines are exactly the input lines; every other line is rejected', () => {
    const valid = verdicts.filter((v) => v.result.ok).map((v) => v.line);
    expect(new Set(valid)).toEqual(inputSet);
    for (const v of verdicts) expect(v.result.ok).toBe(inputSet.has(v.line));
    const byId = new Map(touchpoints.map((t) => [t.id, t]));
    for (const v of verdicts) if (v.result.ok) expect(v.result.touchpoint).toEqual(byId.get(v.result.touchpoint.id));
  });

  test('some lines are delivered again, byte for byte', () => {
    const counts = new Map<string, number>();
    for (const line of lines) if (inputSet.has(line)) counts.set(line, (counts.get(line) ?? 0) + 1);
    const again = [...counts.values()].filter((c) => c > 1).length;
    expect(again / touchpoints.length).toBeGreaterThan(0.05);
    expect(again / touchpoints.length).toBeLessThan(0.15);
  });

  test('every advertised kind of invalid line occurs, and each is rejected', () => {
    const paths = (r: (typeof rejected)[number]) => r.issues.map((i) => i.path);
    const kinds: Record<string, (r: (typeof rejected)[number]) => boolean> = {
      'malformed JSON': (r) => r.reason === 'malformed_json',
      'unknown type': (r) => r.reason === 'unknown_type',
      'occurredAt without offset': (r) => r.reason === 'invalid_field' && paths(r).includes('occurredAt') && /"occurredAt":"[^"]*\.\d{3}"/.test(r.line),
      'negative amount': (r) => r.reason === 'invalid_field' && paths(r).some((p) => /^properties\.(amount|cost)\.amountMinor$/.test(p)) && /"amountMinor":-\d+/.test(r.line),
      'lower-case currency': (r) => r.reason === 'invalid_field' && paths(r).some((p) => /^properties\.(amount|cost)\.currency$/.test(p)) && /"currency":"[a-z]{3}"/.test(r.line),
      'missing customerId': (r) => r.reason === 'invalid_field' && paths(r).includes('customerId') && !r.line.includes('"customerId"'),
      'oversized payload': (r) => r.reason === 'payload_too_large' && Buffer.byteLength(r.line) > MAX_TOUCHPOINT_BYTES,
    };
    for (const [kind, matches] of Object.entries(kinds)) {
      if (!rejected.some(matches)) throw new Error(`no ${kind} line among ${rejected.length} rejected lines`);
    }
    expect(rejected.filter((r) => !Object.values(kinds).some((matches) => matches(r)))).toEqual([]);
    expect(rejected.length / touchpoints.length).toBeGreaterThan(0.05);
    expect(rejected.length / touchpoints.length).toBeLessThan(0.15);
  });

  test('some lines arrive late: after lines generated hundreds of positions after them', () => {
    const position = new Map(inputLines.map((line, i) => [line, i]));
    let furthest = -1;
    let late = 0;
    for (const line of lines) {
      const p = position.get(line);
      if (p === undefined) continue;
      if (p < furthest - 100) late += 1;
      furthest = Math.max(furthest, p);
    }
    expect(late).toBeGreaterThan(0);
  });

  test('rates outside [0, 1] are refused', () => {
    expect(() => [...withDeliveryNoise(touchpoints, { seed: 1, lateRate: 2 })]).toThrow(RangeError);
  });
});
