import { parseLifecycleConfig, type CohortRow, type CustomerRow, type Touchpoint } from '@lifecycle/contracts';
import { oracleExport } from './batch-oracle.js';

// ---------------------------------------------------------------------------------------------
// Builders. Ids are generated unless given; they only matter for duplicates and tie-breaking.
// ---------------------------------------------------------------------------------------------

let nextId = 0;
const newId = (prefix: string): string => `${prefix}-${String(++nextId).padStart(4, '0')}`;

interface Paid {
  amount?: number;
  currency?: string;
  id?: string;
}

const impression = (occurredAt: string, who: { customerId?: string; anonymousId?: string }, channel: string, id = newId('imp')): Touchpoint => ({
  id,
  type: 'ad_impression',
  occurredAt,
  ...who,
  properties: { channel },
});

const registration = (
  customerId: string,
  occurredAt: string,
  opts: { channel?: string; referredBy?: string; anonymousId?: string; id?: string } = {},
): Touchpoint => {
  const { channel, referredBy, anonymousId, id = newId('reg') } = opts;
  return {
    id,
    type: 'registration',
    occurredAt,
    customerId,
    ...(anonymousId !== undefined ? { anonymousId } : {}),
    properties: { ...(channel !== undefined ? { channel } : {}), ...(referredBy !== undefined ? { referredBy } : {}) },
  };
};

const purchase = (customerId: string, occurredAt: string, { amount = 1000, currency = 'USD', id = newId('buy') }: Paid = {}): Touchpoint => ({
  id,
  type: 'purchase',
  occurredAt,
  customerId,
  properties: { orderId: `order-${id}`, amount: { amountMinor: amount, currency } },
});

const renewal = (customerId: string, occurredAt: string, { amount = 1000, currency = 'USD', id = newId('ren') }: Paid = {}): Touchpoint => ({
  id,
  type: 'renewal',
  occurredAt,
  customerId,
  properties: { subscriptionId: `sub-${customerId}`, amount: { amountMinor: amount, currency } },
});

const failure = (customerId: string, occurredAt: string, id = newId('fail')): Touchpoint => ({
  id,
  type: 'payment_failure',
  occurredAt,
  customerId,
  properties: {},
});

const referral = (customerId: string, occurredAt: string, id = newId('ref')): Touchpoint => ({
  id,
  type: 'referral',
  occurredAt,
  customerId,
  properties: {},
});

// Expected rows: every key present, in the export's key order.
const customer = (customerId: string, fields: Partial<CustomerRow> = {}): CustomerRow => ({
  customerId,
  stage: 'reached',
  acquiredAt: null,
  cohort: null,
  channel: null,
  convertedAt: null,
  churnedAt: null,
  churnReason: null,
  payments: 0,
  reactivations: 0,
  referrals: 0,
  revenue: {},
  ...fields,
});

const cohortRow = (cohort: string, periodIndex: number, period: string, fields: Partial<CohortRow> = {}): CohortRow => ({
  cohort,
  periodIndex,
  period,
  size: 1,
  converted: 0,
  active: 0,
  churned: 0,
  reactivated: 0,
  revenue: {},
  ...fields,
});

/** Compares serialized rows, so key order matters exactly as in the NDJSON export. */
const lines = (rows: readonly object[]): string[] => rows.map((r) => JSON.stringify(r));

const defaults = parseLifecycleConfig({});

function exportAt(touchpoints: readonly Touchpoint[], asOf?: string, settings: object = {}) {
  return oracleExport(touchpoints, parseLifecycleConfig(settings), asOf);
}

function customersAt(touchpoints: readonly Touchpoint[], asOf?: string, settings: object = {}): string[] {
  return lines(exportAt(touchpoints, asOf, settings).customers);
}

// ---------------------------------------------------------------------------------------------

