import { DEFAULT_CONFIG, type Touchpoint } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { openLifecycleStore, projectBatch, replay } from '@lifecycle/projection';
import { churnRatesAtWatermark, rollingChurnRate } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { oracleRollingChurnRate } from '../../../test/oracle/churn-rate.js';

const DAY = 86_400_000;
const at = (iso: string) => Date.parse(iso);
const buy = (id: string, customerId: string, occurredAt: string, type: 'purchase' | 'renewal' = 'purchase'): Touchpoint =>
  type === 'purchase'
    ? { id, type, occurredAt, customerId, properties: { orderId: `o-${id}`, amount: { amountMinor: 100, currency: 'USD' } } }
    : { id, type, occurredAt, customerId, properties: { subscriptionId: `s-${customerId}`, amount: { amountMinor: 100, currency: 'USD' } } };

// SPEC §4: rolling churn rate over W ending at T = customers with churnedAt ∈ (T − W, T] ÷
// customers converted and not churned at T − W. Worked out by hand (inactivity 60 days):
//   a pays 01-01              → churns 03-01
//   b pays 01-15              → churns 03-15
//   c pays 02-01, renews 03-01 → deadline 04-30
//   e pays 03-10              → deadline 05-09
//   d registers 03-20 (never converts): the watermark T = 03-20.
// 30d, from 02-19: base a, b, c (e converts later)  — churned a, b → 2/3
//  7d, from 03-13: base b, c, e (a churned 03-01)   — churned b    → 1/3
//  1d, from 03-19: base c, e (b churned 03-15)       — nobody       → 0
const scenario: Touchpoint[] = [
  buy('a1', 'a', '2024-01-01T00:00:00Z'),
  buy('b1', 'b', '2024-01-15T00:00:00Z'),
  buy('c1', 'c', '2024-02-01T00:00:00Z'),
  buy('c2', 'c', '2024-03-01T00:00:00Z', 'renewal'),
  buy('e1', 'e', '2024-03-10T00:00:00Z'),
  { id: 'd1', type: 'registration', occurredAt: '2024-03-20T00:00:00Z', customerId: 'd', properties: {} },
];

describe('rolling churn rate read model', () => {
  let db: SqlDatabase;
  beforeEach(async () => {
    db = await openLifecycleStore({ dataDir: undefined as unknown as string });
  });
  afterEach(() => db.close());

  test('a small population worked out by hand: windows at the watermark, the ends of the window, a late payment that undoes a churn', async () => {
    await db.transaction((tx) => projectBatch(tx, scenario, DEFAULT_CONFIG));
    expect(await churnRatesAtWatermark(db)).toEqual({ '1d': 0, '7d': 1 / 3, '30d': 2 / 3 });
    // A churn at T counts; a churn at T − W is neither in the window nor in the base.
    expect(await rollingChurnRate(db, at('2024-03-15T00:00:00Z'), DAY)).toBe(1 / 3); // base b, c, e; b churns at T
    expect(await rollingChurnRate(db, at('2024-03-16T00:00:00Z'), DAY)).toBe(0); // base c, e; b churned at T − W
    expect(await rollingChurnRate(db, at('2024-03-01T00:00:00Z'), DAY)).toBe(1 / 3); // base a, b, c; a churns at T
    expect(await rollingChurnRate(db, at('2024-01-01T00:00:00Z'), DAY)).toBeNull(); // nobody converted by 12-31

    // b's renewal of 03-10 arrives late: b never churned (deadline 05-09).
    //   30d: base a, b, c — churned a → 1/3;  7d: base b, c, e — nobody → 0;  1d: base b, c, e → 0
    await db.transaction((tx) => projectBatch(tx, [buy('b2', 'b', '2024-03-10T00:00:00Z', 'renewal')], DEFAULT_CONFIG));
    const corrected = { '1d': 0, '7d': 0, '30d': 1 / 3 };
    expect(await churnRatesAtWatermark(db)).toEqual(corrected);
    expect(await rollingChurnRate(db, at('2024-03-16T00:00:00Z'), DAY)).toBe(0); // base b, c, e
    await replay(db, DEFAULT_CONFIG);
    expect(await churnRatesAtWatermark(db)).toEqual(corrected);
  });

  test('equals the independent oracle on a generated population, after out-of-order batches and after replay', async () => {
    const touchpoints = [...generateTouchpoints({ customers: 300, seed: 5, months: 14 })];
    // Out of order: every third touchpoint arrives in a last, late batch.
    const onTime = touchpoints.filter((_, i) => i % 3 !== 0);
    const late = touchpoints.filter((_, i) => i % 3 === 0);
    for (let i = 0; i < onTime.length; i += 700) await db.transaction((tx) => projectBatch(tx, onTime.slice(i, i + 700), DEFAULT_CONFIG));
    await db.transaction((tx) => projectBatch(tx, late, DEFAULT_CONFIG));

    const latest = Math.max(...touchpoints.map((t) => Date.parse(t.occurredAt)));
    const expected: Record<string, number> = {};
    for (const [window, days] of [['1d', 1], ['7d', 7], ['30d', 30]] as const) {
      const rate = oracleRollingChurnRate(touchpoints, DEFAULT_CONFIG, latest, days * DAY);
      if (rate !== null) expected[window] = rate;
    }
    // The data must exercise the formula: churns inside the longest window and a base.
    expect(expected['30d']).toBeGreaterThan(0);

    expect(await churnRatesAtWatermark(db)).toEqual(expected);
    for (const [asOf, days] of [[latest, 90], [latest, 180], [latest - 100 * DAY, 30], [latest - 200 * DAY, 60]] as const) {
      expect([asOf, days, await rollingChurnRate(db, asOf, days * DAY)]).toEqual([asOf, days, oracleRollingChurnRate(touchpoints, DEFAULT_CONFIG, asOf, days * DAY)]);
    }
    await replay(db, DEFAULT_CONFIG);
    expect(await churnRatesAtWatermark(db)).toEqual(expected);
  });

  test('no converted customer at the window start: no rate rather than a rate of 0', async () => {
    expect(await churnRatesAtWatermark(db)).toEqual({});
    await db.transaction((tx) =>
      projectBatch(tx, [{ id: 'r', type: 'registration', occurredAt: '2024-01-02T00:00:00Z', customerId: 'a', properties: {} }], DEFAULT_CONFIG),
    );
    expect(await rollingChurnRate(db, Date.parse('2024-01-02T00:00:00Z'), DAY)).toBeNull();
    expect(await churnRatesAtWatermark(db)).toEqual({});
  });
});
