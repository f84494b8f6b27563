import { mkdir } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'puppeteer-core';
import { KeyRing, newApiKey } from '@lifecycle/access';
import { buildApi } from '@lifecycle/api';
import { parseLifecycleConfig, type LifecycleConfig } from '@lifecycle/contracts';
import { eventStoreMigrations } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestLines } from '@lifecycle/projection';
import { readModelMigrations } from '@lifecycle/readmodel';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';
import { launchChromium, openTab, screenshot, type Expected } from './chromium.js';
import {
  churnRateText,
  heatmapOf,
  pickAsOf,
  readChannelTable,
  readChurnRates,
  readHeatmap,
  readLifecycle,
  readReferrals,
  referralTableOf,
  type ChannelRow,
  type CohortRow,
  type DomNode,
  type ReferralRow,
} from './page-reader.js';

// The analyst's page in a real browser, checked against the API it reads: what a person sees.
const ARTIFACTS = 'test-artifacts';
const touchpoints = [...generateTouchpoints({ customers: 400, seed: 9, months: 8 })].map((touchpoint) => JSON.stringify(touchpoint));
// The service requires keys (README "Security"): the analyst's, and one that may only write.
const analyst = newApiKey('analyst', ['read']);
const writer = newApiKey('writer', ['ingest']);
const KEY_STORAGE = 'lifecycle.apiKey';
// The windows of the rolling churn rate the page shows, in days; the referrers it shows until asked for all.
const WINDOWS = [7, 30, 90];
const TOP_REFERRERS = 20;

interface Served {
  base: string;
  api: <T>(path: string) => Promise<T>;
  close: () => Promise<void>;
}

/** The API with its page over real HTTP on a free port, over a store holding `lines`, behind API keys. */
async function serve(config: LifecycleConfig, lines: string[]): Promise<Served> {
  const db: SqlDatabase = await openPglite();
  await migrate(db, [...eventStoreMigrations, ...readModelMigrations]);
  await ingestLines(db, lines, { config });
  const access = { kind: 'keys', ring: new KeyRing([analyst.key, writer.key]), file: 'test' } as const;
  const app: FastifyInstance = await buildApi({ db, config, access });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    base,
    api: async <T>(path: string) => {
      const response = await fetch(base + path, { headers: { authorization: `Bearer ${analyst.secret}` } });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    },
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}

/** What the churn-rate figures should read, by window, for the API's answers at `asOf` (the latest without). */
async function churnRates(served: Served, asOf?: string): Promise<Record<string, string>> {
  const rates: Record<string, string> = {};
  // One after the other: the service computes two at once and refuses a third (503).
  for (const windowDays of WINDOWS) {
    const { rate } = await served.api<{ rate: number | null }>(`/churn-rate?windowDays=${windowDays}${asOf === undefined ? '' : `&asOf=${asOf}`}`);
    rates[String(windowDays)] = churnRateText(rate);
  }
  return rates;
}

let browser: Browser;
const tabs: { tab: Page; problems: string[] }[] = [];

/** The key as the page keeps it once an analyst entered it in this tab (the key form is tested on its own). */
// Run in the page, as text: the tests compile without the DOM library.
const keyEntered = (secret: string) => (tab: Page) => tab.evaluateOnNewDocument(`sessionStorage.setItem(${JSON.stringify(KEY_STORAGE)}, ${JSON.stringify(secret)})`);
const heldKey = (tab: Page) => tab.evaluate(`sessionStorage.getItem(${JSON.stringify(KEY_STORAGE)})`);

/** Opens the page (with the analyst's key entered) and waits until every view is drawn; its problems are checked after the test. */
async function openPage(served: Served, expected?: Expected): Promise<Page> {
  const opened = await openTab(browser, `${served.base}/`, expected, keyEntered(analyst.secret));
  tabs.push(opened);
  // Well within the test's time: a page that never gets ready fails with what went wrong.
  await opened.tab.waitForSelector('html[data-state="ready"]', { timeout: 15_000 }).catch((error: Error) => {
    throw new Error(`the page did not get ready: ${error.message}; problems: ${opened.problems.join('; ') || 'none'}`);
  });
  return opened.tab;
}

beforeAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
});
afterAll(() => browser?.close());
afterEach(async () => {
  const opened = tabs.splice(0);
  await Promise.all(opened.map(({ tab }) => tab.close()));
  // Any console error (a script refused by the content security policy too), uncaught exception or failed request.
  expect(opened.flatMap(({ problems }) => problems)).toEqual([]);
});

describe('the analyst page, monthly cohorts', () => {
  let served: Served;
  beforeAll(async () => {
    served = await serve(parseLifecycleConfig({}), touchpoints);
  });
  afterAll(() => served?.close());

  test('the page and its assets are served with a content security policy; other paths stay the API\'s', async () => {
    for (const [path, type] of [['/', 'text/html'], ['/assets/main.js', 'javascript'], ['/assets/style.css', 'text/css']] as const) {
      // The page's files are open (they hold no data); what they read needs a key.
      const response = await fetch(served.base + path);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain(type);
      expect(response.headers.get('content-security-policy')).toContain("default-src 'self'");
    }
    const missing = await fetch(`${served.base}/assets/nothing.js`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ statusCode: 404 });
    expect(await served.api('/health')).toMatchObject({ status: 'ok' });
    expect((await fetch(`${served.base}/cohorts`)).status).toBe(401);
  });

  test('without a key the page asks for one; a refused key is asked again; the key is sent as a header, never in a URL', async () => {
    const dataRoute = (url: string) => ['/cohorts', '/channels', '/churns', '/stages', '/referrals', '/churn-rate'].includes(new URL(url).pathname);
    const opened = await openTab(browser, `${served.base}/`, dataRoute);
    tabs.push(opened);
    const { tab } = opened;
    const urls: string[] = [];
    const authorizations = new Set<string>();
    tab.on('request', (request) => {
      urls.push(request.url());
      const header = request.headers()['authorization'];
      if (header !== undefined) authorizations.add(header);
    });
    await tab.waitForSelector('html[data-state="locked"] #key-form:not([hidden])');
    expect(await tab.$eval('#key-reason', (reason) => reason.textContent)).toBe('This service needs an API key that allows reading (scope read).');

    // A key that may only write is refused like an unknown one: the page does not say which.
    for (const secret of [writer.secret, 'lck_not-a-key']) {
      await tab.type('#api-key', secret);
      await tab.click('#key-form button[type="submit"]');
      await tab.waitForSelector('html[data-state="locked"] #key-form:not([hidden])');
      expect(await tab.$eval('#key-reason', (reason) => reason.textContent)).toBe(
        'The service refused this key: it is not one of its keys, or it does not allow reading. Enter another.',
      );
    }
    await tab.type('#api-key', analyst.secret);
    await tab.click('#key-form button[type="submit"]');
    await tab.waitForSelector('html[data-state="ready"]');
    expect(await readHeatmap(tab)).toEqual(heatmapOf(await served.api<CohortRow[]>('/cohorts')));
    expect(authorizations).toEqual(new Set([`Bearer ${writer.secret}`, 'Bearer lck_not-a-key', `Bearer ${analyst.secret}`]));
    for (const url of urls) expect(url).not.toContain(analyst.secret);
    expect(await heldKey(tab)).toBe(analyst.secret);
    expect(await tab.evaluate('[document.cookie, localStorage.length]')).toEqual(['', 0]);

    // Forgetting the key locks the page again.
    await tab.click('#forget-key');
    await tab.waitForSelector('html[data-state="locked"]');
    expect(await heldKey(tab)).toBeNull();
  });

  test('every cohort of /cohorts has its row with its retention in every cell, and the channel table is /channels', async () => {
    const tab = await openPage(served);
    const cohorts = await served.api<CohortRow[]>('/cohorts');
    expect(cohorts.length).toBeGreaterThan(20);
    expect(await readHeatmap(tab)).toEqual(heatmapOf(cohorts));

    const channels = await served.api<ChannelRow[]>('/channels');
    const table = await readChannelTable(tab);
    expect(table.map(({ roas: _, ...row }) => row)).toEqual(channels.map((row) => ({ ...row, cpa: row.cpa ?? {} })));
    // ROAS: revenue ÷ cost of one currency, only where both are in it, to two decimals.
    table.forEach(({ roas }, i) => {
      const { cost, revenue } = channels[i]!;
      const currencies = Object.keys(cost).filter((currency) => cost[currency]! > 0 && revenue[currency] !== undefined);
      expect(Object.keys(roas).sort()).toEqual(currencies.sort());
      for (const currency of currencies) expect(roas[currency]).toBeCloseTo(revenue[currency]! / cost[currency]!, 2);
    });
  });

  test('customers by stage are /stages, churns by reason are /churns', async () => {
    const tab = await openPage(served);
    const stages = await served.api<{ stage: string; customers: number }[]>('/stages');
    const shown = await tab.$$eval('#stages [data-stage]', (tiles: DomNode[]) => tiles.map((tile) => [tile.dataset['stage'], tile.querySelector('dd')?.textContent]));
    expect(Object.fromEntries(shown)).toEqual(Object.fromEntries(stages.map(({ stage, customers }) => [stage, customers.toLocaleString('en-US')])));

    const churns = await served.api<{ period: string; reason: string; churns: number }[]>('/churns');
    const bars = await tab.$$eval('#churns rect[data-churns]', (rects: DomNode[]) => rects.map((rect) => rect.querySelector('title')?.textContent));
    const names: Record<string, string> = { payment_failure: 'payment failure', inactivity: 'inactivity' };
    expect(churns.length).toBeGreaterThan(5);
    for (const { period, reason, churns: count } of churns) expect(bars).toContain(`${period}, ${names[reason]}: ${count.toLocaleString('en-US')}`);
  });

  test('each LTV curve ends at its cohort\'s revenue per customer, in the currency picked', async () => {
    const tab = await openPage(served);
    const cohorts = await served.api<(CohortRow & { revenue: Record<string, number> })[]>('/cohorts');
    const currencies = await tab.$$eval('#currency option', (options: DomNode[]) => options.map((option) => option.value));
    expect(currencies).toEqual(['EUR', 'GBP', 'USD']);
    for (const currency of currencies) {
      await tab.select('#currency', currency);
      const ends = await tab.$$eval('#ltv path[data-series] title', (titles: DomNode[]) => titles.map((title) => title.textContent));
      for (const cohort of new Set(cohorts.map((row) => row.cohort))) {
        const rows = cohorts.filter((row) => row.cohort === cohort);
        // Σ revenue of every period so far ÷ size, never summed across currencies.
        const ltv = rows.reduce((sum, row) => sum + (row.revenue[currency] ?? 0), 0) / rows[0]!.size / 100;
        const figure = ltv.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
        expect(ends).toContain(`${cohort}: ${figure} ${currency} after ${rows.length - 1} periods`);
      }
    }
  });

  test('the as-of picker redraws the heatmap, the channel table, the referral loop and the churn rate as of that instant', async () => {
    const tab = await openPage(served);
    const asOf = await pickAsOf(tab, '2024-05-15T12:30:45');
    const cohorts = await served.api<CohortRow[]>(`/cohorts?asOf=${asOf}`);
    expect(cohorts).not.toEqual(await served.api<CohortRow[]>('/cohorts'));
    expect(await readHeatmap(tab)).toEqual(heatmapOf(cohorts));
    const channels = await served.api<ChannelRow[]>(`/channels?asOf=${asOf}`);
    expect((await readChannelTable(tab)).map(({ roas: _, ...row }) => row)).toEqual(channels.map((row) => ({ ...row, cpa: row.cpa ?? {} })));
    expect(await tab.$eval('#status', (status) => status.textContent)).toContain('As of 2024-05-15 12:30:45 UTC');
    // The referral loop and the churn rate follow the picker too.
    const referrals = await served.api<ReferralRow[]>(`/referrals?asOf=${asOf}`);
    expect(referrals).not.toEqual(await served.api<ReferralRow[]>('/referrals'));
    expect(await readReferrals(tab)).toEqual(referralTableOf(referrals).slice(0, TOP_REFERRERS));
    const rates = await churnRates(served, asOf);
    expect(rates).not.toEqual(await churnRates(served));
    expect(await readChurnRates(tab)).toEqual(rates);

    // Back to the latest: the picker emptied, the views are the API's defaults again.
    await tab.click('#latest');
    const { watermark } = await served.api<{ watermark: string }>('/health');
    await tab.waitForSelector(`html[data-state="ready"][data-as-of="${watermark}"]`);
    expect(await readHeatmap(tab)).toEqual(heatmapOf(await served.api<CohortRow[]>('/cohorts')));
    expect(await readReferrals(tab)).toEqual(referralTableOf(await served.api<ReferralRow[]>('/referrals')).slice(0, TOP_REFERRERS));
    expect(await readChurnRates(tab)).toEqual(await churnRates(served));
  });

  test('an answer the API refuses is a readable message in the view that asked', async () => {
    const tab = await openPage(served, (url) => url.includes('asOf=2150-'));
    await tab.$eval(
      '#as-of',
      (input: DomNode, value) => {
        input.value = value;
        input.dispatchEvent(new Event('change', { bubbles: true }));
      },
      '2150-01-01T00:00',
    );
    await tab.waitForSelector('html[data-state="error"][data-as-of="2150-01-01T00:00:00Z"]');
    for (const [view, path] of [
      ['heatmap', '/cohorts'],
      ['channels', '/channels'],
      ['churns', '/churns'],
      ['stages', '/stages'],
      ['referrals', '/referrals'],
      ['churn-rate', '/churn-rate'],
    ]) {
      expect(await tab.$eval(`#${view} [role="alert"]`, (alert: DomNode) => alert.textContent)).toMatch(
        new RegExp(`^${path} answered 400: asOf must be an ISO-8601 instant with Z or an offset, from 1970`),
      );
    }
  });

  test('the referral loop is /referrals: the top referrers by customers referred, all of them on asking; a referrer opens in the lookup', async () => {
    const tab = await openPage(served);
    const referrals = await served.api<ReferralRow[]>('/referrals');
    // More referrers than the page shows at first.
    expect(referrals.length).toBeGreaterThan(TOP_REFERRERS);
    const expected = referralTableOf(referrals);
    expect(await readReferrals(tab)).toEqual(expected.slice(0, TOP_REFERRERS));
    expect(await tab.$eval('#referrals .table-foot', (foot) => foot.textContent)).toContain(`The top ${TOP_REFERRERS} of ${referrals.length} referrers`);

    await tab.click('#referrals button.show-all');
    expect(await readReferrals(tab)).toEqual(expected);
    // Sorted by another column, and back: the same rows in that column's order.
    await tab.click('#referrals button[data-sort="referrer"]');
    expect((await readReferrals(tab)).map((row) => row.referrer)).toEqual(referrals.map((row) => row.referrer).sort());
    expect(await tab.$eval('#referrals th[aria-sort]', (th) => th.textContent)).toContain('Referrer');
    await tab.click('#referrals button[data-sort="referred"]');
    expect(await readReferrals(tab)).toEqual(expected);
    await tab.click('#referrals button.show-all');
    expect(await readReferrals(tab)).toEqual(expected.slice(0, TOP_REFERRERS));

    // A referrer is a customer: a click shows it in the lookup.
    const { referrer } = expected[0]!;
    await tab.click(`#referrals tbody tr:first-child button[data-customer-id]`);
    await tab.waitForSelector(`#customer[data-state="ready"][data-customer-id="${referrer}"]`);
    expect(await tab.$eval('#customer-id', (input: DomNode) => input.value)).toBe(referrer);
    const { customer } = await served.api<{ customer: { customerId: string; stage: string } }>(`/customers/${encodeURIComponent(referrer)}`);
    expect(await tab.$eval('#customer .customer-row', (row) => row.textContent)).toContain(`Customer${customer.customerId}Stage${customer.stage.replace('_', ' ')}`);
  });

  test('the rolling churn rate is /churn-rate for 7, 30 and 90 days', async () => {
    const tab = await openPage(served);
    const rates = await churnRates(served);
    expect(Object.values(rates).every((rate) => /^\d+\.\d%$/.test(rate))).toBe(true);
    expect(await readChurnRates(tab)).toEqual(rates);
  });

  test('the by-channel toggle shows the rows of /cohorts?by=channel', async () => {
    const tab = await openPage(served);
    await tab.click('#heatmap-toggle [data-by="channel"]');
    await tab.waitForSelector('html[data-state="ready"][data-by="channel"]');
    const rows = await served.api<CohortRow[]>('/cohorts?by=channel');
    const shown = await readHeatmap(tab);
    expect(shown).toEqual(heatmapOf(rows));
    expect(new Set(shown.map((row) => row.channel)).size).toBeGreaterThan(3);
  });

  test('the customer lookup shows the stream: each stage change in order, with its cause', async () => {
    const tab = await openPage(served, (url) => url.endsWith('/customers/nobody%20here'));
    const { customers } = await served.api<{ customers: { customerId: string; reactivations: number }[] }>('/customers?limit=1000');
    // One who churned and came back: causes by touchpoint and by deadline.
    const { customerId } = customers.find((customer) => customer.reactivations > 0)!;
    await tab.type('#customer-id', customerId);
    await tab.keyboard.press('Enter');
    await tab.waitForSelector(`#customer[data-state="ready"][data-customer-id="${customerId}"]`);

    const { customer, stream } = await served.api<{ customer: { stage: string }; stream: { revision: number; type: string; data: any }[] }>(`/customers/${encodeURIComponent(customerId)}`);
    expect(await tab.$eval('#customer .customer-row', (row) => row.textContent)).toContain(customer.stage.replace('_', ' '));
    const changes = stream.filter((event) => event.type !== 'TouchpointRecorded');
    const shown = await readLifecycle(tab);
    expect(shown.map(({ revision, type }) => [revision, type])).toEqual(changes.map(({ revision, type }) => [revision, type]));
    expect(shown.map((row) => row.type)).toEqual(expect.arrayContaining(['CustomerAcquired', 'CustomerChurned', 'CustomerReactivated']));
    shown.forEach(({ cells: [revision, type, at, stages, cause] }, i) => {
      const { data } = changes[i]!;
      expect(revision).toBe(String(changes[i]!.revision));
      expect(type).toContain(changes[i]!.type);
      expect(at).toBe(`${data.at.slice(0, 10)} ${data.at.slice(11, 19)} UTC`);
      expect(stages).toBe(`${data.from ?? '—'} → ${data.to}`);
      if (data.cause.kind === 'touchpoint') expect(cause).toContain(`${data.cause.touchpointType} ${data.cause.touchpointId}`);
      else expect(cause).toContain(`${data.cause.deadline === 'inactivity' ? 'inactivity' : 'payment grace'} deadline after`), expect(cause).toContain(data.cause.after);
    });
    await screenshot(tab, `${ARTIFACTS}/page.png`);

    // An unknown id: said so in the page (its 404 is expected, not a problem).
    await tab.$eval('#customer-id', (input: DomNode) => (input.value = ''));
    await tab.type('#customer-id', 'nobody here');
    await tab.keyboard.press('Enter');
    await tab.waitForSelector('#customer[data-state="error"][data-customer-id="nobody here"]');
    expect(await tab.$eval('#customer', (view) => view.textContent)).toBe('No customer with the id “nobody here”.');
  });
});

test('day cohorts: thousands of cells, each with its retention', async () => {
  const served = await serve(parseLifecycleConfig({ cohort: { granularity: 'day' } }), touchpoints);
  try {
    const tab = await openPage(served);
    const cohorts = await served.api<CohortRow[]>('/cohorts');
    expect(cohorts.length).toBeGreaterThan(10_000);
    expect(await readHeatmap(tab)).toEqual(heatmapOf(cohorts));
    await screenshot(tab, `${ARTIFACTS}/page-day.png`);
  } finally {
    await served.close();
  }
});

test('no data yet: the page says so', async () => {
  const served = await serve(parseLifecycleConfig({}), []);
  try {
    const tab = await openPage(served);
    expect(await served.api('/health')).toEqual({ status: 'ok', watermark: null });
    expect(await tab.$eval('#banner', (banner: DomNode) => !banner.hidden && banner.textContent)).toContain('No touchpoints have been ingested yet');
    expect(await tab.$eval('#heatmap', (view) => view.textContent)).toBe('No cohort yet: no customer was acquired by this instant.');
  } finally {
    await served.close();
  }
});
