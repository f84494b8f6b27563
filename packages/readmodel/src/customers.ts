import type { CustomerRow, Stage, ChurnReason } from '@lifecycle/contracts';
import type { CohortFacts, CustomerHistory } from '@lifecycle/domain';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';
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

/** Every customer row, sorted by customerId as SPEC §7 wants (code-unit order, not a collation). */
export async function readCustomerRows(sql: SqlExecutor): Promise<CustomerRow[]> {
  const records = await sql.query<CustomerRecord>(`SELECT ${Object.keys(COLUMNS).join(', ')} FROM customers`);
  return records.map(toCustomerRow).sort((a, b) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0));
}

/**
 * Every customer's history, sorted by customerId; null while a row written before histories were
 * kept is left (its history is only in its stream).
 */
export async function readCustomerHistories(sql: SqlExecutor): Promise<{ customerId: string; history: CustomerHistory }[] | null> {
  const records = await sql.query<{ customer_id: string; history: string | null }>('SELECT customer_id, history FROM customers');
  const histories: { customerId: string; history: CustomerHistory }[] = [];
  for (const r of records) {
    if (r.history === null) return null;
    histories.push({ customerId: r.customer_id, history: JSON.parse(r.history) as CustomerHistory });
  }
  return histories.sort((a, b) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0));
}

export async function readCustomerRow(sql: SqlExecutor, customerId: string): Promise<CustomerRow | null> {
  const [record] = await sql.query<CustomerRecord>(`SELECT ${Object.keys(COLUMNS).join(', ')} FROM customers WHERE customer_id = $1`, [customerId]);
  return record === undefined ? null : toCustomerRow(record);
}

export async function countCustomersByStage(sql: SqlExecutor): Promise<Record<string, number>> {
  const rows = await sql.query<{ stage: string; count: number | string }>('SELECT stage, count(*) AS count FROM customers GROUP BY stage');
  return Object.fromEntries(rows.map((r) => [r.stage, Number(r.count)]));
}
