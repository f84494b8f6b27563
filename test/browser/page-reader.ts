// What a person sees on the page, read from its DOM text, and what the API says it should be.
import type { Page } from 'puppeteer-core';

/**
 * The little of the DOM that the functions run in the page use. The tests compile without the DOM
 * library: it would change the types of Node's own fetch for every other test.
 */
export interface DomNode {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  hidden: boolean;
  value: string;
  querySelector(selector: string): DomNode | null;
  querySelectorAll(selector: string): Iterable<DomNode>;
  dispatchEvent(event: Event): boolean;
}

export interface CohortRow {
  cohort: string;
  channel?: string;
  periodIndex: number;
  size: number;
  active: number;
}

/** A heatmap row: its cohort (and channel), the size in its header, its cells' text by period index. */
export interface HeatmapRow {
  cohort: string;
  channel: string | null;
  size: string;
  cells: [number, string][];
}

export const readHeatmap = (tab: Page): Promise<HeatmapRow[]> =>
  tab.$$eval('#heatmap [role="row"][data-cohort]', (rows: DomNode[]) =>
    rows.map((row) => ({
      cohort: row.dataset['cohort'] ?? '',
      channel: row.dataset['channel'] ?? null,
      size: row.querySelector('[role="rowheader"] .size')?.textContent ?? '',
      cells: [...row.querySelectorAll('[role="cell"]')].map((cell): [number, string] => [Number(cell.dataset['periodIndex']), cell.textContent ?? '']),
    })),
  );

/** The heatmap /cohorts (or /cohorts?by=channel) rows make: retention = active / size, as a whole percentage. */
export function heatmapOf(rows: CohortRow[]): HeatmapRow[] {
  const expected: HeatmapRow[] = [];
  for (const row of rows) {
    const channel = row.channel ?? null;
    let last = expected.at(-1);
    if (last === undefined || last.cohort !== row.cohort || last.channel !== channel) {
      last = { cohort: row.cohort, channel, size: row.size.toLocaleString('en-US'), cells: [] };
      expected.push(last);
    }
    last.cells.push([row.periodIndex, `${Math.round((100 * row.active) / row.size)}%`]);
  }
  return expected;
}

type Amounts = Record<string, number>;
export interface ChannelRow {
  channel: string;
  period: string;
  impressions: number;
  cost: Amounts;
  acquired: number;
  revenue: Amounts;
  cpm: Amounts;
  cpa: Amounts | null;
}

/** A row of the channel table, amounts read back into minor units; ROAS as shown (a ratio). */
export type ChannelTableRow = Omit<ChannelRow, 'cpa'> & { cpa: Amounts; roas: Amounts };

export async function readChannelTable(tab: Page): Promise<ChannelTableRow[]> {
  const rows = await tab.$$eval('#channels tbody tr', (trs: DomNode[]) =>
    trs.map((tr) => {
      const text = (column: string) => tr.querySelector(`[data-column="${column}"]`)?.textContent ?? '';
      // Each amount reads `EUR 25.82`: the currency, then the figure.
      const amounts = (column: string) => [...tr.querySelectorAll(`[data-column="${column}"] .money`)].map((line) => line.textContent ?? '');
      return {
        channel: text('channel'),
        period: text('period'),
        impressions: text('impressions'),
        acquired: text('acquired'),
        cost: amounts('cost'),
        cpm: amounts('cpm'),
        cpa: amounts('cpa'),
        revenue: amounts('revenue'),
        roas: amounts('roas'),
      };
    }),
  );
  return rows.map((row) => ({
    channel: row.channel,
    period: row.period,
    impressions: count(row.impressions),
    cost: minorUnits(row.cost),
    acquired: count(row.acquired),
    revenue: minorUnits(row.revenue),
    cpm: minorUnits(row.cpm),
    cpa: minorUnits(row.cpa),
    roas: Object.fromEntries(row.roas.map((line) => parseAmount(line, /^([A-Z]{3}) ([\d,]+\.\d\d)×$/)).map(([currency, figure]) => [currency, Number(figure.replace(/,/g, ''))])),
  }));
}