describe('batch oracle: acquisition and rows', () => {
  test('implicit acquisition by a paying event; impressions-only and failure-only customers are reached', () => {
    const tps = [
      impression('2024-01-05T00:00:00Z', { customerId: 'c1' }, 'search'),
      purchase('c1', '2024-01-10T10:00:00Z', { amount: 1000 }),
      purchase('c2', '2024-01-12T00:00:00+02:00', { amount: 700 }),
      impression('2024-01-06T00:00:00Z', { customerId: 'c3' }, 'display'),
      failure('c4', '2024-01-07T00:00:00Z'),
    ];
    const result = exportAt(tps, '2024-01-20T00:00:00Z');
    expect(lines(result.customers)).toEqual(
      lines([
        customer('c1', {
          stage: 'converted',
          acquiredAt: '2024-01-10T10:00:00.000Z',
          cohort: '2024-01',
          channel: 'search',
          convertedAt: '2024-01-10T10:00:00.000Z',
          payments: 1,
          revenue: { USD: 1000 },
        }),
        customer('c2', {
          stage: 'converted',
          acquiredAt: '2024-01-11T22:00:00.000Z',
          cohort: '2024-01',
          channel: 'direct',
          convertedAt: '2024-01-11T22:00:00.000Z',
          payments: 1,
          revenue: { USD: 700 },
        }),
        customer('c3'),
        customer('c4'),
      ]),
    );
    expect(lines(result.cohorts)).toEqual(lines([cohortRow('2024-01', 0, '2024-01', { size: 2, converted: 2, active: 2, revenue: { USD: 1700 } })]));
  });

  test('the exact JSON of a row (key order, instants with milliseconds, nulls)', () => {
    const { customers, cohorts } = exportAt([registration('c1', '2024-02-03T04:05:06+01:00', { channel: 'social' })]);
    expect(JSON.stringify(customers[0])).toBe(
      '{"customerId":"c1","stage":"acquired","acquiredAt":"2024-02-03T03:05:06.000Z","cohort":"2024-02","channel":"social",' +
        '"convertedAt":null,"churnedAt":null,"churnReason":null,"payments":0,"reactivations":0,"referrals":0,"revenue":{}}',
    );
    expect(JSON.stringify(cohorts)).toBe(
      '[{"cohort":"2024-02","periodIndex":0,"period":"2024-02","size":1,"converted":0,"active":0,"churned":0,"reactivated":0,"revenue":{}}]',
    );
  });

  test('a registration after the first payment: acquired at the registration, converted before the cohort', () => {
    const tps = [purchase('c1', '2024-01-15T00:00:00Z'), registration('c1', '2024-02-10T00:00:00Z', { channel: 'email' })];
    const result = exportAt(tps, '2024-02-20T00:00:00Z');
    expect(lines(result.customers)).toEqual(
      lines([
        customer('c1', {
          stage: 'converted',
          acquiredAt: '2024-02-10T00:00:00.000Z',
          cohort: '2024-02',
          channel: 'email',
          convertedAt: '2024-01-15T00:00:00.000Z',
          payments: 1,
          revenue: { USD: 1000 },
        }),
      ]),
    );
    // Converted counts cumulatively (the January conversion is ≤ c + 0); the January payment is in no row.
    expect(lines(result.cohorts)).toEqual(lines([cohortRow('2024-02', 0, '2024-02', { converted: 1 })]));
  });

  test('default as-of is the latest occurredAt, visitor impressions included; later touchpoints do not count', () => {
    const tps = [
      purchase('c1', '2024-01-01T00:00:00Z'),
      impression('2024-04-01T00:00:00Z', { anonymousId: 'v-unlinked' }, 'display'),
      purchase('c2', '2024-05-01T00:00:00Z'),
    ];
    // With T = the latest instant (May 1st) c2 exists.
    expect(exportAt(tps).customers.map((c) => c.customerId)).toEqual(['c1', 'c2']);
    const atApril = exportAt(tps.slice(0, 2));
    expect(lines(atApril.customers)).toEqual(
      lines([
        customer('c1', {
          stage: 'churned',
          acquiredAt: '2024-01-01T00:00:00.000Z',
          cohort: '2024-01',
          channel: 'direct',
          convertedAt: '2024-01-01T00:00:00.000Z',
          churnedAt: '2024-03-01T00:00:00.000Z',
          churnReason: 'inactivity',
          payments: 1,
          revenue: { USD: 1000 },
        }),
      ]),
    );
    expect(atApril.cohorts.map((r) => r.period)).toEqual(['2024-01', '2024-02', '2024-03', '2024-04']);
    expect(exportAt(tps, '2024-03-31T00:00:00Z').customers.map((c) => c.customerId)).toEqual(['c1']);
  });

  test('empty input', () => {
    expect(oracleExport([], defaults)).toEqual({ customers: [], cohorts: [], cohortsByChannel: [], channels: [], churns: [], stages: [], referrals: [] });
    const stages = ['churned', 'at_risk', 'loyal', 'retained', 'converted', 'acquired', 'reached'].map((stage) => ({ stage, customers: 0 }));
    expect(oracleExport([], defaults, '2024-01-01T00:00:00Z')).toEqual({ customers: [], cohorts: [], cohortsByChannel: [], channels: [], churns: [], stages, referrals: [] });
  });
});

