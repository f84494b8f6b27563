import type { CustomerRow } from '@lifecycle/contracts';
import { customerCurrencies, readCustomerPage } from '@lifecycle/readmodel';
import type { SqlExecutor } from '@lifecycle/sql';

/**
 * The order of customer pages: by customerId in code-point order, which is UTF-8 byte order and
 * PostgreSQL's "C" collation, so that a page read with `customer_id > after` in SQL and one cut
 * from rows computed in memory agree. (JavaScript's `<` compares UTF-16 code units; the two
 * differ only between a character in U+E000–U+FFFF and one beyond U+FFFF.)
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800–DFFF) stand for code points above every BMP character: move them past E000–FFFF.
    const rank = (unit: number) => (unit >= 0xd800 && unit <= 0xdfff ? unit + 0x2000 : unit >= 0xe000 ? unit - 0x800 : unit);
    return rank(x) - rank(y);
  }
  return a.length - b.length;
}

/**
 * Pages of the `customers` read model (the rows at the projection's instant), each read in short
 * statements (readCustomerPage): a listing of any length never holds more than a page, and on the
 * embedded store (which runs SQL on the event loop) other requests are answered between pages.
 */
export class CustomerPages {
  constructor(private readonly sql: SqlExecutor) {}

  /** Up to `limit` rows with customerId after `after` (from the first without it), in code-point order. */
  page(after: string | undefined, limit: number): Promise<CustomerRow[]> {
    return readCustomerPage(this.sql, after, limit);
  }

  /** Every row, page by page. */
  async *all(pageSize: number): AsyncGenerator<CustomerRow[]> {
    let after: string | undefined;
    for (;;) {
      const rows = await this.page(after, pageSize);
      if (rows.length > 0) yield rows;
      if (rows.length < pageSize) return;
      after = rows[rows.length - 1]!.customerId;
    }
  }

  /** The currencies of every customer's revenue: the CSV columns, known before the first row. */
  currencies(): Promise<string[]> {
    return customerCurrencies(this.sql);
  }
}
