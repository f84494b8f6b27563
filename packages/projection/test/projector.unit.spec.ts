import { DEFAULT_CONFIG, type CohortRow, type CustomerRow, type Touchpoint } from '@lifecycle/contracts';
import { advanceWatermark, exportCohorts, exportProjection, openLifecycleStore, projectBatch, readCustomerStream, replay } from '@lifecycle/projection';
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

// Expected read models, worked out by hand from SPEC §3–§4 with the default settings (grace 14
// days, inactivity 60 days, monthly UTC cohorts); never from the product's own fold.
//   a: registered 01-02 without channel, so the channel is that of its visitor v1's impression
//      (social); paid 01-03, nothing after: churns at 01-03 + 60 days = 03-03 (inactivity).
//   b: registered 01-05 by email, paid 01-06; failure 02-01, recovered by the renewal 02-10
//      (within 02-01 + 14 days); then nothing: churns at 02-10 + 60 days = 04-10 (inactivity).
//   c: only a referral: a customer row, reached, not acquired (no cohort, no channel).
const customerA: CustomerRow = {
  customerId: 'a',
  stage: 'churned',
  acquiredAt: '2024-01-02T00:00:00.000Z',
  cohort: '2024-01',
  channel: 'social',
  convertedAt: '2024-01-03T00:00:00.000Z',
  churnedAt: '2024-03-03T00:00:00.000Z',
  churnReason: 'inactivity',
  payments: 1,
  reactivations: 0,
  referrals: 0,
  revenue: { USD: 1000 },
};
const customerB: CustomerRow = {
  customerId: 'b',
  stage: 'churned',
  acquiredAt: '2024-01-05T00:00:00.000Z',
  cohort: '2024-01',
  channel: 'email',
  convertedAt: '2024-01-06T00:00:00.000Z',
  churnedAt: '2024-04-10T00:00:00.000Z',
  churnReason: 'inactivity',
  payments: 2,
  reactivations: 0,
  referrals: 0,
  revenue: { USD: 1000 },
};
const customerC: CustomerRow = {
  customerId: 'c',
  stage: 'reached',
  acquiredAt: null,
  cohort: null,
  channel: null,
  convertedAt: null,
  churnedAt: null,
  churnReason: null,
  payments: 0,
  reactivations: 0,
  referrals: 1,
  revenue: {},
};
const cell = (periodIndex: number, period: string, fields: Partial<CohortRow> = {}): CohortRow => ({
  cohort: '2024-01',
  periodIndex,
  period,
  size: 2,
  converted: 2,
  active: 0,
  churned: 0,
  reactivated: 0,
  revenue: {},
  ...fields,
});
/** Cohort 2024-01 (a and b) from January to June: both converted in January. */
const cohorts: CohortRow[] = [
  cell(0, '2024-01', { active: 2, revenue: { USD: 1500 } }),
  cell(1, '2024-02', { active: 1, revenue: { USD: 500 } }),
  cell(2, '2024-03', { churned: 1 }),
  cell(3, '2024-04', { churned: 1 }),
  cell(4, '2024-05'),
  cell(5, '2024-06'),
];
/** As of the latest touchpoint, c's referral on 2024-06-02. */
const expected = () => ({ asOf: Date.parse('2024-06-02T00:00:00Z'), customers: [customerA, customerB, customerC], cohorts });

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
    // Without the renewal, b's failure of 02-01 is not recovered: churned at 02-01 + 14 days, before
    // its inactivity deadline (01-06 + 60 days = 03-06).
    const beforeRenewal = { ...customerB, churnedAt: '2024-02-15T00:00:00.000Z', churnReason: 'payment_failure', payments: 1, revenue: { USD: 500 } };
    expect((await exportProjection(db, DEFAULT_CONFIG)).customers).toEqual([customerA, beforeRenewal, customerC]);
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
    // As of 06-01 (June has started), without c's referral.
    expect(await exportProjection(db, DEFAULT_CONFIG)).toEqual({ asOf: now, customers: [customerA, customerB], cohorts });

    // Again, or to an earlier instant: nothing new, nothing doubled in the streams.
    expect((await db.transaction((tx) => advanceWatermark(tx, now, DEFAULT_CONFIG))).stageChanges).toEqual([]);
    expect((await db.transaction((tx) => advanceWatermark(tx, now - DAY, DEFAULT_CONFIG))).stageChanges).toEqual([]);
    const streams = await sqlEventStore(db).readStreams(['customer-a', 'customer-b']);
    for (const stream of streams.values()) expect(stream.filter((e) => e.type === 'CustomerChurned')).toHaveLength(1);
  });

  test('as of any other instant, the export is read from the customers\' histories, not the streams', async () => {
    await db.transaction((tx) => projectBatch(tx, history, DEFAULT_CONFIG));
    // 02-05: a has paid once; b's failure of 02-01 is within its grace; c's referral is later.
    const early = {
      asOf: Date.parse('2024-02-05T00:00:00Z'),
      customers: [
        { ...customerA, stage: 'converted', churnedAt: null, churnReason: null },
        { ...customerB, stage: 'at_risk', churnedAt: null, churnReason: null, payments: 1, revenue: { USD: 500 } },
      ],
      cohorts: [cell(0, '2024-01', { active: 2, revenue: { USD: 1500 } }), cell(1, '2024-02')],
    };
    expect(await exportProjection(db, DEFAULT_CONFIG, early.asOf)).toEqual(early);
    // The streams are not read: with them gone the answer is the same.
    await db.query("DELETE FROM lifecycle_events WHERE event_type = 'TouchpointRecorded'");
    expect(await exportProjection(db, DEFAULT_CONFIG, early.asOf)).toEqual(early);
  });

  test('after the latest touchpoint, the churns that have come due by then are in the export', async () => {
    // Up to b's renewal on 02-10: a's churn (03-03) is still ahead of the watermark.
    await db.transaction((tx) => projectBatch(tx, history.filter((t) => t.id !== 'x1'), DEFAULT_CONFIG));
    const later = {
      asOf: Date.parse('2024-03-15T00:00:00Z'),
      customers: [customerA, { ...customerB, stage: 'retained', churnedAt: null, churnReason: null }],
      cohorts: [cohorts[0], cohorts[1], cohorts[2]],
    };
    expect(await exportProjection(db, DEFAULT_CONFIG, later.asOf)).toEqual(later);
  });

  test('as of any other instant, the cohort table is read from its days, not from the customers', async () => {
    await db.transaction((tx) => projectBatch(tx, history, DEFAULT_CONFIG));
    const instants = ['2024-01-15T00:00:00Z', '2024-02-05T00:00:00Z', '2024-02-10T12:00:00Z', '2024-03-15T00:00:00Z', '2025-01-01T00:00:00Z'].map(Date.parse);
    const fromHistories = [];
    for (const at of instants) fromHistories.push((await exportProjection(db, DEFAULT_CONFIG, at)).cohorts);
    expect(fromHistories[1]).toEqual([cell(0, '2024-01', { active: 2, revenue: { USD: 1500 } }), cell(1, '2024-02')]);
    // Neither the customers nor the streams are read: with both gone the answers are the same.
    await db.exec("DELETE FROM customers; DELETE FROM lifecycle_events WHERE event_type = 'TouchpointRecorded'");
    for (const [i, at] of instants.entries()) expect({ at, rows: (await exportCohorts(db, DEFAULT_CONFIG, at)).rows }).toEqual({ at, rows: fromHistories[i] });
  });

  test("a day changed by many transactions keeps a bounded number of pieces, merged without losing a step", async () => {
    // 40 transactions, one purchase each on 2024-01-10, then a late one that moves every customer's churn deadline.
    const at = (i: number) => new Date(Date.parse('2024-01-10T00:00:00Z') + i * 60_000).toISOString();
    const purchase = (i: number, id: string, occurredAt: string): Touchpoint => ({ id, type: 'purchase', occurredAt, customerId: `m${i % 20}`, properties: { orderId: id, amount: money(100 + i) } });
    for (let i = 0; i < 40; i += 1) await db.transaction((tx) => projectBatch(tx, [purchase(i, `q${i}`, at(i))], DEFAULT_CONFIG));
    await db.transaction((tx) => projectBatch(tx, [purchase(40, 'q40', '2024-01-09T00:00:00Z')], DEFAULT_CONFIG));
    const [pieces] = await db.query<{ most: number }>('SELECT max(n)::integer AS most FROM (SELECT count(*) AS n FROM cohort_cell_days GROUP BY cohort_period, period_offset, part, day) d');
    expect(pieces!.most).toBeLessThan(16);
    for (const asOf of ['2024-01-10T00:10:30Z', '2024-01-31T00:00:00Z', '2024-03-11T00:05:00Z', '2024-06-01T00:00:00Z'].map(Date.parse)) {
      const fromHistories = (await exportProjection(db, DEFAULT_CONFIG, asOf)).cohorts;
      expect({ asOf, rows: (await exportCohorts(db, DEFAULT_CONFIG, asOf)).rows }).toEqual({ asOf, rows: fromHistories });
    }
  });

  test('a store whose cohort days are not all kept (projected by an older version) answers from histories until its replay', async () => {
    await db.transaction((tx) => projectBatch(tx, history, DEFAULT_CONFIG));
    const asOf = Date.parse('2024-02-05T00:00:00Z');
    const expected = (await exportCohorts(db, DEFAULT_CONFIG, asOf)).rows;
    await db.query("DELETE FROM projection_state WHERE key = 'cohort_cell_days_complete'");
    await db.query('DELETE FROM cohort_cell_days');
    expect((await exportCohorts(db, DEFAULT_CONFIG, asOf)).rows).toEqual(expected);
    await replay(db, DEFAULT_CONFIG);
    await db.query('DELETE FROM customers');
    expect((await exportCohorts(db, DEFAULT_CONFIG, asOf)).rows).toEqual(expected);
  });

  test('a customer row without a history (written by an older version) makes the as-of export fold the streams', async () => {
    await db.transaction((tx) => projectBatch(tx, history, DEFAULT_CONFIG));
    const asOf = Date.parse('2024-03-15T00:00:00Z');
    const fromHistories = await exportProjection(db, DEFAULT_CONFIG, asOf);
    await db.query("UPDATE customers SET history = NULL, cohort_facts = '{}' WHERE customer_id = 'a'");
    expect(await exportProjection(db, DEFAULT_CONFIG, asOf)).toEqual(fromHistories);
  });
});