describe('batch oracle: channel and identity (SPEC §5)', () => {
  const acquired = (customerId: string, at: string, channel: string): CustomerRow =>
    customer(customerId, { stage: 'acquired', acquiredAt: at, cohort: at.slice(0, 7), channel });

  test('registration channel, then referral, then the first linked impression, then direct', () => {
    const tps = [
      impression('2024-01-01T00:00:00Z', { anonymousId: 'v1' }, 'display'),
      registration('r1', '2024-01-02T00:00:00Z', { channel: 'social', referredBy: 'r9', anonymousId: 'v1' }),
      registration('r2', '2024-01-02T00:00:00Z', { referredBy: 'r1' }),
      impression('2024-01-01T00:00:00Z', { anonymousId: 'v3' }, 'search'),
      impression('2024-01-01T06:00:00Z', { anonymousId: 'v3' }, 'video'),
      registration('r3', '2024-01-02T00:00:00Z', { anonymousId: 'v3' }),
      registration('r4', '2024-01-02T00:00:00Z', { anonymousId: 'v4' }),
      impression('2024-01-05T00:00:00Z', { anonymousId: 'v4' }, 'podcast'), // after the registration: still linked
      registration('r5', '2024-01-02T00:00:00Z'),
      impression('2024-01-01T00:00:00Z', { anonymousId: 'v9' }, 'display'), // never linked: no row
    ];
    expect(customersAt(tps, '2024-01-10T00:00:00Z')).toEqual(
      lines([
        acquired('r1', '2024-01-02T00:00:00.000Z', 'social'),
        acquired('r2', '2024-01-02T00:00:00.000Z', 'referral'),
        acquired('r3', '2024-01-02T00:00:00.000Z', 'search'),
        acquired('r4', '2024-01-02T00:00:00.000Z', 'podcast'),
        acquired('r5', '2024-01-02T00:00:00.000Z', 'direct'),
      ]),
    );
    // The podcast impression after T does not count yet.
    expect(exportAt(tps, '2024-01-04T00:00:00Z').customers.find((c) => c.customerId === 'r4')?.channel).toBe('direct');
  });

  test('the impression may arrive before or after the registration in the input', () => {
    const imp = impression('2024-01-01T00:00:00Z', { anonymousId: 'v1' }, 'search');
    const reg = registration('c1', '2024-01-02T00:00:00Z', { anonymousId: 'v1' });
    const expected = lines([acquired('c1', '2024-01-02T00:00:00.000Z', 'search')]);
    expect(customersAt([imp, reg])).toEqual(expected);
    expect(customersAt([reg, imp], '2024-01-02T00:00:00Z')).toEqual(expected);
  });

  test('the earliest registration decides: its channel, and its anonymousId link', () => {
    const tps = [
      impression('2024-01-01T00:00:00Z', { anonymousId: 'v1' }, 'search'),
      // c1's earliest registration has no channel; a later one has, but does not count.
      registration('c1', '2024-01-03T00:00:00Z', { anonymousId: 'v1' }),
      registration('c1', '2024-01-04T00:00:00Z', { channel: 'social' }),
      // c2 registers later with the same visitor: the visitor is c1's.
      registration('c2', '2024-01-05T00:00:00Z', { anonymousId: 'v1' }),
    ];
    expect(customersAt(tps)).toEqual(
      lines([acquired('c1', '2024-01-03T00:00:00.000Z', 'search'), acquired('c2', '2024-01-05T00:00:00.000Z', 'direct')]),
    );
  });

  test('own and linked impressions compete by canonical order; an impression with a customerId is that customer\'s', () => {
    const tps = [
      impression('2024-01-01T12:00:00Z', { anonymousId: 'v1' }, 'visitor-later'),
      impression('2024-01-01T00:00:00Z', { customerId: 'c1' }, 'own-earlier'),
      impression('2024-01-01T00:00:00Z', { customerId: 'c2', anonymousId: 'v2' }, 'belongs-to-c2'),
      registration('c1', '2024-01-02T00:00:00Z', { anonymousId: 'v1' }),
      registration('c3', '2024-01-02T00:00:00Z', { anonymousId: 'v2' }),
    ];
    expect(customersAt(tps)).toEqual(
      lines([
        acquired('c1', '2024-01-02T00:00:00.000Z', 'own-earlier'),
        customer('c2'), // only an impression: reached
        acquired('c3', '2024-01-02T00:00:00.000Z', 'direct'),
      ]),
    );
  });

  test('an implicitly acquired customer uses only its own impressions', () => {
    const tps = [
      impression('2024-01-01T00:00:00Z', { anonymousId: 'v1' }, 'search'),
      purchase('c1', '2024-01-02T00:00:00Z'),
      impression('2024-01-03T00:00:00Z', { customerId: 'c2' }, 'video'),
      purchase('c2', '2024-01-02T00:00:00Z'),
    ];
    expect(exportAt(tps).customers.map((c) => c.channel)).toEqual(['direct', 'video']);
  });
});

