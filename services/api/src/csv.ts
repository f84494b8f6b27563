/**
 * RFC 4180 CSV of rows whose values are scalars or currency maps (revenue, cost, CPM, CPA): a map
 * column becomes one column per currency that appears in it, `<column>_<currency>` in currency
 * order (e.g. `revenue_EUR,revenue_USD`), empty where a row has no amount in that currency (or
 * the map is null). Text that a spreadsheet would run as a formula (OWASP CSV injection) gets a
 * leading `'`; numbers stay numbers.
 */
export function toCsv(rows: readonly object[], columns: readonly string[]): string {
  const cell = (value: unknown): string => {
    if (value === null || value === undefined) return '';
    let text = String(value);
    if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const valueOf = (row: object, column: string) => (row as Record<string, unknown>)[column];
  const isMap = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;
  // Each column: a scalar, or a map expanded over the currencies its rows hold.
  const fields = columns.flatMap((column) => {
    if (!rows.some((row) => isMap(valueOf(row, column)))) return [{ header: column, get: (row: object) => valueOf(row, column) }];
    const currencies = [...new Set(rows.flatMap((row) => Object.keys((valueOf(row, column) as Record<string, unknown> | null) ?? {})))].sort();
    return currencies.map((currency) => ({
      header: `${column}_${currency}`,
      get: (row: object) => (valueOf(row, column) as Record<string, unknown> | null)?.[currency],
    }));
  });
  const lines = [fields.map((f) => cell(f.header)).join(',')];
  for (const row of rows) lines.push(fields.map((f) => cell(f.get(row))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
