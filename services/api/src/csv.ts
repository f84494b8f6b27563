/**
 * RFC 4180 CSV of rows whose values are scalars or currency maps (revenue, cost, CPM, CPA): a map
 * column becomes one column per currency that appears in it, `<column>_<currency>` in currency
 * order (e.g. `revenue_EUR,revenue_USD`), empty where a row has no amount in that currency (or
 * the map is null). Text that a spreadsheet would run as a formula (OWASP CSV injection) gets a
 * leading `'`; numbers stay numbers.
 */
export function toCsv(rows: readonly object[], columns: readonly string[]): string {
  const layout = csvLayout(columns, currenciesOfColumns(rows, columns));
  return layout.header + rows.map(layout.line).join('');
}

const cell = (value: unknown): string => {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

const valueOf = (row: object, column: string) => (row as Record<string, unknown>)[column];
const isMap = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/** The currencies of each map column of `rows` (a column with no map in any row is not one). */
export function currenciesOfColumns(rows: readonly object[], columns: readonly string[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const column of columns) {
    if (!rows.some((row) => isMap(valueOf(row, column)))) continue;
    found.set(column, [...new Set(rows.flatMap((row) => Object.keys((valueOf(row, column) as Record<string, unknown> | null) ?? {})))].sort());
  }
  return found;
}

/**
 * The header and the line of each row, once the currencies of each map column are known: so a
 * long answer is written row by row (the currencies come first, from the rows or from the store).
 */
export function csvLayout(columns: readonly string[], currencies: ReadonlyMap<string, readonly string[]>): { header: string; line: (row: object) => string } {
  const fields = columns.flatMap((column) => {
    const codes = currencies.get(column);
    if (codes === undefined) return [{ header: column, get: (row: object) => valueOf(row, column) }];
    return codes.map((currency) => ({
      header: `${column}_${currency}`,
      get: (row: object) => (valueOf(row, column) as Record<string, unknown> | null)?.[currency],
    }));
  });
  return {
    header: `${fields.map((f) => cell(f.header)).join(',')}\r\n`,
    line: (row) => `${fields.map((f) => cell(f.get(row))).join(',')}\r\n`,
  };
}