describe('batch oracle: churn episodes (SPEC §3)', () => {
  const base = {
    acquiredAt: '2024-01-01T00:00:00.000Z',
    cohort: '2024-01',
    channel: 'direct',
    convertedAt: '2024-01-01T00:00:00.000Z',
  };

  test('inactivity churn at a + 60 days, counted once churnedAt ≤ T', () => {
    const tps = [purchase('c1', '2024-01-01T00:00:00Z')];
    const converted = customer('c1', { ...base, stage: 'converted', payments: 1, revenue: { USD: 1000 } });
    const churned = { ...converted, stage: 'churned' as const, churnedAt: '2024-03-01T00:00:00.000Z', churnReason: 'inactivity' as const };
    expect(customersAt(tps, '2024-02-29T23:59:59.999Z')).toEqual(lines([converted]));
    expect(customersAt(tps, '2024-03-01T00:00:00Z')).toEqual(lines([churned]));
    const result = exportAt(tps, '2024-04-01T00:00:00Z');
    expect(lines(result.customers)).toEqual(lines([churned]));
    expect(lines(result.cohorts)).toEqual(
      lines([
        cohortRow('2024-01', 0, '2024-01', { converted: 1, active: 1, revenue: { USD: 1000 } }),
        cohortRow('2024-01', 1, '2024-02', { converted: 1 }),
        cohortRow('2024-01', 2, '2024-03', { converted: 1, churned: 1 }),
        cohortRow('2024-01', 3, '2024-04', { converted: 1 }),
      ]),
    );
  });

  test('a payment exactly at the deadline prevents the churn; one millisecond later is a reactivation', () => {
    const onTime = [purchase('c1', '2024-01-01T00:00:00Z'), renewal('c1', '2024-03-01T00:00:00Z')];
    expect(customersAt(onTime, '2024-03-15T00:00:00Z')).toEqual(
      lines([customer('c1', { ...base, stage: 'retained', payments: 2, revenue: { USD: 2000 } })]),
    );
    const late = [purchase('c1', '2024-01-01T00:00:00Z'), renewal('c1', '2024-03-01T00:00:00.001Z')];
    expect(customersAt(late, '2024-03-15T00:00:00Z')).toEqual(
      lines([
        customer('c1', {
          ...base,
          stage: 'retained',
          churnedAt: '2024-03-01T00:00:00.000Z',
          churnReason: 'inactivity',
          payments: 2,
          reactivations: 1,
          revenue: { USD: 2000 },
        }),
      ]),
    );
  });

  test('fractional durations are exact: 1.5 days = 36 hours', () => {
    const tps = [purchase('c1', '2024-01-01T00:00:00Z')];
    const [row] = exportAt(tps, '2024-01-10T00:00:00Z', { churn: { inactivityDays: 1.5, paymentGraceDays: 0.5 } }).customers;
    expect(row?.churnedAt).toBe('2024-01-02T12:00:00.000Z');
  });

  test('a failure recovered by a payment within the grace (here exactly at its end)', () => {
    const tps = [
      failure('c1', '2023-12-20T00:00:00Z'), // before the conversion: ignored
      purchase('c1', '2024-01-01T00:00:00Z'),
      failure('c1', '2024-01-20T00:00:00Z'),
      renewal('c1', '2024-02-03T00:00:00Z'),
    ];
    expect(customersAt(tps, '2024-01-10T00:00:00Z')).toEqual(lines([customer('c1', { ...base, stage: 'converted', payments: 1, revenue: { USD: 1000 } })]));
    expect(customersAt(tps, '2024-02-10T00:00:00Z')).toEqual(lines([customer('c1', { ...base, stage: 'retained', payments: 2, revenue: { USD: 2000 } })]));
  });

  test('an unrecovered failure: at_risk during the grace, then churned with reason payment_failure', () => {
    const tps = [
      purchase('c1', '2024-01-01T00:00:00Z'),
      failure('c1', '2024-01-20T00:00:00Z'),
      failure('c1', '2024-01-25T00:00:00Z'), // not the first failure after a: does not move the deadline
    ];
    const row = customer('c1', { ...base, payments: 1, revenue: { USD: 1000 } });
    expect(customersAt(tps, '2024-01-20T00:00:00Z')).toEqual(lines([{ ...row, stage: 'at_risk' }]));
    expect(customersAt(tps, '2024-02-02T23:59:59.999Z')).toEqual(lines([{ ...row, stage: 'at_risk' }]));
    const churned = { ...row, stage: 'churned' as const, churnedAt: '2024-02-03T00:00:00.000Z', churnReason: 'payment_failure' as const };
    expect(customersAt(tps, '2024-02-03T00:00:00Z')).toEqual(lines([churned]));
    expect(customersAt(tps, '2024-06-01T00:00:00Z')).toEqual(lines([churned]));
  });

  test('equal deadlines give payment_failure; an earlier inactivity deadline gives inactivity', () => {
    // 2024-02-16 + 14 days = 2024-03-01 = 2024-01-01 + 60 days.
    const equal = [purchase('c1', '2024-01-01T00:00:00Z'), failure('c1', '2024-02-16T00:00:00Z')];
    const later = [purchase('c1', '2024-01-01T00:00:00Z'), failure('c1', '2024-02-20T00:00:00Z')];
    const churned = (reason: 'inactivity' | 'payment_failure') =>
      lines([customer('c1', { ...base, stage: 'churned', churnedAt: '2024-03-01T00:00:00.000Z', churnReason: reason, payments: 1, revenue: { USD: 1000 } })]);
    expect(customersAt(equal, '2024-03-10T00:00:00Z')).toEqual(churned('payment_failure'));
    expect(customersAt(later, '2024-03-10T00:00:00Z')).toEqual(churned('inactivity'));
  });

  test('churn, reactivation (churnedAt kept), then a second churn; cohort columns per period', () => {
    const tps = [
      purchase('c1', '2024-01-01T00:00:00Z', { amount: 1000 }),
      failure('c1', '2024-03-10T00:00:00Z'), // while churned: ignored
      purchase('c1', '2024-04-10T00:00:00Z', { amount: 700 }),
    ];
    const reactivated = customer('c1', {
      ...base,
      stage: 'retained',
      churnedAt: '2024-03-01T00:00:00.000Z',
      churnReason: 'inactivity',
      payments: 2,
      reactivations: 1,
      revenue: { USD: 1700 },
    });
    const april = exportAt(tps, '2024-04-15T00:00:00Z');
    expect(lines(april.customers)).toEqual(lines([reactivated]));
    const rows = [
      cohortRow('2024-01', 0, '2024-01', { converted: 1, active: 1, revenue: { USD: 1000 } }),
      cohortRow('2024-01', 1, '2024-02', { converted: 1 }),
      cohortRow('2024-01', 2, '2024-03', { converted: 1, churned: 1 }),
      cohortRow('2024-01', 3, '2024-04', { converted: 1, active: 1, reactivated: 1, revenue: { USD: 700 } }),
    ];
    expect(lines(april.cohorts)).toEqual(lines(rows));

    // 2024-04-10 + 60 days = 2024-06-09: the latest churn is reported.
    const july = exportAt(tps, '2024-07-01T00:00:00Z');
    expect(lines(july.customers)).toEqual(lines([{ ...reactivated, stage: 'churned', churnedAt: '2024-06-09T00:00:00.000Z' }]));
    expect(lines(july.cohorts)).toEqual(
      lines([
        ...rows,
        cohortRow('2024-01', 4, '2024-05', { converted: 1 }),
        cohortRow('2024-01', 5, '2024-06', { converted: 1, churned: 1 }),
        cohortRow('2024-01', 6, '2024-07', { converted: 1 }),
      ]),
    );
  });
});

