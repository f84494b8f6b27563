import type { FastifyInstance } from 'fastify';
import { parseLifecycleConfig } from '@lifecycle/contracts';
import { eventStoreMigrations } from '@lifecycle/eventstore';
import { ingestLines } from '@lifecycle/projection';
import { readModelMigrations } from '@lifecycle/readmodel';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';
import { buildApi, toCsv } from '@lifecycle/api';

const config = parseLifecycleConfig({});
const money = (amountMinor: number) => ({ amountMinor, currency: 'USD' });
// 128 characters, the contract's limit (192 UTF-16 code units); percent-encoded 1344 characters,
// over fastify's default 100.
const LONG_ID = '€'.repeat(64) + '😀'.repeat(64);
const touchpoints = [
  { id: 'i1', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', anonymousId: 'v', properties: { channel: 'social', cost: { amountMinor: 250, currency: 'EUR' } } },
  { id: 'r1', type: 'registration', occurredAt: '2024-01-02T00:00:00Z', customerId: 'a', properties: { channel: 'social' } },
  { id: 'p1', type: 'purchase', occurredAt: '2024-01-03T00:00:00Z', customerId: 'a', properties: { orderId: 'o1', amount: money(1000) } },
  { id: 'r2', type: 'registration', occurredAt: '2024-01-05T00:00:00Z', customerId: '=1+2', properties: { channel: '@SUM(A1)' } },
  { id: 'r3', type: 'registration', occurredAt: '2024-01-06T00:00:00Z', customerId: LONG_ID, properties: { referredBy: 'a' } },
];

interface Answer {
  status: number;
  type: string | null;
  text: string;
  json: () => Record<string, any>;
}

/** Serves `db` over real HTTP: fastify's inject() needs an ESM-only dependency (cookie) jest cannot load on Node 20. */
async function serve(db: SqlDatabase) {
  const app = await buildApi({ db, config });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const get = async (path: string): Promise<Answer> => {
    const response = await fetch(base + path);
    const text = await response.text();
    return { status: response.status, type: response.headers.get('content-type'), text, json: () => JSON.parse(text) };
  };
  return { app, get };
}

describe('the read-model API', () => {
  let db: SqlDatabase;
  let app: FastifyInstance;
  let get: (path: string) => Promise<Answer>;
  let queries = 0;

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db, [...eventStoreMigrations, ...readModelMigrations]);
    const summary = await ingestLines(db, touchpoints.map((t) => JSON.stringify(t)), { config });
    expect(summary).toMatchObject({ accepted: touchpoints.length, rejected: {} });
    // Counts the API's statements, to show which answers need none.
    const counted: SqlDatabase = { ...db, query: (sql, params) => (queries++, db.query(sql, params)) };
    ({ app, get } = await serve(counted));
  });
  afterAll(async () => {
    await app.close();
    await db.close();
  });

  describe('query parameters', () => {
    test.each([
      ['/customers?asof=2024-01-01T00:00:00Z', 'unknown query parameter "asof"; known: asOf, format, limit, after'],
      ['/cohorts?fromat=csv', 'unknown query parameter "fromat"; known: asOf, format, by'],
      ['/customers/a?asOf=2024-01-01T00:00:00Z', 'unknown query parameter "asOf"; known: none'],
      ['/cohorts?toString=1', 'unknown query parameter "toString"; known: asOf, format, by'],
      ['/cohorts?__proto__=1', 'unknown query parameter "__proto__"; known: asOf, format, by'],
    ])('an unknown one is a 400 naming it and the known ones: %s', async (path, message) => {
      const answer = await get(path);
      expect(answer.status).toBe(400);
      expect(answer.json()).toEqual({ error: 'bad_request', message });
    });

    test.each([
      ['/cohorts?format=xml', 'format'],
      ['/customers?format=', 'format'],
      ['/customers?format=csv&format=json', 'format'],
      ['/customers?asOf=yesterday', 'asOf'],
      ['/customers?asOf=2024-01-01', 'asOf'],
      ['/customers?asOf=2024-02-30T00:00:00Z', 'asOf'],
      ['/customers?asOf=2016-12-31T23:59:60Z', 'asOf'], // Date.parse gives NaN: it answered 200 []
      ['/customers?asOf=9999-12-31T00:00:00Z', 'asOf'], // answered after seconds of empty cohort periods
      ['/customers?asOf=1969-12-31T23:59:59Z', 'asOf'],
    ])('a bad value is a 400 naming the parameter: %s', async (path, name) => {
      const answer = await get(path);
      expect(answer.status).toBe(400);
      expect(answer.json()).toEqual({ error: 'bad_request', message: expect.stringContaining(name) });
    });

    test('good values are used', async () => {
      const before = await get('/customers?asOf=2024-01-04T01:00:00%2B01:00&format=ndjson');
      expect(before.status).toBe(200);
      expect(before.type).toContain('application/x-ndjson');
      expect(before.text.trimEnd().split('\n').map((l) => JSON.parse(l).customerId)).toEqual(['a']);
      const cohorts = await get('/cohorts?format=json');
      expect(cohorts.status).toBe(200);
      expect(cohorts.json()).toEqual(expect.arrayContaining([expect.objectContaining({ cohort: '2024-01', size: 3 })]));
    });
  });

  describe('GET /customers/:id', () => {
    test('every id the contract allows can be fetched: 128 characters, multi-byte', async () => {
      expect([...LONG_ID]).toHaveLength(128);
      expect(encodeURIComponent(LONG_ID).length).toBeGreaterThan(1000);
      const answer = await get(`/customers/${encodeURIComponent(LONG_ID)}`);
      expect(answer.status).toBe(200);
      expect(answer.json().customer.customerId).toBe(LONG_ID);
      expect(answer.json().stream.length).toBeGreaterThan(0);
    });

    // The contract's own words (IdentifierSchema): the API and the intake refuse the same ids.
    const control = '(must not contain control characters or unpaired surrogates)';
    test.each([
      ['%00', `"\\u0000" ${control}`],
      ['a%1Fb', `"a\\u001fb" ${control}`],
      ['%7F', `"\\u007f" ${control}`],
      ['%C2%9F', `"\\u009f" ${control}`],
      ['', '"" (Too small: expected string to have >=1 characters)'],
      ['x'.repeat(129), `"${'x'.repeat(64)}"… (Too big: expected string to have <=128 characters)`],
    ])('an invalid id is a 400 before any database query: /customers/%s', async (id, detail) => {
      const before = queries;
      const answer = await get(`/customers/${id}`);
      expect(answer.status).toBe(400);
      expect(answer.json()).toEqual({ error: 'bad_request', message: `not a valid customer id: ${detail}` });
      expect(queries).toBe(before);
    });

    test('a path over any valid id, or not UTF-8 (an unpaired surrogate), is a 400 that does not echo it', async () => {
      const long = await get(`/customers/${'x'.repeat(2000)}`);
      expect(long.status).toBe(400);
      expect(long.json()).toEqual({ error: 'bad_request', message: 'not a valid customer id: longer than 128 characters' });
      const surrogate = await get('/customers/a%ED%A0%80');
      expect(surrogate.status).toBe(400);
      expect(surrogate.json().error).toBe('bad_request');
      expect(surrogate.text).not.toContain('%ED');
    });

    test('an unknown valid id is a 404', async () => {
      const answer = await get('/customers/nobody');
      expect(answer.status).toBe(404);
      expect(answer.json()).toEqual({ error: 'not_found', message: 'no customer "nobody"' });
    });
  });

  describe('channel economics and cohorts by channel (SPEC §4, §7)', () => {
    test('GET /channels: per channel and period, the impressions (a visitor never linked counts), cost, acquisitions, revenue, CPM, CPA', async () => {
      const answer = await get('/channels');
      expect(answer.status).toBe(200);
      expect(answer.json()).toEqual([
        { channel: '@SUM(A1)', period: '2024-01', impressions: 0, cost: {}, acquired: 1, revenue: {}, cpm: {}, cpa: {} },
        { channel: 'referral', period: '2024-01', impressions: 0, cost: {}, acquired: 1, revenue: {}, cpm: {}, cpa: {} },
        { channel: 'social', period: '2024-01', impressions: 1, cost: { EUR: 250 }, acquired: 1, revenue: { USD: 1000 }, cpm: { EUR: 250000 }, cpa: { EUR: 250 } },
      ]);
      // Before anyone was acquired: the impression alone.
      expect((await get('/channels?asOf=2024-01-01T12:00:00Z&format=ndjson')).text).toBe(
        '{"channel":"social","period":"2024-01","impressions":1,"cost":{"EUR":250},"acquired":0,"revenue":{},"cpm":{"EUR":250000},"cpa":null}\n',
      );
    });

    test('GET /cohorts?by=channel: a cohort table per acquisition channel; another value of by is a 400', async () => {
      const rows = (await get('/cohorts?by=channel')).json();
      expect(rows.map((r: { cohort: string; channel: string; size: number }) => `${r.cohort} ${r.channel} ${r.size}`)).toEqual(['2024-01 @SUM(A1) 1', '2024-01 referral 1', '2024-01 social 1']);
      expect(Object.keys(rows[0])).toEqual(['cohort', 'channel', 'periodIndex', 'period', 'size', 'converted', 'active', 'churned', 'reactivated', 'revenue']);
      const wrong = await get('/cohorts?by=campaign');
      expect(wrong.status).toBe(400);
      expect(wrong.json().message).toBe('by must be one of channel; got "campaign"');
    });
  });

  describe('churns by reason and customers by stage', () => {
    test('GET /stages and GET /churns, at the watermark and later (a churns by inactivity on 03-03)', async () => {
      const stages = (at: string) => get(`/stages${at}`).then((a) => Object.fromEntries(a.json().map((r: { stage: string; customers: number }) => [r.stage, r.customers])));
      expect(await stages('')).toEqual({ churned: 0, at_risk: 0, loyal: 0, retained: 0, converted: 1, acquired: 2, reached: 0 });
      expect(await stages('?asOf=2024-04-01T00:00:00Z')).toEqual({ churned: 1, at_risk: 0, loyal: 0, retained: 0, converted: 0, acquired: 2, reached: 0 });
      expect((await get('/churns')).json()).toEqual([]);
      expect((await get('/referrals')).json()).toEqual([{ referrer: 'a', referred: 1, converted: 0, revenue: {} }]);
      // a, converted on 01-03, churns on 03-03; it is the only customer converted by 02-01.
      expect((await get('/churn-rate?asOf=2024-04-01T00:00:00Z&windowDays=60')).json()).toEqual({ asOf: '2024-04-01T00:00:00.000Z', windowDays: 60, rate: 1 });
      expect((await get('/churn-rate')).json()).toEqual({ asOf: '2024-01-06T00:00:00.000Z', windowDays: 30, rate: null });
      const bad = await get('/churn-rate?windowDays=0');
      expect(bad.status).toBe(400);
      expect(bad.json().message).toBe('windowDays must be a whole number of days from 1 to 3660; got "0"');
      expect((await get('/churns?asOf=2024-04-01T00:00:00Z&format=csv')).text).toBe('period,reason,churns\r\n2024-03,inactivity,1\r\n');
    });
  });

  describe('CSV', () => {
    test('cells that would run as spreadsheet formulas start with a quote', async () => {
      const answer = await get('/customers?format=csv');
      expect(answer.status).toBe(200);
      expect(answer.type).toContain('text/csv');
      const row = answer.text.split('\r\n').find((line) => line.includes('SUM'));
      expect(row).toMatch(/^'=1\+2,acquired,2024-01-05T00:00:00.000Z,2024-01,'@SUM\(A1\),/);
    });

    test('amounts by currency are one column per currency that appears, empty where a row has none', async () => {
      const answer = await get('/channels?format=csv');
      expect(answer.text.split('\r\n')).toEqual([
        'channel,period,impressions,cost_EUR,acquired,revenue_USD,cpm_EUR,cpa_EUR',
        "'@SUM(A1),2024-01,0,,1,,,",
        'referral,2024-01,0,,1,,,',
        'social,2024-01,1,250,1,1000,250000,250',
        '',
      ]);
      const customers = (await get('/customers?format=csv')).text.split('\r\n');
      expect(customers[0]).toBe('customerId,stage,acquiredAt,cohort,channel,convertedAt,churnedAt,churnReason,payments,reactivations,referrals,revenue_USD');
      expect(customers.find((line) => line.startsWith('a,'))).toBe('a,converted,2024-01-02T00:00:00.000Z,2024-01,social,2024-01-03T00:00:00.000Z,,,1,0,0,1000');
      expect(toCsv([{ m: { USD: 1, EUR: 2 } }, { m: null }, { m: {} }], ['m']).split('\r\n')).toEqual(['m_EUR,m_USD', '2,1', ',', ',', '']);
    });

    test('every dangerous first character, quoted where CSV needs it; numbers unchanged', () => {
      const rows = [{ v: '=A1' }, { v: '+1' }, { v: '-1' }, { v: '@x' }, { v: '\tx' }, { v: '\rx' }, { v: '=a,"b"' }, { v: -1 }, { v: 2.5 }, { v: 'a=b' }];
      expect(toCsv(rows, ['v']).split('\r\n')).toEqual(['v', "'=A1", "'+1", "'-1", "'@x", "'\tx", `"'\rx"`, `"'=a,""b"""`, '-1', '2.5', 'a=b', '']);
    });
  });

  test('a database error is a 500 without its message', async () => {
    const failing: SqlDatabase = {
      ...db,
      query: async () => {
        throw Object.assign(new Error('relation "customers" does not exist'), { code: '42P01' });
      },
    };
    const broken = await serve(failing);
    try {
      for (const path of ['/customers', '/customers/a', '/health']) {
        const answer = await broken.get(path);
        expect(answer.status).toBe(500);
        expect(answer.json()).toEqual({ error: 'internal', message: 'internal error' });
      }
    } finally {
      await broken.app.close();
    }
  });
});
