import { config, given, tp } from './builders.js';

describe('acquisition and conversion (SPEC §3)', () => {
  test('the earliest registration acquires; a customer with only impressions is reached', () => {
    const spec = given([
      tp.impression('2024-01-01T00:00:00Z', { customerId: 'prospect' }),
      tp.registration('c', '2024-01-05T10:00:00Z', { channel: 'social' }),
      tp.registration('c', '2024-01-02T10:00:00Z', { channel: 'search' }),
    ]);
    expect(spec.customer('prospect')).toMatchObject({ stage: 'reached', acquiredAt: null, cohort: null, channel: null });
    expect(spec.customer('c')).toMatchObject({ stage: 'acquired', acquiredAt: '2024-01-02T10:00:00.000Z', channel: 'search', cohort: '2024-01' });
  });

  test('a paying event without registration acquires implicitly, and a later registration re-dates it', () => {
    const spec = given([tp.purchase('c', '2024-01-10T00:00:00Z'), tp.registration('c', '2024-03-01T00:00:00Z')]);
    expect(spec.customer('c', '2024-02-01T00:00:00Z')).toMatchObject({
      stage: 'converted', acquiredAt: '2024-01-10T00:00:00.000Z', convertedAt: '2024-01-10T00:00:00.000Z', channel: 'direct', cohort: '2024-01',
    });
    expect(spec.customer('c')).toMatchObject({ acquiredAt: '2024-03-01T00:00:00.000Z', cohort: '2024-03' });
    expect(spec.timeline('c')).toEqual(['2024-01-10 CustomerAcquired null→acquired', '2024-01-10 CustomerConverted acquired→converted']);
  });

  test('channel: registration channel, else referral, else first linked impression, else direct', () => {
    const spec = given([
      tp.registration('a', '2024-01-01T00:00:00Z', { channel: 'email' }),
      tp.registration('b', '2024-01-01T00:00:00Z', { referredBy: 'a' }),
      tp.impression('2023-12-20T00:00:00Z', { anonymousId: 'v1' }, 'display'),
      tp.impression('2023-12-10T00:00:00Z', { anonymousId: 'v1' }, 'social'),
      tp.registration('c', '2024-01-01T00:00:00Z', {}, { anonymousId: 'v1' }),
      tp.registration('d', '2024-01-01T00:00:00Z'),
    ]);
    expect(spec.asOf().customers.map((c) => [c.customerId, c.channel])).toEqual([
      ['a', 'email'], ['b', 'referral'], ['c', 'social'], ['d', 'direct'],
    ]);
  });

  test('a visitor belongs to the earliest registration carrying it, whatever the arrival order', () => {
    const touchpoints = [
      tp.registration('late', '2024-02-01T00:00:00Z', {}, { anonymousId: 'v' }),
      tp.impression('2024-01-03T00:00:00Z', { anonymousId: 'v' }, 'affiliate'),
      tp.registration('early', '2024-01-05T00:00:00Z', {}, { anonymousId: 'v' }),
    ];
    const forward = given(touchpoints).asOf().customers;
    const backward = given([...touchpoints].reverse()).asOf().customers;
    expect(forward).toEqual(backward);
    expect(forward.map((c) => [c.customerId, c.channel])).toEqual([['early', 'affiliate'], ['late', 'direct']]);
  });
});