describe('batch oracle: loyalty and stage priority', () => {
  test('loyal by minPayments paying events, and still churned after a churn', () => {
    const tps = [
      purchase('c1', '2024-01-01T00:00:00Z'),
      renewal('c1', '2024-01-31T00:00:00Z'),
      renewal('c1', '2024-03-01T00:00:00Z'),
      renewal('c1', '2024-03-31T00:00:00Z'),
    ];
    const stageAt = (asOf: string, settings: object = {}) => exportAt(tps, asOf, settings).customers[0]?.stage;
    expect(stageAt('2024-03-15T00:00:00Z')).toBe('retained');
    expect(stageAt('2024-04-05T00:00:00Z')).toBe('loyal');
    expect(stageAt('2024-03-15T00:00:00Z', { loyalty: { minPayments: 3 } })).toBe('loyal');
    const [churned] = exportAt(tps, '2024-07-01T00:00:00Z').customers;
    expect(churned).toMatchObject({ stage: 'churned', churnedAt: '2024-05-30T00:00:00.000Z', payments: 4, revenue: { USD: 4000 } });
  });

  test('loyal by a referral after the conversion (also at the same instant); not by one before', () => {
    const tps = [
      purchase('after', '2024-01-01T00:00:00Z'),
      referral('after', '2024-01-05T00:00:00Z'),
      referral('before', '2024-01-01T00:00:00Z'),
      purchase('before', '2024-01-05T00:00:00Z'),
      referral('same', '2024-01-01T00:00:00Z'),
      purchase('same', '2024-01-01T00:00:00Z'),
      referral('prospect', '2024-01-01T00:00:00Z'),
    ];
    const rows = exportAt(tps, '2024-01-10T00:00:00Z').customers;
    expect(rows.map((r) => [r.customerId, r.stage, r.referrals])).toEqual([
      ['after', 'loyal', 1],
      ['before', 'converted', 1],
      ['prospect', 'reached', 1],
      ['same', 'loyal', 1],
    ]);
  });

  test('at_risk takes priority over loyal; recovery returns to loyal', () => {
    const tps = [purchase('c1', '2024-01-01T00:00:00Z'), referral('c1', '2024-01-02T00:00:00Z'), failure('c1', '2024-01-08T00:00:00Z')];
    expect(exportAt(tps, '2024-01-10T00:00:00Z').customers[0]?.stage).toBe('at_risk');
    const recovered = [...tps, renewal('c1', '2024-01-12T00:00:00Z')];
    expect(exportAt(recovered, '2024-01-13T00:00:00Z').customers[0]?.stage).toBe('loyal');
  });
});

