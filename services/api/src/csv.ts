/**
 * RFC 4180 CSV of flat rows; nested values (revenue maps) are written as JSON text. Text that a
 * spreadsheet would run as a formula (OWASP CSV injection) gets a leading `'`; numbers stay numbers.
 */
export function toCsv(rows: readonly object[], columns: readonly string[]): string {
  const cell = (value: unknown): string => {
    if (value === null || value === undefined) return '';
    let text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [columns.join(',')];
  for (const row of rows) lines.push(columns.map((c) => cell((row as Record<string, unknown>)[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
