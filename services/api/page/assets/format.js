/** How figures read on the page: fixed en-US digits, so that every analyst sees the same text. */

const counts = new Intl.NumberFormat('en-US');
const ratios = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** @param {number} n */
export const formatCount = (n) => counts.format(n);

/** `42%`, or `—` for an empty whole. @param {number} part @param {number} whole */
export const formatPercent = (part, whole) => (whole > 0 ? `${Math.round((100 * part) / whole)}%` : '—');

/** @param {number} ratio */
export const formatRatio = (ratio) => `${ratios.format(ratio)}×`;

// Per currency: its digits after the point and a formatter with them (thousands of amounts a table).
const currencyFormats = new Map();
function currencyFormat(currency) {
  if (!currencyFormats.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
    } catch {
      // Not an ISO-4217 code Intl knows: keep the common two digits.
    }
    currencyFormats.set(currency, { digits, format: new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) });
  }
  return currencyFormats.get(currency);
}

/** A number of minor units in the major unit of `currency` (2 digits for EUR, 0 for JPY): 123456 EUR → 1234.56. */
export const toMajor = (minor, currency) => minor / 10 ** currencyFormat(currency).digits;

/** `1,234.56`: minor units shown in the major unit of `currency`, with its own digits. */
export const formatMoney = (minor, currency) => currencyFormat(currency).format.format(toMajor(minor, currency));

/** `2024-06-06 00:11:00 UTC` from an ISO-8601 UTC instant (milliseconds left to the tooltip). */
export const formatInstant = (iso) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` : '—');

/** The currencies of some currency → amount maps, sorted. @param {Iterable<Record<string, number>>} maps */
export function currenciesOf(maps) {
  const codes = new Set();
  for (const map of maps) for (const code of Object.keys(map)) codes.add(code);
  return [...codes].sort();
}

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text safe inside HTML markup and attributes (ids and channels come from the data). */
export const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