describe('batch oracle: cohort periods (SPEC §4)', () => {
  test('ISO weeks across a year boundary use the ISO week-year', () => {
    const tps = [
      registration('w1', '2020-12-31T12:00:00Z'), // Thursday of 2020-W53
      purchase('w1', '2021-01-04T00:00:00Z', { amount: 300 }), // Monday of 2021-W01
      registration('w2', '2019-12-30T08:00:00Z'), // Monday of 2020-W01
      registration('w3', '2021-01-03T23:59:59Z'), // Sunday of 2020-W53
    ];
    const week = { cohort: { granularity: 'week' } };
    const { customers, cohorts } = exportAt(tps, '2021-01-11T00:00:00Z', week); // Monday of 2021-W02
    expect(customers.map((c) => [c.customerId, c.cohort, c.stage])).toEqual([
      ['w1', '2020-W53', 'converted'],
      ['w2', '2020-W01', 'acquired'],
      ['w3', '2020-W53', 'acquired'],
    ]);
    const w01 = cohorts.filter((r) => r.cohort === '2020-W01');
    expect(w01).toHaveLength(55); // 2020 has 53 ISO weeks, then 2021-W01 and 2021-W02
    expect(w01.map((r) => r.period).slice(0, 2)).toEqual(['2020-W01', '2020-W02']);
    expect(w01.map((r) => r.period).slice(-3)).toEqual(['2020-W53', '2021-W01', '2021-W02']);
    expect(w01.every((r) => r.size === 1 && r.converted === 0 && r.active === 0)).toBe(true);
    expect(lines(cohorts.filter((r) => r.cohort === '2020-W53'))).toEqual(
      lines([
        cohortRow('2020-W53', 0, '2020-W53', { size: 2 }),
        cohortRow('2020-W53', 1, '2021-W01', { size: 2, converted: 1, active: 1, revenue: { USD: 300 } }),
        cohortRow('2020-W53', 2, '2021-W02', { size: 2, converted: 1 }),
      ]),
    );
    expect(cohorts.map((r) => r.cohort).indexOf('2020-W53')).toBe(55); // sorted by cohort, then periodIndex
  });

  test('periods are cut in the configured zone (America/New_York vs UTC)', () => {
    const tps = [
      registration('c1', '2024-03-01T03:00:00Z'), // 2024-02-29 22:00 in New York
      purchase('c1', '2024-04-01T03:30:00Z', { amount: 500 }), // 2024-03-31 23:30 in New York
    ];
    const asOf = '2024-04-01T04:00:00Z'; // 2024-04-01 00:00 in New York
    const ny = exportAt(tps, asOf, { cohort: { timeZone: 'America/New_York' } });
    const row = customer('c1', {
      stage: 'converted',
      acquiredAt: '2024-03-01T03:00:00.000Z',
      cohort: '2024-02',
      channel: 'direct',
      convertedAt: '2024-04-01T03:30:00.000Z',
      payments: 1,
      revenue: { USD: 500 },
    });
    expect(lines(ny.customers)).toEqual(lines([row]));
    expect(lines(ny.cohorts)).toEqual(
      lines([
        cohortRow('2024-02', 0, '2024-02'),
        cohortRow('2024-02', 1, '2024-03', { converted: 1, active: 1, revenue: { USD: 500 } }),
        cohortRow('2024-02', 2, '2024-04', { converted: 1 }),
      ]),
    );
    const utc = exportAt(tps, asOf);
    expect(lines(utc.customers)).toEqual(lines([{ ...row, cohort: '2024-03' }]));
    expect(lines(utc.cohorts)).toEqual(
      lines([cohortRow('2024-03', 0, '2024-03'), cohortRow('2024-03', 1, '2024-04', { converted: 1, active: 1, revenue: { USD: 500 } })]),
    );
  });

  test('day cohorts in Asia/Kolkata', () => {
    const tps = [registration('c1', '2024-01-01T20:00:00Z'), purchase('c1', '2024-01-02T19:00:00Z')]; // 01:30 and 00:30 IST
    const { customers, cohorts } = exportAt(tps, '2024-01-03T18:29:59.999Z', { cohort: { granularity: 'day', timeZone: 'Asia/Kolkata' } });
    expect(customers[0]?.cohort).toBe('2024-01-02');
    expect(lines(cohorts)).toEqual(
      lines([
        cohortRow('2024-01-02', 0, '2024-01-02'),
        cohortRow('2024-01-02', 1, '2024-01-03', { converted: 1, active: 1, revenue: { USD: 1000 } }),
      ]),
    );
  });
});

