import { MAX_TOUCHPOINT_BYTES, type Money, type Touchpoint } from '@lifecycle/contracts';
import { MinHeap } from './min-heap.js';
import { Random } from './random.js';

export interface NoiseOptions {
  seed: number;
  /** Share of touchpoints delivered a second time (the same line again), a few or many lines later. Default 0. */
  duplicateRate?: number | undefined;
  /** Share of touchpoints followed by an invalid line (one of the faults below). Default 0. */
  invalidRate?: number | undefined;
  /** Share of touchpoints held back and delivered hundreds to thousands of lines later, some only at the end. Default 0. */
  lateRate?: number | undefined;
}

type Json = Record<string, unknown>;

/** A copy of `t` as a plain JSON object, properties copied too, so a fault never touches the input. */
const copy = (t: Touchpoint, suffix: string): Json => ({ ...t, id: `${t.id}-${suffix}`, properties: { ...t.properties } });

/**
 * Applies `change` to a copy of the money the touchpoint carries (purchase and renewal amount,
 * payment failure amount, impression cost); a touchpoint without money becomes a purchase
 * whose amount goes wrong.
 */
function withBadMoney(t: Touchpoint, suffix: string, change: (money: Money) => Money): string {
  const json = copy(t, suffix);
  const properties = json.properties as Json;
  const key = 'amount' in properties && properties.amount !== undefined ? 'amount' : 'cost' in properties && properties.cost !== undefined ? 'cost' : undefined;
  if (key !== undefined) properties[key] = change(properties[key] as Money);
  else {
    json.type = 'purchase';
    json.customerId = t.customerId ?? `c-${t.anonymousId ?? 'unknown'}`;
    json.properties = { orderId: `o-${t.id}`, amount: change({ amountMinor: 1999, currency: 'EUR' }) };
  }
  return JSON.stringify(json);
}

/**
 * The faults producers make, each turning a valid touchpoint into a line the contract rejects.
 * Faulty lines get an id of their own, so they never collide with the valid touchpoint.
 */
const FAULTS: readonly ((t: Touchpoint, line: string, random: Random) => string)[] = [
  // Malformed JSON: the line cut off (a proper prefix of a JSON object is never valid JSON).
  (_t, line, random) => line.slice(0, random.int(1, line.length - 1)),
  // A type of schema version 1 does not know.
  (t, _line, random) => JSON.stringify({ ...copy(t, 'type'), type: random.pick(['refund', 'page_view', 'Purchase', 'subscription_renewed']) }),
  // occurredAt in local time without an offset: which instant it means is unknown.
  (t) => JSON.stringify({ ...copy(t, 'offset'), occurredAt: t.occurredAt.replace(/(?:Z|[+-]\d\d:?\d\d)$/i, '') }),
  // A negative amount (a refund sent as a payment).
  (t) => withBadMoney(t, 'negative', (money) => ({ ...money, amountMinor: -Math.max(1, money.amountMinor) })),
  // A lower-case currency code.
  (t) => withBadMoney(t, 'currency', (money) => ({ ...money, currency: money.currency.toLowerCase() })),
  // No customerId (for an impression: no anonymousId either).
  (t) => {
    const json = copy(t, 'customer');
    delete json.customerId;
    if (t.type === 'ad_impression') delete json.anonymousId;
    return JSON.stringify(json);
  },
  // An oversized payload: otherwise valid (unknown extra fields are kept), but over the byte limit.
  (t, _line, random) =>
    JSON.stringify({ ...copy(t, 'oversized'), properties: { ...t.properties, debugDump: 'x'.repeat(MAX_TOUCHPOINT_BYTES + random.int(1, 4096)) } }),
];

function rate(name: string, value: number | undefined): number {
  const r = value ?? 0;
  if (!(r >= 0 && r <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${value}`);
  return r;
}

/**
 * NDJSON lines of `touchpoints` with realistic delivery faults: exact redeliveries (the same
 * line again, a few or many lines later), invalid lines (malformed JSON, unknown type, missing
 * offset in occurredAt, negative amount, lower-case currency, missing customerId, oversized
 * payload > 64 KiB) and late arrivals (a line moved hundreds to thousands of lines later, or to
 * the very end). The valid lines are exactly the input lines, some of them more than once.
 * Lazy: memory holds only the lines currently held back.
 */
export function* withDeliveryNoise(touchpoints: Iterable<Touchpoint>, options: NoiseOptions): Generator<string> {
  const duplicateRate = rate('duplicateRate', options.duplicateRate);
  const invalidRate = rate('invalidRate', options.invalidRate);
  const lateRate = rate('lateRate', options.lateRate);
  if (!Number.isFinite(options.seed)) throw new RangeError(`seed must be a finite number, got ${options.seed}`);
  const random = new Random(options.seed + 0x5eed);
  // Held-back lines by the position (count of lines delivered so far) at which they are due.
  const held = new MinHeap<string>();
  let position = 0;
  for (const touchpoint of touchpoints) {
    const line = JSON.stringify(touchpoint);
    if (lateRate > 0 && random.chance(lateRate)) {
      held.push(random.chance(0.1) ? Number.POSITIVE_INFINITY : position + random.int(100, 5000), line);
    } else {
      yield line;
      position += 1;
    }
    if (duplicateRate > 0 && random.chance(duplicateRate)) {
      // A retry right away, or a redelivery after a consumer restart, much later.
      held.push(position + (random.chance(0.5) ? random.int(0, 3) : random.int(10, 2000)), line);
    }
    if (invalidRate > 0 && random.chance(invalidRate)) {
      yield random.pick(FAULTS)(touchpoint, line, random);
      position += 1;
    }
    while (held.peekKey() <= position) {
      yield held.pop()!;
      position += 1;
    }
  }
  while (held.size > 0) yield held.pop()!;
}
