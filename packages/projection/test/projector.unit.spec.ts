import { DEFAULT_CONFIG, type Touchpoint } from '@lifecycle/contracts';
import { groupByCustomer, projectAsOf } from '@lifecycle/domain';
import { advanceWatermark, exportProjection, openLifecycleStore, projectBatch, readCustomerStream, replay } from '@lifecycle/projection';
import { sqlEventStore } from '@lifecycle/eventstore';
import type { SqlDatabase } from '@lifecycle/sql';

const DAY = 86_400_000;
const money = (amountMinor: number) => ({ amountMinor, currency: 'USD' });
const history: Touchpoint[] = [
  { id: 'i1', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', anonymousId: 'v1', properties: { channel: 'social' } },
  { id: 'r1', type: 'registration', occurredAt: '2024-01-02T00:00:00Z', customerId: 'a', anonymousId: 'v1', properties: {} },
  { id: 'p1', type: 'purchase', occurredAt: '2024-01-03T00:00:00Z', customerId: 'a', properties: { orderId: 'o1', amount: money(1000) } },
  { id: 'r2', type: 'registration', occurredAt: '2024-01-05T00:00:00Z', customerId: 'b', properties: { channel: 'email' } },
  { id: 'p2', type: 'purchase', occurredAt: '2024-01-06T00:00:00Z', customerId: 'b', properties: { orderId: 'o2', amount: money(500) } },
  { id: 'f1', type: 'payment_failure', occurredAt: '2024-02-01T00:00:00Z', customerId: 'b', properties: {} },
  { id: 'p3', type: 'renewal', occurredAt: '2024-02-10T00:00:00Z', customerId: 'b', properties: { subscriptionId: 's', amount: money(500) } },
  { id: 'x1', type: 'referral', occurredAt: '2024-06-02T00:00:00Z', customerId: 'c', properties: {} },
];

const expected = () => {
  const { inputs, latest } = groupByCustomer(history);
  return projectAsOf(inputs, latest, DEFAULT_CONFIG);
};

describe('projector on the embedded store', () => {
  let db: SqlDatabase;
  beforeEach(async () => {
    db = await openLifecycleStore({ dataDir: undefined as unknown as string });
  });
  afterEach(() => db.close());

  test('batches in any order give the read models of the whole set', async () => {
    for (const batch of [history.slice(4), history.slice(0, 4).reverse(), history.slice(2, 6)]) {
      await db.transaction((tx) => projectBatch(tx, batch, DEFAULT_CONFIG));
    }
    expect(await exportProjection(db, DEFAULT_CONFIG)).toEqual(expected());
  });

  test('redeliveries are duplicates, other content under a known id is a conflict', async () => {
    await db.transaction((tx) => projectBatch(tx, history, DEFAULT_CONFIG));
    const changed = { ...history[2]!, occurredAt: '2024-01-04T00:00:00Z' } as Touchpoint;
    const outcome = await db.transaction((tx) => projectBatch(tx, [history[1]!, changed], DEFAULT_CONFIG));
    expect(outcome.accepted).toHaveLength(0);
    expect(outcome.duplicates.map((t) => t.id)).toEqual(['r1']);
    expect(outcome.conflicts.map((t) => t.id)).toEqual(['p1']);
  });

  test('a late touchpoint appends a correction to the stream, and replay rebuilds the same read models', async () => {
    await db.transaction((tx) => projectBatch(tx, history.filter((t) => t.id !== 'p3'), DEFAULT_CONFIG));
    await db.transaction((tx) => projectBatch(tx, [history[7]!], DEFAULT_CONFIG)); // time passes: b churns
    await db.transaction((tx) => projectBatch(tx, [history[6]!], DEFAULT_CONFIG)); // the renewal arrives late
    const stream = (await sqlEventStore(db).readStreams(['customer-b'])).get('customer-b')!;
    const types = stream.map((e) => e.type);
    expect(types).toContain('LifecycleHistoryCorrected');
    expect(readCustomerStream(stream).lifecycle.map((e) => [e.event.type, e.event.at.slice(0, 10)])).toEqual([
      ['CustomerAcquired', '2024-01-05'],
      ['CustomerConverted', '2024-01-06'],
      ['CustomerAtRisk', '2024-02-01'],
      ['CustomerRecovered', '2024-02-10'],
      ['CustomerChurned', '2024-04-10'],
    ]);
    expect(types.filter((t) => t === 'CustomerChurned')).toHaveLength(2); // the retracted one stays in the stream
    expect(await exportProjection(db, DEFAULT_CONFIG)).toEqual(expected());
    await replay(db, DEFAULT_CONFIG);
    expect(await exportProjection(db, DEFAULT_CONFIG)).toEqual(expected());
  });

  test('the wall clock passing records the churns whose deadlines it passed, once', async () => {
    const known = history.filter((t) => t.id !== 'x1');
    await db.transaction((tx) => projectBatch(tx, known, DEFAULT_CONFIG));
    const now = Date.parse('2024-06-01T00:00:00Z');
    const first = await db.transaction((tx) => advanceWatermark(tx, now, DEFAULT_CONFIG));
    expect(first.stageChanges.filter((e) => e.type === 'CustomerChurned').map((e) => e.at.slice(0, 10)).sort()).toEqual(['2024-03-03', '2024-04-10']);
    const { inputs } = groupByCustomer(known);
    expect(await exportProjection(db, DEFAULT_CONFIG)).toEqual(projectAsOf(inputs, now, DEFAULT_CONFIG));

    // Again, or to an earlier instant: nothing new, nothing doubled in the streams.
    expect((await db.transaction((tx) => advanceWatermark(tx, now, DEFAULT_CONFIG))).stageChanges).toEqual([]);
    expect((await db.transaction((tx) => advanceWatermark(tx, now - DAY, DEFAULT_CONFIG))).stageChanges).toEqual([]);
    const streams = await sqlEventStore(db).readStreams(['customer-a', 'customer-b']);
    for (const stream of streams.values()) expect(stream.filter((e) => e.type === 'CustomerChurned')).toHaveLength(1);
  });
});