describe('churn episodes (SPEC §3)', () => {
  const base = [tp.registration('c', '2024-01-01T00:00:00Z'), tp.purchase('c', '2024-01-01T12:00:00Z')];

  test('no paying event for inactivityDays churns at a + inactivityDays, not a millisecond earlier', () => {
    const spec = given(base);
    expect(spec.customer('c', '2024-03-01T11:59:59.999Z')).toMatchObject({ stage: 'converted', churnedAt: null });
    expect(spec.customer('c', '2024-03-01T12:00:00Z')).toMatchObject({
      stage: 'churned', churnedAt: '2024-03-01T12:00:00.000Z', churnReason: 'inactivity',
    });
  });

  test('a payment exactly at the inactivity deadline keeps the customer', () => {
    const spec = given([...base, tp.renewal('c', '2024-03-01T12:00:00Z')]);
    expect(spec.customer('c', '2024-03-01T12:00:00Z')).toMatchObject({ stage: 'retained', churnedAt: null, payments: 2 });
  });

  test('a failure puts the customer at risk; a payment within the grace recovers it', () => {
    const spec = given([...base, tp.failure('c', '2024-01-20T00:00:00Z'), tp.renewal('c', '2024-02-03T00:00:00Z')]);
    expect(spec.customer('c', '2024-01-25T00:00:00Z').stage).toBe('at_risk');
    expect(spec.customer('c', '2024-02-03T00:00:00Z')).toMatchObject({ stage: 'retained', churnedAt: null });
    expect(spec.timeline('c')).toEqual([
      '2024-01-01 CustomerAcquired null→acquired',
      '2024-01-01 CustomerConverted acquired→converted',
      '2024-01-20 CustomerAtRisk converted→at_risk',
      '2024-02-03 CustomerRecovered at_risk→retained',
    ]);
  });

  test('an unrecovered failure churns at f + paymentGraceDays with reason payment_failure', () => {
    const spec = given([...base, tp.failure('c', '2024-01-20T00:00:00Z'), tp.failure('c', '2024-01-25T00:00:00Z')]);
    expect(spec.customer('c', '2024-02-03T00:00:00Z')).toMatchObject({
      stage: 'churned', churnedAt: '2024-02-03T00:00:00.000Z', churnReason: 'payment_failure',
    });
  });

  test('when both deadlines are the same instant the reason is payment_failure', () => {
    // a = Jan 1 12:00, inactivity deadline Mar 1 12:00; failure on Feb 16 12:00 + 14 days = Mar 1 12:00.
    const spec = given([...base, tp.failure('c', '2024-02-16T12:00:00Z')]);
    expect(spec.customer('c', '2024-03-02T00:00:00Z')).toMatchObject({ churnedAt: '2024-03-01T12:00:00.000Z', churnReason: 'payment_failure' });
  });

  test('a failure before the inactivity deadline can be overtaken by it', () => {
    const spec = given([...base, tp.failure('c', '2024-02-28T00:00:00Z')]);
    expect(spec.customer('c', '2024-03-20T00:00:00Z')).toMatchObject({ churnedAt: '2024-03-01T12:00:00.000Z', churnReason: 'inactivity' });
  });

  test('a payment at the same instant as a failure comes before it in canonical order: no recovery', () => {
    const spec = given([...base, tp.failure('c', '2024-01-20T00:00:00Z', 'z-failure'), tp.renewal('c', '2024-01-20T00:00:00Z', 1000, 'USD', 'a-renewal')]);
    expect(spec.customer('c', '2024-01-21T00:00:00Z').stage).toBe('at_risk');
  });

  test('after a churn the next payment reactivates; churnedAt and churnReason are kept', () => {
    const spec = given([...base, tp.purchase('c', '2024-06-01T00:00:00Z', 500, 'EUR')]);
    expect(spec.customer('c')).toMatchObject({
      stage: 'retained', churnedAt: '2024-03-01T12:00:00.000Z', churnReason: 'inactivity', reactivations: 1, payments: 2,
      revenue: { EUR: 500, USD: 1000 },
    });
    expect(spec.timeline('c').slice(2)).toEqual([
      '2024-03-01 CustomerChurned converted→churned',
      '2024-06-01 CustomerReactivated churned→retained',
    ]);
    expect(spec.customer('c', '2024-08-01T00:00:00Z')).toMatchObject({ stage: 'churned', churnedAt: '2024-07-31T00:00:00.000Z' });
  });

  test('failures before conversion or while churned are ignored', () => {
    const spec = given([
      tp.registration('c', '2024-01-01T00:00:00Z'),
      tp.failure('c', '2024-01-02T00:00:00Z'),
      tp.purchase('c', '2024-01-03T00:00:00Z'),
      tp.failure('c', '2024-04-01T00:00:00Z'),
    ]);
    expect(spec.customer('c', '2024-01-10T00:00:00Z').stage).toBe('converted');
    expect(spec.customer('c', '2024-05-01T00:00:00Z')).toMatchObject({ stage: 'churned', churnReason: 'inactivity' });
  });

  test('a late payment undoes a churn it precedes', () => {
    const before = given(base).customer('c', '2024-04-01T00:00:00Z');
    const after = given([...base, tp.renewal('c', '2024-02-15T00:00:00Z')]).customer('c', '2024-04-01T00:00:00Z');
    expect(before.stage).toBe('churned');
    expect(after).toMatchObject({ stage: 'retained', churnedAt: null });
  });

  test('durations are exact days, not calendar days, across a DST change', () => {
    const settings = config({ churn: { inactivityDays: 1 } });
    const spec = given([tp.purchase('c', '2024-03-30T12:00:00+01:00')], settings);
    expect(spec.customer('c', '2024-03-31T12:00:00+01:00')).toMatchObject({ stage: 'churned', churnedAt: '2024-03-31T11:00:00.000Z' });
  });
});

describe('loyalty and stages (SPEC §3)', () => {
  test('minPayments paying events make a customer loyal, for life', () => {
    const payments = ['01', '02', '03', '04'].map((m) => tp.renewal('c', `2024-${m}-01T00:00:00Z`));
    const spec = given(payments);
    expect(spec.customer('c', '2024-03-15T00:00:00Z').stage).toBe('retained');
    expect(spec.customer('c', '2024-04-01T00:00:00Z').stage).toBe('loyal');
    expect(spec.customer('c', '2024-07-01T00:00:00Z').stage).toBe('churned');
    expect(spec.timeline('c')).toContain('2024-04-01 CustomerBecameLoyal retained→loyal');
  });

  test('a referral after conversion makes a customer loyal; one before does not', () => {
    const spec = given([
      tp.referral('early', '2024-01-01T00:00:00Z'),
      tp.purchase('early', '2024-01-02T00:00:00Z'),
      tp.purchase('sameInstant', '2024-01-02T00:00:00Z'),
      tp.referral('sameInstant', '2024-01-02T00:00:00Z'),
    ]);
    expect(spec.customer('early')).toMatchObject({ stage: 'converted', referrals: 1 });
    expect(spec.customer('sameInstant')).toMatchObject({ stage: 'loyal', referrals: 1 });
  });

  test('with minPayments 2 the second payment passes retained and loyal at once', () => {
    const spec = given([tp.purchase('c', '2024-01-01T00:00:00Z'), tp.renewal('c', '2024-01-15T00:00:00Z')], config({ loyalty: { minPayments: 2 } }));
    expect(spec.timeline('c').slice(2)).toEqual([
      '2024-01-15 CustomerRetained converted→retained',
      '2024-01-15 CustomerBecameLoyal retained→loyal',
    ]);
  });
});
