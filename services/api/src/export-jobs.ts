import type { CustomerRow, LifecycleConfig } from '@lifecycle/contracts';
import { exportChannels, exportChurnRate, exportChurns, exportCohorts, exportCohortsByChannel, exportProjection, exportReferrals, exportStages } from '@lifecycle/projection';
import type { SqlDatabase } from '@lifecycle/sql';
import { compareCodePoints } from './customer-pages.js';
import { csvLayout, currenciesOfColumns } from './csv.js';

export type Format = 'json' | 'ndjson' | 'csv';

export const CUSTOMER_COLUMNS = ['customerId', 'stage', 'acquiredAt', 'cohort', 'channel', 'convertedAt', 'churnedAt', 'churnReason', 'payments', 'reactivations', 'referrals', 'revenue'];
const COHORT_COLUMNS = ['cohort', 'periodIndex', 'period', 'size', 'converted', 'active', 'churned', 'reactivated', 'revenue'];
const CHANNEL_COHORT_COLUMNS = ['cohort', 'channel', ...COHORT_COLUMNS.slice(1)];
const CHANNEL_COLUMNS = ['channel', 'period', 'impressions', 'cost', 'acquired', 'revenue', 'cpm', 'cpa'];

const TABLES = {
  cohorts: { columns: COHORT_COLUMNS, rows: async (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => (await exportCohorts(db, config, asOf)).rows },
  'cohorts-by-channel': { columns: CHANNEL_COHORT_COLUMNS, rows: async (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => (await exportCohortsByChannel(db, config, asOf)).rows },
  channels: { columns: CHANNEL_COLUMNS, rows: async (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => (await exportChannels(db, config, asOf)).rows },
  churns: { columns: ['period', 'reason', 'churns'], rows: async (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => (await exportChurns(db, config, asOf)).rows },
  stages: { columns: ['stage', 'customers'], rows: async (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => (await exportStages(db, config, asOf)).rows },
  referrals: { columns: ['referrer', 'referred', 'converted', 'revenue'], rows: async (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => (await exportReferrals(db, config, asOf)).rows },
} satisfies Record<string, { columns: string[]; rows: (db: SqlDatabase, config: LifecycleConfig, asOf?: number) => Promise<object[]> }>;

export type ExportTable = keyof typeof TABLES;

/** One computation from the customers' histories (SPEC §7), as a route asks for it. Plain data: it crosses to a worker thread. */
export type ExportJob =
  | { kind: 'table'; table: ExportTable; asOf?: number; format: Format }
  | { kind: 'churn-rate'; asOf?: number; windowDays: number }
  | { kind: 'customers'; asOf?: number; format: Format; page?: CustomerPageRequest };

export interface CustomerPageRequest {
  after?: string;
  limit: number;
}

/** An answer: its content type, headers (a `Link` to the next page), and its body in pieces. */
export interface ExportAnswer {
  contentType: string;
  headers: Record<string, string>;
  body: AsyncIterable<string> | Iterable<string>;
}

const DAY_MS = 86_400_000;
// Rows per piece of a long NDJSON or CSV answer: the pieces go out as they are written.
const ROWS_PER_PIECE = 500;

export const CONTENT_TYPES: Record<Format, string> = {
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson',
  csv: 'text/csv; charset=utf-8',
};

/** The rows of a table in `format`, in pieces (a JSON array is one piece). */
export function* formatRows(rows: readonly object[], columns: readonly string[], format: Format, currencies?: ReadonlyMap<string, readonly string[]>): Generator<string> {
  if (format === 'json') {
    yield JSON.stringify(rows);
    return;
  }
  const line = format === 'ndjson' ? (row: object) => `${JSON.stringify(row)}\n` : undefined;
  const layout = format === 'csv' ? csvLayout(columns, currencies ?? currenciesOfColumns(rows, columns)) : undefined;
  if (layout !== undefined) yield layout.header;
  for (let start = 0; start < rows.length; start += ROWS_PER_PIECE) {
    yield rows
      .slice(start, start + ROWS_PER_PIECE)
      .map(line ?? layout!.line)
      .join('');
  }
}

/** The link to the page after `last`, keeping the request's instant and format. */
function nextPageLink(asOf: number | undefined, format: Format, limit: number, last: string): string {
  const query = new URLSearchParams();
  if (asOf !== undefined) query.set('asOf', new Date(asOf).toISOString());
  if (format !== 'json') query.set('format', format);
  query.set('limit', String(limit));
  query.set('after', last);
  return `/customers?${query.toString()}`;
}

/**
 * A page of customers (or all of them) cut from rows in code-point order: JSON is
 * `{"customers": [...], "next": link | null}`, NDJSON and CSV carry the link in a `Link` header.
 */
export function customerAnswer(rows: readonly CustomerRow[], job: { asOf?: number; format: Format; page?: CustomerPageRequest }, currencies?: readonly string[]): ExportAnswer {
  const { format, page } = job;
  let shown = rows;
  let next: string | null = null;
  if (page !== undefined) {
    const start = page.after === undefined ? 0 : firstAfter(rows, page.after);
    shown = rows.slice(start, start + page.limit);
    if (start + page.limit < rows.length) next = nextPageLink(job.asOf, format, page.limit, shown[shown.length - 1]!.customerId);
  }
  const headers: Record<string, string> = next !== null && format !== 'json' ? { link: `<${next}>; rel="next"` } : {};
  const body =
    format === 'json'
      ? [JSON.stringify({ customers: shown, next })]
      : formatRows(shown, CUSTOMER_COLUMNS, format, currencies === undefined ? undefined : new Map([['revenue', currencies]]));
  return { contentType: CONTENT_TYPES[format], headers, body };
}

/** Index of the first row whose customerId comes after `after` (rows in code-point order). */
function firstAfter(rows: readonly CustomerRow[], after: string): number {
  let low = 0;
  let high = rows.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareCodePoints(rows[middle]!.customerId, after) <= 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Runs a job on `db` in this thread: the computation of the projection package, then the answer
 * in the format asked. The same code runs in the export workers (export-worker.ts).
 */
export async function runExportJob(db: SqlDatabase, config: LifecycleConfig, job: ExportJob): Promise<ExportAnswer> {
  switch (job.kind) {
    case 'table': {
      const table = TABLES[job.table];
      return { contentType: CONTENT_TYPES[job.format], headers: {}, body: formatRows(await table.rows(db, config, job.asOf), table.columns, job.format) };
    }
    case 'churn-rate': {
      const { asOf, rate } = await exportChurnRate(db, config, job.windowDays * DAY_MS, job.asOf);
      const answer = { asOf: asOf === null ? null : new Date(asOf).toISOString(), windowDays: job.windowDays, rate };
      return { contentType: CONTENT_TYPES.json, headers: {}, body: [JSON.stringify(answer)] };
    }
    case 'customers': {
      const rows = (await exportProjection(db, config, job.asOf)).customers;
      // The projection sorts by UTF-16 code units; pages are cut in code-point order (customer-pages.ts).
      rows.sort((a, b) => compareCodePoints(a.customerId, b.customerId));
      return customerAnswer(rows, job);
    }
    default: {
      const never: never = job;
      throw new Error(`unknown export job ${JSON.stringify(never)}`);
    }
  }
}