const count = (text: string) => Number(text.replace(/,/g, ''));

function parseAmount(line: string, pattern: RegExp): [string, string] {
  const match = pattern.exec(line);
  if (!match) throw new Error(`not an amount: ${JSON.stringify(line)}`);
  return [match[1]!, match[2]!];
}

/** `EUR 1,234.56` → {EUR: 123456}: the figure shown in the major unit, back in minor units. */
function minorUnits(lines: string[]): Amounts {
  return Object.fromEntries(
    lines.map((line) => {
      const [currency, figure] = parseAmount(line, /^([A-Z]{3}) ([\d,]+(?:\.(\d+))?)$/);
      const digits = figure.split('.')[1]?.length ?? 0;
      return [currency, Math.round(Number(figure.replace(/,/g, '')) * 10 ** digits)];
    }),
  );
}

export interface ReferralRow {
  referrer: string;
  referred: number;
  converted: number;
  revenue: Amounts;
}

/** A row of the referral table: the figures as shown, amounts read back into minor units. */
export type ReferralTableRow = ReferralRow & { rate: string };

export async function readReferrals(tab: Page): Promise<ReferralTableRow[]> {
  const rows = await tab.$$eval('#referrals tbody tr', (trs: DomNode[]) =>
    trs.map((tr) => {
      const text = (column: string) => tr.querySelector(`[data-column="${column}"]`)?.textContent ?? '';
      return {
        referrer: text('referrer'),
        referred: text('referred'),
        converted: text('converted'),
        rate: text('rate'),
        revenue: [...tr.querySelectorAll('[data-column="revenue"] .money')].map((line) => line.textContent ?? ''),
      };
    }),
  );
  return rows.map((row) => ({ referrer: row.referrer, referred: count(row.referred), converted: count(row.converted), rate: row.rate, revenue: minorUnits(row.revenue) }));
}

/**
 * The referral table /referrals makes, in the page's default order (most referred first, then most
 * converted, then by id), with each conversion rate as a whole percentage.
 */
export function referralTableOf(rows: ReferralRow[]): ReferralTableRow[] {
  const byId = (a: ReferralRow, b: ReferralRow) => (a.referrer < b.referrer ? -1 : a.referrer > b.referrer ? 1 : 0);
  return [...rows]
    .sort((a, b) => b.referred - a.referred || b.converted - a.converted || byId(a, b))
    .map((row) => ({ ...row, rate: `${Math.round((100 * row.converted) / row.referred)}%` }));
}

/** The rolling churn rate figures as shown, by window in days: `14.6%`, or `—` without a base. */
export const readChurnRates = (tab: Page): Promise<Record<string, string>> =>
  tab.$$eval('#churn-rate [data-window-days]', (tiles: DomNode[]) =>
    Object.fromEntries(tiles.map((tile) => [tile.dataset['windowDays'] ?? '', tile.querySelector('.figure')?.textContent ?? ''])),
  );

/** How the page shows a /churn-rate answer's rate. */
export const churnRateText = (rate: number | null) => (rate === null ? '—' : `${(100 * rate).toFixed(1)}%`);

/** A row of the customer's stage changes: its revision, event type and the text of its cells. */
export const readLifecycle = (tab: Page) =>
  tab.$$eval('#customer table.lifecycle tbody tr', (trs: DomNode[]) =>
    trs.map((tr) => ({
      revision: Number(tr.dataset['revision']),
      type: tr.dataset['type'] ?? '',
      cells: [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''),
    })),
  );

/** Sets the as-of picker as a person would (the picker fires `change`) and waits for every view to be redrawn. */
export async function pickAsOf(tab: Page, local: string): Promise<string> {
  await tab.$eval(
    '#as-of',
    (input: DomNode, value) => {
      input.value = value;
      input.dispatchEvent(new Event('change', { bubbles: true }));
    },
    local,
  );
  const asOf = `${local}Z`;
  await tab.waitForSelector(`html[data-state="ready"][data-as-of="${asOf}"]`);
  return asOf;
}
