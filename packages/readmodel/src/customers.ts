import type { CustomerRow, Stage, ChurnReason } from '@lifecycle/contracts';
import type { CohortFacts, CustomerHistory } from '@lifecycle/domain';
import { bulkInsert, jsonLines, type SqlExecutor } from '@lifecycle/sql';
import { turn } from './event-loop.js';
import type { ReadModel } from './read-model.js';

/**
 * A customer as the projection keeps it: its export row and its history, from which follow what
 * it adds to the cohort cells and its next churn deadline.
 */
export interface StoredCustomer {
  row: CustomerRow;
  /** Its timed facts (null only in a row written before they were kept). */
  history: CustomerHistory | null;
  /** In a row written before histories were kept: what it added to the cohort cells. */
  legacyCohortFacts?: CohortFacts | null;
  /** The partition of the by-customer topic that owns the customer; null in the embedded store. */
  ownerPartition: number | null;
}

interface CustomerRecord {
  customer_id: string;
  stage: Stage;
  acquired_at: Date | string | null;
  cohort: string | null;
  channel: string | null;
  converted_at: Date | string | null;
  churned_at: Date | string | null;
  churn_reason: ChurnReason | null;
  payments: number;
  reactivations: number;
  referrals: number;
  revenue: Record<string, number>;
  next_deadline: number | string | null;
  cohort_facts: CohortFacts | null;
  history: string | null;
  owner_partition: number | null;
}

const iso = (value: Date | string | null): string | null => (value === null ? null : new Date(value).toISOString());

export function toCustomerRow(r: CustomerRecord): CustomerRow {
  return {
    customerId: r.customer_id,
    stage: r.stage,
    acquiredAt: iso(r.acquired_at),
    cohort: r.cohort,
    channel: r.channel,
    convertedAt: iso(r.converted_at),
    churnedAt: iso(r.churned_at),
    churnReason: r.churn_reason,
    payments: r.payments,
    reactivations: r.reactivations,
    referrals: r.referrals,
    revenue: r.revenue,
  };
}

const COLUMNS = {
  customer_id: 'text',
  stage: 'text',
  acquired_at: 'timestamptz',
  cohort: 'text',
  channel: 'text',
  converted_at: 'timestamptz',
  churned_at: 'timestamptz',
  churn_reason: 'text',
  payments: 'integer',
  reactivations: 'integer',
  referrals: 'integer',
  revenue: 'jsonb',
  next_deadline: 'bigint',
  cohort_facts: 'jsonb',
  history: 'text',
  owner_partition: 'integer',
} as const;

export async function loadCustomers(sql: SqlExecutor, ids: readonly string[]): Promise<Map<string, StoredCustomer>> {
  const found = new Map<string, StoredCustomer>();
  if (ids.length === 0) return found;
  const records = await sql.query<CustomerRecord>(
    `SELECT ${Object.keys(COLUMNS).join(', ')} FROM customers WHERE customer_id = ANY($1::text[])`,
    [ids],
  );
  for (const r of records) {
    found.set(r.customer_id, {
      row: toCustomerRow(r),
      ...(r.history === null ? { history: null, legacyCohortFacts: r.cohort_facts } : { history: JSON.parse(r.history) as CustomerHistory }),
      ownerPartition: r.owner_partition,
    });
  }
  return found;
}

/** Customers of `partitions` (all when null) whose pending churn deadline has passed by `instant` (epoch ms). */
export async function customersDueBy(sql: SqlExecutor, instant: number, partitions: readonly number[] | null = null): Promise<string[]> {
  const rows =
    partitions === null
      ? await sql.query<{ customer_id: string }>('SELECT customer_id FROM customers WHERE next_deadline <= $1', [instant])
      : await sql.query<{ customer_id: string }>('SELECT customer_id FROM customers WHERE next_deadline <= $1 AND owner_partition = ANY($2::integer[])', [
          instant,
          partitions,
        ]);
  return rows.map((r) => r.customer_id);
}

