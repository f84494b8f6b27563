import { CHURN_REASONS, REJECTION_REASONS, TOUCHPOINT_TYPES, type LifecycleEvent, type Touchpoint } from '@lifecycle/contracts';
import { LifecycleMetrics, createRegistry } from '@lifecycle/observability';
import { parseExposition } from '../../../test/support/exposition.js';

const registration = (id: string): Touchpoint => ({ id, type: 'registration', occurredAt: '2025-01-01T00:00:00Z', customerId: id, properties: {} });
const churn: LifecycleEvent = {
  type: 'CustomerChurned',
  at: '2025-03-01T00:00:00Z',
  from: 'converted',
  to: 'churned',
  reason: 'payment_failure',
  cause: { kind: 'deadline', deadline: 'payment_grace', after: 'f1' },
};
const reactivation: LifecycleEvent = {
  type: 'CustomerReactivated',
  at: '2025-04-01T00:00:00Z',
  from: 'churned',
  to: 'retained',
  cause: { kind: 'touchpoint', touchpointId: 'r1', touchpointType: 'renewal' },
};


const sameLabels = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/** The value of the series with exactly this name and label set (a series with other or extra labels is not it). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const found = parseExposition(text).filter((s) => s.name === name && sameLabels(s.labels, labels));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} appears ${found.length} times`);
  return found[0]?.value;
}

const S = { service: 'test' };

describe('lifecycle metrics', () => {
  test('the sample helper matches a whole series: name and exact label set', async () => {
    const registry = createRegistry('test');
    new LifecycleMetrics(registry).recordRejection('malformed_json');
    const text = await registry.metrics();
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'unknown', outcome: 'rejected', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'unknown', ...S })).toBeUndefined(); // the series has one more label
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'unknown', outcome: 'rejected', ...S, instance: 'x' })).toBeUndefined();
    expect(sample(text, 'lifecycle_touchpoints', { type: 'unknown', outcome: 'rejected', ...S })).toBeUndefined(); // a prefix of the name
  });

  test('churns and rejections are exported at 0 for every reason before the first one, so increase() sees the first wave', async () => {
    const registry = createRegistry('test');
    new LifecycleMetrics(registry);
    const text = await registry.metrics();
    for (const reason of CHURN_REASONS) expect(sample(text, 'lifecycle_churned_customers_total', { reason, ...S })).toBe(0);
    for (const reason of REJECTION_REASONS) expect(sample(text, 'lifecycle_touchpoints_rejected_total', { reason, ...S })).toBe(0);
  });

  test('a batch counts each outcome and each appended stage change once', async () => {
    const registry = createRegistry('test');
    const metrics = new LifecycleMetrics(registry);
    metrics.recordBatch({ accepted: [registration('a'), registration('b')], duplicates: [registration('a')], conflicts: [registration('c')], stageChanges: [churn] }, 0.2);
    metrics.recordRejection('malformed_json');
    const text = await registry.metrics();
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'registration', outcome: 'accepted', ...S })).toBe(2);
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'registration', outcome: 'duplicate', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'registration', outcome: 'rejected', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'unknown', outcome: 'rejected', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_rejected_total', { reason: 'id_conflict', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_rejected_total', { reason: 'malformed_json', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_stage_transitions_total', { from: 'converted', to: 'churned', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_churned_customers_total', { reason: 'payment_failure', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_churned_customers_total', { reason: 'inactivity', ...S })).toBe(0);
    expect(sample(text, 'lifecycle_reactivated_customers_total', S)).toBe(0); // a churn is no reactivation
    expect(sample(text, 'lifecycle_batch_duration_seconds_count', S)).toBe(1);
  });

  test('a touchpoint type outside the six is counted as type="unknown", never under its own value', async () => {
    const registry = createRegistry('test');
    const metrics = new LifecycleMetrics(registry);
    metrics.recordRejection('unknown_type', 'signup');
    metrics.recordRejection('unknown_type', 'x'.repeat(200));
    metrics.recordRejection('invalid_field', 'purchase');
    const text = await registry.metrics();
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'unknown', outcome: 'rejected', ...S })).toBe(2);
    expect(sample(text, 'lifecycle_touchpoints_total', { type: 'purchase', outcome: 'rejected', ...S })).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_rejected_total', { reason: 'unknown_type', ...S })).toBe(2);
    const types = parseExposition(text).filter((s) => s.name === 'lifecycle_touchpoints_total').map((s) => s.labels['type']);
    expect(types.filter((t) => t !== 'unknown' && !(TOUCHPOINT_TYPES as readonly (string | undefined)[]).includes(t))).toEqual([]);
  });

  test('a reactivation counts once in lifecycle_reactivated_customers_total and as a stage transition, not as a churn', async () => {
    const registry = createRegistry('test');
    const metrics = new LifecycleMetrics(registry);
    expect(sample(await registry.metrics(), 'lifecycle_reactivated_customers_total', S)).toBe(0);
    metrics.recordBatch({ accepted: [], duplicates: [], conflicts: [], stageChanges: [churn, reactivation] });
    metrics.recordBatch({ accepted: [], duplicates: [], conflicts: [], stageChanges: [reactivation] });
    const text = await registry.metrics();
    expect(sample(text, 'lifecycle_reactivated_customers_total', S)).toBe(2);
    expect(sample(text, 'lifecycle_stage_transitions_total', { from: 'churned', to: 'retained', ...S })).toBe(2);
    expect(sample(text, 'lifecycle_churned_customers_total', { reason: 'payment_failure', ...S })).toBe(1);
    expect(parseExposition(text).filter((s) => s.name === 'lifecycle_reactivated_customers_total')).toHaveLength(1); // no labels but service
  });

  test('a store error counts under its store label only', async () => {
    const registry = createRegistry('test');
    const metrics = new LifecycleMetrics(registry);
    metrics.storeErrors.inc({ store: 'postgres' });
    metrics.storeErrors.inc({ store: 'postgres' });
    metrics.storeErrors.inc({ store: 'embedded' });
    const text = await registry.metrics();
    expect(sample(text, 'lifecycle_store_errors_total', { store: 'postgres', ...S })).toBe(2);
    expect(sample(text, 'lifecycle_store_errors_total', { store: 'embedded', ...S })).toBe(1);
    expect(parseExposition(text).filter((s) => s.name === 'lifecycle_store_errors_total').map((s) => s.labels['store']).sort()).toEqual(['embedded', 'postgres']);
  });

  test('gauges are read from their sources at scrape time; a failing source drops its series, not the scrape', async () => {
    const registry = createRegistry('test');
    let lagFails = false;
    new LifecycleMetrics(registry, {
      customersByStage: async () => ({ churned: 3, loyal: 5 }),
      churnRates: async () => ({ '7d': 0.25 }),
      consumerLag: async () => {
        if (lagFails) throw new Error('This is not the correct coordinator for this group');
        return [{ topic: 'touchpoints', partition: 2, messages: 40 }];
      },
    });
    let text = await registry.metrics();
    expect(sample(text, 'lifecycle_customers', { stage: 'loyal', ...S })).toBe(5);
    expect(sample(text, 'lifecycle_churn_rate', { window: '7d', ...S })).toBe(0.25);
    expect(sample(text, 'lifecycle_consumer_lag_messages', { topic: 'touchpoints', partition: '2', ...S })).toBe(40);
    lagFails = true;
    text = await registry.metrics();
    expect(sample(text, 'lifecycle_consumer_lag_messages', { topic: 'touchpoints', partition: '2', ...S })).toBeUndefined();
    expect(sample(text, 'lifecycle_customers', { stage: 'churned', ...S })).toBe(3);
  });
});
