import type { CustomerRow } from '@lifecycle/contracts';
import type { CustomerHistory, ImpressionFact } from '@lifecycle/domain';
import { loadCustomers, readImpressions } from '@lifecycle/readmodel';
import type { SqlExecutor } from '@lifecycle/sql';

/**
 * The whole-table reads of the exports, in pages: each page is one short statement, and the
 * event loop gets a turn between pages. On the embedded store PGlite runs every statement on
 * the event loop, one at a time, so one statement that reads every customer's history (734 ms
 * for 20 000 customers, 8.6 MB of history text) or every impression (1 072 ms) held up every
 * other request of the process for that long — `/health` included — even with the fold itself
 * in a worker thread (services/api). Same answers as readCustomerHistories, readImpressions and
 * readCustomerRows of @lifecycle/readmodel; those three stay for the projector's own reads.
 */

/** A turn of the event loop: the requests that arrived during the page are served now. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const byCustomerId = <T extends { customerId: string }>(a: T, b: T) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0);

/**
 * `readCustomerHistories` page by page (keyset on the primary key, in the database's collation:
 * any one order serves, the answer is sorted in JavaScript as SPEC §7 wants). Null as soon as a
 * row without a history is met (a store projected by an earlier version).
 */
export async function readCustomerHistoriesInPages(sql: SqlExecutor, pageSize = 100): Promise<{ customerId: string; history: CustomerHistory }[] | null> {
  const histories: { customerId: string; history: CustomerHistory }[] = [];
  let after: string | undefined;
  for (;;) {
    const records =
      after === undefined
        ? await sql.query<{ customer_id: string; history: string | null }>('SELECT customer_id, history FROM customers ORDER BY customer_id LIMIT $1', [pageSize])
        : await sql.query<{ customer_id: string; history: string | null }>('SELECT customer_id, history FROM customers WHERE customer_id > $1 ORDER BY customer_id LIMIT $2', [
            after,
            pageSize,
          ]);
    for (const r of records) {
      if (r.history === null) return null;
      histories.push({ customerId: r.customer_id, history: JSON.parse(r.history) as CustomerHistory });
    }
    if (records.length < pageSize) break;
    after = records[records.length - 1]!.customer_id;
    await turn();
  }
  return histories.sort(byCustomerId);
}

/**
 * `readImpressions` page by page. `ad_impressions` has no key, so a page is a range of the
 * table's blocks (a TID range scan, PostgreSQL 14+): the ranges do not overlap, so no row is read
 * twice, and every row of the table when the read starts is in one of them (rows are only ever
 * inserted, and truncated by `replay`); one inserted meanwhile may or may not be read, as with
 * any read that starts before an insert. (A key column would let pages follow it instead; `ORDER
 * BY ctid LIMIT n` sorts the rest of the table for every page: 100–290 ms each.) A store whose
 * impressions are not all in the table yet reads them from the streams, as readImpressions does.
 */
export async function readImpressionsInPages(sql: SqlExecutor, asOf: number, blocksPerPage = 4): Promise<ImpressionFact[]> {
  const [complete] = await sql.query<{ key: string }>("SELECT key FROM projection_state WHERE key = 'ad_impressions_complete'");
  if (complete === undefined) return readImpressions(sql, asOf);
  const facts: ImpressionFact[] = [];
  const blocks = async () =>
    Number((await sql.query<{ blocks: number | string }>("SELECT pg_relation_size('ad_impressions') / current_setting('block_size')::int AS blocks"))[0]!.blocks);
  // ~140 rows a block: a page of 4 is ~570 rows, 10–20 ms on the embedded store.
  for (let first = 0, end = await blocks(); first < end; first += blocksPerPage) {
    const rows = await sql.query<{ channel: string; at: number | string; cost_currency: string | null; cost_amount: number | string | null }>(
      'SELECT channel, at, cost_currency, cost_amount FROM ad_impressions WHERE ctid >= $1::tid AND ctid < $2::tid AND at <= $3',
      [`(${first},0)`, `(${first + blocksPerPage},0)`, asOf],
    );
    for (const r of rows) {
      facts.push({ channel: r.channel, at: Number(r.at), ...(r.cost_currency !== null ? { cost: { currency: r.cost_currency, amountMinor: Number(r.cost_amount) } } : {}) });
    }
    await turn();
  }
  return facts;
}

/** `readCustomerRows` page by page: every customer's row, sorted by customerId (UTF-16 code units, SPEC §7). */
export async function readCustomerRowsInPages(sql: SqlExecutor, pageSize = 250): Promise<CustomerRow[]> {
  const rows: CustomerRow[] = [];
  let after: string | undefined;
  for (;;) {
    const ids = (
      after === undefined
        ? await sql.query<{ customer_id: string }>('SELECT customer_id FROM customers ORDER BY customer_id LIMIT $1', [pageSize])
        : await sql.query<{ customer_id: string }>('SELECT customer_id FROM customers WHERE customer_id > $1 ORDER BY customer_id LIMIT $2', [after, pageSize])
    ).map((r) => r.customer_id);
    // loadCustomers maps the records as readCustomerRows does (it parses the histories too: a page at a time).
    for (const customer of (await loadCustomers(sql, ids)).values()) rows.push(customer.row);
    if (ids.length < pageSize) break;
    after = ids[ids.length - 1];
    await turn();
  }
  return rows.sort(byCustomerId);
}