/** The owning partition of each given customer that has a row. */
export async function ownerPartitions(sql: SqlExecutor, ids: readonly string[]): Promise<Map<string, number | null>> {
  if (ids.length === 0) return new Map();
  const rows = await sql.query<{ customer_id: string; owner_partition: number | null }>(
    'SELECT customer_id, owner_partition FROM customers WHERE customer_id = ANY($1::text[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.customer_id, r.owner_partition]));
}

async function saveCustomers(sql: SqlExecutor, customers: readonly StoredCustomer[]): Promise<void> {
  const records = customers.map(({ row, history, ownerPartition }) => ({
    customer_id: row.customerId,
    stage: row.stage,
    acquired_at: row.acquiredAt,
    cohort: row.cohort,
    channel: row.channel,
    converted_at: row.convertedAt,
    churned_at: row.churnedAt,
    churn_reason: row.churnReason,
    payments: row.payments,
    reactivations: row.reactivations,
    referrals: row.referrals,
    revenue: row.revenue,
    // Indexed, so that due customers are found without reading histories.
    next_deadline: history?.pending?.[0] ?? null,
    cohort_facts: null,
    history: history === null ? null : JSON.stringify(history),
    owner_partition: ownerPartition,
  }));
  const updates = Object.keys(COLUMNS)
    .filter((c) => c !== 'customer_id')
    .map((c) => `${c} = EXCLUDED.${c}`)
    .concat('updated_at = now()')
    .join(', ');
  await bulkInsert(sql, 'customers', COLUMNS, records, `ON CONFLICT (customer_id) DO UPDATE SET ${updates}`);
}

/** `customers`: each customer's export row (SPEC §7), its history and the projection's bookkeeping. */
export const customersReadModel: ReadModel = {
  tables: ['customers'],
  write: (sql, changes) => saveCustomers(sql, changes.customers.filter((c) => c.rowChanged).map((c) => c.after)),
};

const byCodeUnits = <T extends { customerId: string }>(a: T, b: T) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0);

/**
 * Rows of `customers` (the given columns) after `after` (from the first without it), `pageSize`
 * rows a statement, keyset on the primary key; `order` is '' for the database's own order (whole-
 * table reads sort their answer themselves) or codePointOrder's. Statements of one read may see
 * different transactions, as two reads would.
 */
async function* customerRecords<R extends { customer_id: string }>(
  sql: SqlExecutor,
  columns: string,
  pageSize: number,
  { order = '', after }: { order?: string; after?: string | undefined } = {},
): AsyncGenerator<R[]> {
  let from = after;
  for (;;) {
    const records =
      from === undefined
        ? await sql.query<R>(`SELECT ${columns} FROM customers ORDER BY customer_id${order} LIMIT $1`, [pageSize])
        : await sql.query<R>(`SELECT ${columns} FROM customers WHERE customer_id${order} > $1 ORDER BY customer_id${order} LIMIT $2`, [from, pageSize]);
    if (records.length > 0) yield records;
    if (records.length < pageSize) return;
    from = records[records.length - 1]!.customer_id;
    await turn();
  }
}

const ROW_COLUMNS = 'customer_id, stage, acquired_at, cohort, channel, converted_at, churned_at, churn_reason, payments, reactivations, referrals, revenue';

/** Every customer row, sorted by customerId as SPEC §7 wants (code-unit order, not a collation). */
export async function readCustomerRows(sql: SqlExecutor, pageSize = 1000): Promise<CustomerRow[]> {
  const rows: CustomerRow[] = [];
  for await (const records of customerRecords<CustomerRecord>(sql, ROW_COLUMNS, pageSize)) for (const r of records) rows.push(toCustomerRow(r));
  return rows.sort(byCodeUnits);
}

interface HistoryPage {
  last: string | null;
  rows: number;
  kept: number;
  ids: string | null;
  histories: string | null;
}

/**
 * Every customer's history, sorted by customerId; null while a row written before histories were
 * kept is left (its history is only in its stream).
 *
 * A page is one row of two text values (the ids as a JSON list, the histories a line each:
 * `jsonLines`).
 */
