import { CHURN_REASONS, REJECTION_REASONS, type LifecycleEvent, type Touchpoint } from '@lifecycle/contracts';
import { LifecycleMetrics, createRegistry } from '@lifecycle/observability';

const registration = (id: string): Touchpoint => ({ id, type: 'registration', occurredAt: '2025-01-01T00:00:00Z', customerId: id, properties: {} });
const churn: LifecycleEvent = {
  type: 'CustomerChurned',
  at: '2025-03-01T00:00:00Z',
  from: 'converted',
  to: 'churned',
  reason: 'payment_failure',
  cause: { kind: 'deadline', deadline: 'payment_grace', after: 'f1' },
};
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(series + ' ') || l.startsWith(series.replace(/}$/, ',')));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
};

describe('lifecycle metrics', () => {
  test('churns and rejections are exported at 0 for every reason before the first one, so increase() sees the first wave', async () => {
    const registry = createRegistry('test');
    new LifecycleMetrics(registry);
    const text = await registry.metrics();
    for (const reason of CHURN_REASONS) expect(sample(text, `lifecycle_churned_customers_total{reason="${reason}",service="test"}`)).toBe(0);
    for (const reason of REJECTION_REASONS) expect(sample(text, `lifecycle_touchpoints_rejected_total{reason="${reason}",service="test"}`)).toBe(0);
  });

  test('a batch counts each outcome and each appended stage change once', async () => {
    const registry = createRegistry('test');
    const metrics = new LifecycleMetrics(registry);
    metrics.recordBatch({ accepted: [registration('a'), registration('b')], duplicates: [registration('a')], conflicts: [registration('c')], stageChanges: [churn] }, 0.2);
    metrics.recordRejection('malformed_json');
    const text = await registry.metrics();
    expect(sample(text, 'lifecycle_touchpoints_total{type="registration",outcome="accepted",service="test"}')).toBe(2);
    expect(sample(text, 'lifecycle_touchpoints_total{type="registration",outcome="duplicate",service="test"}')).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_total{type="registration",outcome="rejected",service="test"}')).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_total{type="unknown",outcome="rejected",service="test"}')).toBe(1);
    expect(sample(text, 'lifecycle_touchpoints_rejected_total{reason="id_conflict",service="test"}')).toBe(1);
    expect(sample(text, 'lifecycle_stage_transitions_total{from="converted",to="churned",service="test"}')).toBe(1);
    expect(sample(text, 'lifecycle_churned_customers_total{reason="payment_failure",service="test"}')).toBe(1);
    expect(sample(text, 'lifecycle_batch_duration_seconds_count{service="test"}')).toBe(1);
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
    expect(sample(text, 'lifecycle_customers{stage="loyal",service="test"}')).toBe(5);
    expect(sample(text, 'lifecycle_churn_rate{window="7d",service="test"}')).toBe(0.25);
    expect(sample(text, 'lifecycle_consumer_lag_messages{topic="touchpoints",partition="2",service="test"}')).toBe(40);
    lagFails = true;
    text = await registry.metrics();
    expect(sample(text, 'lifecycle_consumer_lag_messages{topic="touchpoints",partition="2",service="test"}')).toBeUndefined();
    expect(sample(text, 'lifecycle_customers{stage="churned",service="test"}')).toBe(3);
  });
});