describe('batch oracle: money and duplicates', () => {
  test('revenue per currency, keys sorted, never summed across currencies', () => {
    const tps = [
      purchase('c1', '2024-01-05T00:00:00Z', { amount: 1000, currency: 'USD' }),
      purchase('c1', '2024-01-10T00:00:00Z', { amount: 500, currency: 'EUR' }),
      renewal('c1', '2024-01-20T00:00:00Z', { amount: 250, currency: 'USD' }),
      renewal('c1', '2024-01-25T00:00:00Z', { amount: 300, currency: 'JPY' }),
      purchase('c2', '2024-01-26T00:00:00Z', { amount: 0, currency: 'GBP' }),
      purchase('c2', '2024-01-27T00:00:00Z', { amount: 40, currency: 'EUR' }),
    ];
    const { customers, cohorts } = exportAt(tps, '2024-01-31T00:00:00Z');
    expect(customers[0]).toMatchObject({ stage: 'loyal', payments: 4 });
    expect(JSON.stringify(customers.map((c) => c.revenue))).toBe('[{"EUR":500,"JPY":300,"USD":1250},{"EUR":40,"GBP":0}]');
    expect(lines(cohorts)).toEqual(
      lines([cohortRow('2024-01', 0, '2024-01', { size: 2, converted: 2, active: 2, revenue: { EUR: 540, GBP: 0, JPY: 300, USD: 1250 } })]),
    );
  });

  test('duplicates: the first occurrence of an id wins; arrival order does not matter', () => {
    const tps = [
      registration('c1', '2024-01-02T00:00:00Z', { channel: 'social', id: 'r1' }),
      purchase('c1', '2024-01-10T00:00:00Z', { amount: 1000, id: 'p1' }),
      purchase('c1', '2024-01-11T00:00:00Z', { amount: 200, id: 'p2' }),
      referral('c1', '2024-01-12T00:00:00Z', 'x1'),
    ];
    const noisy = [
      ...tps,
      purchase('c1', '2024-01-12T00:00:00Z', { amount: 9999, id: 'p1' }), // same id, different content: ignored
      registration('c1', '2024-01-01T00:00:00Z', { channel: 'display', id: 'r1' }),
      referral('c1', '2024-01-12T00:00:00Z', 'x1'),
    ];
    const expected = lines([
      customer('c1', {
        stage: 'loyal',
        acquiredAt: '2024-01-02T00:00:00.000Z',
        cohort: '2024-01',
        channel: 'social',
        convertedAt: '2024-01-10T00:00:00.000Z',
        payments: 2,
        referrals: 1,
        revenue: { USD: 1200 },
      }),
    ]);
    expect(customersAt(noisy)).toEqual(expected);
    const shuffled = [tps[3]!, tps[1]!, tps[3]!, tps[0]!, tps[2]!, tps[1]!];
    expect(exportAt(shuffled)).toEqual(exportAt(tps));
    expect(customersAt(shuffled)).toEqual(expected);
  });

  test('ties at the same instant are ordered by type rank, then id', () => {
    // The failure is after the purchase at the same instant (rank), so it is a failure after a.
    const tps = [failure('c1', '2024-01-01T00:00:00Z', 'a'), purchase('c1', '2024-01-01T00:00:00Z', { id: 'z' })];
    expect(exportAt(tps, '2024-01-05T00:00:00Z').customers[0]?.stage).toBe('at_risk');
    expect(exportAt(tps, '2024-01-15T00:00:00Z').customers[0]).toMatchObject({ churnedAt: '2024-01-15T00:00:00.000Z', churnReason: 'payment_failure' });
  });
});