export async function readCustomerHistories(sql: SqlExecutor, pageSize = 5000): Promise<{ customerId: string; history: CustomerHistory }[] | null> {
  const histories: { customerId: string; history: CustomerHistory }[] = [];
  let after: string | null = null;
  for (;;) {
    const [page]: HistoryPage[] = await sql.query<HistoryPage>(
      `SELECT max(customer_id) AS last, count(*)::int AS rows, count(history)::int AS kept,
              '[' || string_agg(to_json(customer_id)::text, ',' ORDER BY customer_id) || ']' AS ids,
              string_agg(history, E'\\n' ORDER BY customer_id) AS histories
       FROM (SELECT customer_id, history FROM customers ${after === null ? '' : 'WHERE customer_id > $2'} ORDER BY customer_id LIMIT $1) page`,
      after === null ? [pageSize] : [pageSize, after],
    );
    if (page === undefined || page.rows === 0) break;
    if (page.kept < page.rows) return null;
    const ids = JSON.parse(page.ids!) as string[];
    const pageHistories = jsonLines<CustomerHistory>(page.histories);
    for (let i = 0; i < ids.length; i += 1) histories.push({ customerId: ids[i]!, history: pageHistories[i]! });
    if (page.rows < pageSize) break;
    after = page.last;
    await turn();
  }
  return histories.sort(byCodeUnits);
}

// A page of GET /customers is read in statements of at most this many rows (20–30 ms each on the
// embedded store with 20 000 customers).
const PAGE_STATEMENT_ROWS = 500;

/**
 * `COLLATE "C"` unless the database already compares that way: the primary key's index then
 * serves the order (a page in 10–20 ms instead of a sort of the whole table; the embedded store's
 * databases are "C"). Asked once per executor.
 */
const codePointOrders = new WeakMap<SqlExecutor, Promise<string>>();
function codePointOrder(sql: SqlExecutor): Promise<string> {
  let order = codePointOrders.get(sql);
  if (order === undefined) {
    order = sql
      .query<{ collation: string }>('SELECT datcollate AS collation FROM pg_database WHERE datname = current_database()')
      .then(([row]) => (row !== undefined && ['C', 'POSIX'].includes(row.collation) ? '' : ' COLLATE "C"'));
    // Asked again next time when it failed: the database may have been away.
    order.catch(() => codePointOrders.delete(sql));
    codePointOrders.set(sql, order);
  }
  return order;
}

/**
 * Up to `limit` customer rows with customerId after `after` (from the first without it), in
 * code-point order (UTF-8 bytes, the "C" collation), so that pages cut in SQL and pages cut from
 * rows computed in memory agree: the pages of `GET /customers`.
 */
export async function readCustomerPage(sql: SqlExecutor, after: string | undefined, limit: number): Promise<CustomerRow[]> {
  const rows: CustomerRow[] = [];
  if (limit <= 0) return rows;
  const pages = customerRecords<CustomerRecord>(sql, ROW_COLUMNS, Math.min(PAGE_STATEMENT_ROWS, limit), { order: await codePointOrder(sql), after });
  for await (const records of pages) {
    for (const r of records.slice(0, limit - rows.length)) rows.push(toCustomerRow(r));
    if (rows.length === limit) break;
  }
  return rows;
}

/** The currencies of every customer's revenue, sorted: the CSV columns, known before the first row. */
export async function customerCurrencies(sql: SqlExecutor): Promise<string[]> {
  const rows = await sql.query<{ currency: string }>('SELECT DISTINCT jsonb_object_keys(revenue) AS currency FROM customers');
  return rows.map((r) => r.currency).sort();
}

export async function readCustomerRow(sql: SqlExecutor, customerId: string): Promise<CustomerRow | null> {
  const [record] = await sql.query<CustomerRecord>(`SELECT ${ROW_COLUMNS} FROM customers WHERE customer_id = $1`, [customerId]);
  return record === undefined ? null : toCustomerRow(record);
}

export async function countCustomersByStage(sql: SqlExecutor): Promise<Record<string, number>> {
  const rows = await sql.query<{ stage: string; count: number | string }>('SELECT stage, count(*) AS count FROM customers GROUP BY stage');
  return Object.fromEntries(rows.map((r) => [r.stage, Number(r.count)]));
}
