import { DEFAULT_CONFIG, type LifecycleEvent } from '@lifecycle/contracts';
import { DAY_MS, foldCustomer, groupByCustomer } from '@lifecycle/domain';
import { generateTouchpoints } from '@lifecycle/generator';
import { openLifecycleStore, projectBatch, replay } from '@lifecycle/projection';
import { churnRatesAtWatermark, rollingChurnRate } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';

// SPEC §4 rolling churn rate, recomputed the plain way: fold every customer as of T and read
// its timeline; the read model is maintained batch by batch, with late touchpoints rewriting
// histories, so the two only agree if every re-projection replaced the recorded history.
function expectedRate(timelines: readonly (readonly LifecycleEvent[])[], asOf: number, windowMs: number): number | null {
  const start = asOf - windowMs;
  let churned = 0;
  let base = 0;
  for (const timeline of timelines) {
    if (timeline.some((e) => e.to === 'churned' && Date.parse(e.at) > start && Date.parse(e.at) <= asOf)) churned += 1;
    const before = timeline.filter((e) => Date.parse(e.at) <= start).at(-1);
    if (before && ['converted', 'retained', 'loyal', 'at_risk'].includes(before.to)) base += 1;
  }
  return base === 0 ? null : churned / base;
}

describe('rolling churn rate read model', () => {
  let db: SqlDatabase;
  beforeEach(async () => {
    db = await openLifecycleStore({ dataDir: undefined as unknown as string });
  });
  afterEach(() => db.close());

  test('equals the rate recomputed from every customer’s timeline, after out-of-order batches and after replay', async () => {
    const touchpoints = [...generateTouchpoints({ customers: 300, seed: 5, months: 14 })];
    // Out of order: every third touchpoint arrives in a last, late batch.
    const onTime = touchpoints.filter((_, i) => i % 3 !== 0);
    const late = touchpoints.filter((_, i) => i % 3 === 0);
    for (let i = 0; i < onTime.length; i += 700) await db.transaction((tx) => projectBatch(tx, onTime.slice(i, i + 700), DEFAULT_CONFIG));
    await db.transaction((tx) => projectBatch(tx, late, DEFAULT_CONFIG));

    const { inputs, latest } = groupByCustomer(touchpoints);
    const timelines = inputs.map((input) => foldCustomer(input, latest, DEFAULT_CONFIG).timeline);
    const windows = { '1d': DAY_MS, '7d': 7 * DAY_MS, '30d': 30 * DAY_MS };
    const expected: Record<string, number> = {};
    for (const [window, ms] of Object.entries(windows)) {
      const rate = expectedRate(timelines, latest, ms);
      if (rate !== null) expected[window] = rate;
    }
    // The data must exercise the formula: churns inside the longest window and a base.
    expect(expected['30d']).toBeGreaterThan(0);

    expect(await churnRatesAtWatermark(db)).toEqual(expected);
    for (const days of [90, 180]) {
      expect(await rollingChurnRate(db, latest, days * DAY_MS)).toBe(expectedRate(timelines, latest, days * DAY_MS));
    }
    await replay(db, DEFAULT_CONFIG);
    expect(await churnRatesAtWatermark(db)).toEqual(expected);
  });

  test('no converted customer at the window start: no rate rather than a rate of 0', async () => {
    expect(await churnRatesAtWatermark(db)).toEqual({});
    await db.transaction((tx) =>
      projectBatch(tx, [{ id: 'r', type: 'registration', occurredAt: '2024-01-02T00:00:00Z', customerId: 'a', properties: {} }], DEFAULT_CONFIG),
    );
    expect(await rollingChurnRate(db, Date.parse('2024-01-02T00:00:00Z'), DAY_MS)).toBeNull();
    expect(await churnRatesAtWatermark(db)).toEqual({});
  });
});