describe('batch oracle: channel economics and cohorts by channel (SPEC §4, §7)', () => {
  const costly = (occurredAt: string, who: { customerId?: string; anonymousId?: string }, channel: string, amountMinor: number, currency = 'USD'): Touchpoint =>
    ({ ...impression(occurredAt, who, channel), properties: { channel, cost: { amountMinor, currency } } }) as Touchpoint;

  test('impressions, cost, acquisitions, revenue, CPM and CPA per channel and month, worked by hand', () => {
    const tps = [
      // search, January: 3 impressions (one of a visitor never linked), cost 100 + 51 USD, one without cost.
      costly('2024-01-01T00:00:00Z', { anonymousId: 'v-never' }, 'search', 100),
      costly('2024-01-02T00:00:00Z', { anonymousId: 'v1' }, 'search', 51),
      impression('2024-01-03T00:00:00Z', { anonymousId: 'v1' }, 'search'),
      // v1 is taken by c1's registration without a channel: c1's channel is search (its visitor's first impression).
      registration('c1', '2024-01-05T00:00:00Z', { anonymousId: 'v1' }),
      purchase('c1', '2024-01-06T00:00:00Z', { amount: 1000 }),
      renewal('c1', '2024-02-06T00:00:00Z', { amount: 0, currency: 'EUR' }),
      // social: cost in two currencies and nobody acquired.
      costly('2024-02-01T00:00:00Z', { anonymousId: 'v2' }, 'social', 7, 'EUR'),
      costly('2024-02-01T00:00:00Z', { anonymousId: 'v2' }, 'social', 0, 'JPY'),
      // email: acquired with no impression; paid in February.
      registration('c2', '2024-01-20T00:00:00Z', { channel: 'email' }),
      purchase('c2', '2024-02-10T00:00:00Z', { amount: 500 }),
    ];
    const { channels } = oracleExport(tps, defaults, '2024-02-15T00:00:00Z');
    expect(channels).toEqual([
      { channel: 'email', period: '2024-01', impressions: 0, cost: {}, acquired: 1, revenue: {}, cpm: {}, cpa: {} },
      { channel: 'email', period: '2024-02', impressions: 0, cost: {}, acquired: 0, revenue: { USD: 500 }, cpm: {}, cpa: null },
      // CPM: 151 × 1000 / 3 = 50 333.33 → 50 333; CPA: 151 / 1 = 151.
      { channel: 'search', period: '2024-01', impressions: 3, cost: { USD: 151 }, acquired: 1, revenue: { USD: 1000 }, cpm: { USD: 50333 }, cpa: { USD: 151 } },
      { channel: 'search', period: '2024-02', impressions: 0, cost: {}, acquired: 0, revenue: { EUR: 0 }, cpm: {}, cpa: null },
      // CPM: 7 × 1000 / 2 = 3 500; 0 JPY stays a currency of the cost.
      { channel: 'social', period: '2024-02', impressions: 2, cost: { EUR: 7, JPY: 0 }, acquired: 0, revenue: {}, cpm: { EUR: 3500, JPY: 0 }, cpa: null },
    ]);
    // As of the end of January: February's rows are not there yet.
    expect(oracleExport(tps, defaults, '2024-01-31T23:59:59Z').channels.map((r) => `${r.channel} ${r.period}`)).toEqual(['email 2024-01', 'search 2024-01']);
  });

  test('rounding is half up: 1 × 1000 / 8 = 125, 5 / 2 = 2.5 → 3', () => {
    const tps = [
      ...Array.from({ length: 8 }, (_, i) => costly(`2024-03-01T00:00:0${i}Z`, { anonymousId: `v${i}` }, 'video', i === 0 ? 5 : 0)),
      registration('a', '2024-03-02T00:00:00Z', { channel: 'video' }),
      registration('b', '2024-03-02T00:00:00Z', { channel: 'video' }),
    ];
    expect(oracleExport(tps, defaults).channels).toEqual([
      { channel: 'video', period: '2024-03', impressions: 8, cost: { USD: 5 }, acquired: 2, revenue: {}, cpm: { USD: 625 }, cpa: { USD: 3 } },
    ]);
  });

  test('cohorts by channel: the cohort table of each channel with a member', () => {
    const tps = [
      registration('a', '2024-01-05T00:00:00Z', { channel: 'email' }),
      purchase('a', '2024-01-06T00:00:00Z'),
      registration('b', '2024-01-07T00:00:00Z', { channel: 'search' }),
      registration('c', '2024-02-07T00:00:00Z', { channel: 'email' }),
      purchase('c', '2024-02-08T00:00:00Z', { amount: 300 }),
    ];
    const row = (cohort: string, channel: string, periodIndex: number, period: string, fields: Partial<CohortRow>) => ({
      cohort, channel, periodIndex, period, size: 1, converted: 0, active: 0, churned: 0, reactivated: 0, revenue: {}, ...fields,
    });
    expect(oracleExport(tps, defaults, '2024-02-10T00:00:00Z').cohortsByChannel).toEqual([
      row('2024-01', 'email', 0, '2024-01', { converted: 1, active: 1, revenue: { USD: 1000 } }),
      row('2024-01', 'email', 1, '2024-02', { converted: 1 }),
      row('2024-01', 'search', 0, '2024-01', {}),
      row('2024-01', 'search', 1, '2024-02', {}),
      row('2024-02', 'email', 0, '2024-02', { converted: 1, active: 1, revenue: { USD: 300 } }),
    ]);
  });
});

describe('batch oracle: the referral loop', () => {
  test('per referrer, the customers whose first registration names it, converted and their revenue, worked by hand', () => {
    const tps = [
      registration('r', '2024-01-01T00:00:00Z', { channel: 'email' }),
      registration('x', '2024-01-05T00:00:00Z', { referredBy: 'r' }),
      purchase('x', '2024-01-06T00:00:00Z', { amount: 700 }),
      registration('y', '2024-01-07T00:00:00Z', { channel: 'search', referredBy: 'r' }),
      // z's first registration names nobody: a later one naming r does not count.
      registration('z', '2024-01-08T00:00:00Z'),
      registration('z', '2024-01-09T00:00:00Z', { referredBy: 'r' }),
      registration('w', '2024-02-01T00:00:00Z', { referredBy: 'nobody-known' }),
      purchase('w', '2024-02-02T00:00:00Z', { amount: 5, currency: 'EUR' }),
    ];
    expect(oracleExport(tps, defaults).referrals).toEqual([
      { referrer: 'nobody-known', referred: 1, converted: 1, revenue: { EUR: 5 } },
      { referrer: 'r', referred: 2, converted: 1, revenue: { USD: 700 } },
    ]);
    expect(oracleExport(tps, defaults, '2024-01-05T12:00:00Z').referrals).toEqual([{ referrer: 'r', referred: 1, converted: 0, revenue: {} }]);
  });
});
