/** The referral loop: per referrer, the customers it referred, how many converted, their revenue. */
import { emptyNode, show } from './dom.js';
import { currenciesOf, escapeHtml, formatCount, formatMoney, formatPercent } from './format.js';

/** @typedef {{referrer: string, referred: number, converted: number, revenue: Record<string, number>}} ReferralRow */

/** Rows shown until the reader asks for all of them: thousands of referrers stay one click away. */
export const TOP = 20;

const NONE = '<span class="none">—</span>';

/** Referrer ids in code-unit order, the tie-breaker of every sort. */
const byId = (a, b) => (a.referrer < b.referrer ? -1 : a.referrer > b.referrer ? 1 : 0);
const rate = (row) => (row.referred > 0 ? row.converted / row.referred : 0);

/**
 * The sortable columns: name, how a row compares ascending, the first direction when picked
 * (figures largest first), and whether the cell is a figure.
 */
const COLUMNS = [
  { key: 'referrer', name: 'Referrer', compare: byId, first: 'ascending' },
  { key: 'referred', name: 'Referred', compare: (a, b) => a.referred - b.referred, first: 'descending', num: true },
  { key: 'converted', name: 'Converted', compare: (a, b) => a.converted - b.converted, first: 'descending', num: true },
  { key: 'rate', name: 'Conversion', compare: (a, b) => rate(a) - rate(b), first: 'descending', num: true },
  { key: 'revenue', name: 'Revenue', num: true },
];

/** The default order: most referred first; then most converted; then by id. */
export const DEFAULT_SORT = { key: 'referred', direction: 'descending' };

/** `rows` in the order asked; ties most referred, most converted, then by id. @param {ReferralRow[]} rows */
export function sortReferrals(rows, { key, direction }) {
  const column = COLUMNS.find((candidate) => candidate.key === key && candidate.compare) ?? COLUMNS[1];
  const sign = direction === 'ascending' ? 1 : -1;
  return [...rows].sort((a, b) => sign * column.compare(a, b) || b.referred - a.referred || b.converted - a.converted || byId(a, b));
}

/** The sort a click on column `key`'s header asks for: the other direction, or that column's first one. */
export function nextSort(current, key) {
  const column = COLUMNS.find((candidate) => candidate.key === key);
  if (!column?.compare) return current;
  if (current.key === key) return { key, direction: current.direction === 'ascending' ? 'descending' : 'ascending' };
  return { key, direction: column.first };
}

/** One line per currency, `EUR 25.82`, or a dash for none (as the channel table). */
function amounts(map) {
  const lines = Object.keys(map)
    .sort()
    .map((currency) => `<div class="money"><span class="cur">${escapeHtml(currency)}</span> <span>${formatMoney(map[currency], currency)}</span></div>`);
  return lines.length ? lines.join('') : NONE;
}

/** `1 referrer`, `1,204 referrers`. */
const counted = (n, noun) => `${formatCount(n)} ${noun}${n === 1 ? '' : 's'}`;

/** Σ of some currency → amount maps, per currency. */
function totalOf(maps) {
  const total = {};
  for (const map of maps) for (const [currency, minor] of Object.entries(map)) total[currency] = (total[currency] ?? 0) + minor;
  return total;
}

/**
 * @param {HTMLElement} container
 * @param {ReferralRow[]} rows
 * @param {{sort: {key: string, direction: 'ascending' | 'descending'}, all: boolean}} options  the order, and every row or the top ones
 */
export function renderReferrals(container, rows, { sort, all }) {
  if (rows.length === 0) {
    show(container, emptyNode('No customer registered with a referral by this instant.'));
    return;
  }
  const sorted = sortReferrals(rows, sort);
  const shown = all ? sorted : sorted.slice(0, TOP);
  const referred = rows.reduce((sum, row) => sum + row.referred, 0);
  const converted = rows.reduce((sum, row) => sum + row.converted, 0);
  const revenue = totalOf(rows.map((row) => row.revenue));
  const revenueText = currenciesOf([revenue])
    .map((currency) => `${escapeHtml(currency)} ${formatMoney(revenue[currency], currency)}`)
    .join(', ');
  const summary =
    `<p class="summary">${counted(rows.length, 'referrer')} brought ${counted(referred, 'customer')}; ` +
    `${formatCount(converted)} converted (${formatPercent(converted, referred)})${revenueText ? `; their revenue: ${revenueText}` : ''}.</p>`;

  const head = COLUMNS.map((column) => {
    const num = column.num ? ' class="num"' : '';
    if (!column.compare) return `<th scope="col"${num}>${column.name}</th>`;
    const current = column.key === sort.key;
    // A button in the header: reachable by keyboard; aria-sort says the current order.
    return (
      `<th scope="col"${num}${current ? ` aria-sort="${sort.direction}"` : ''}>` +
      `<button type="button" class="sort" data-sort="${column.key}">${column.name}<span class="arrow" aria-hidden="true">${current ? (sort.direction === 'ascending' ? '▲' : '▼') : ''}</span></button></th>`
    );
  }).join('');
  const body = shown.map(
    (row) =>
      `<tr data-referrer="${escapeHtml(row.referrer)}">` +
      `<th scope="row" data-column="referrer"><button type="button" class="link" data-customer-id="${escapeHtml(row.referrer)}" title="Show ${escapeHtml(row.referrer)} in the customer lookup">${escapeHtml(row.referrer)}</button></th>` +
      `<td class="num" data-column="referred">${formatCount(row.referred)}</td>` +
      `<td class="num" data-column="converted">${formatCount(row.converted)}</td>` +
      `<td class="num" data-column="rate">${formatPercent(row.converted, row.referred)}</td>` +
      `<td class="num" data-column="revenue">${amounts(row.revenue)}</td></tr>`,
  );
  const more =
    rows.length > TOP
      ? `<div class="table-foot"><span class="muted">${all ? `All ${counted(rows.length, 'referrer')}` : `The top ${formatCount(TOP)} of ${counted(rows.length, 'referrer')}`}</span>` +
        `<button type="button" class="show-all" data-all="${all}">${all ? `Show the top ${formatCount(TOP)}` : `Show all ${formatCount(rows.length)}`}</button></div>`
      : '';
  container.innerHTML =
    `${summary}<div class="scroll${all ? '' : ' whole'}"><table class="data referrals" aria-labelledby="referrals-title"><thead><tr>${head}</tr></thead><tbody>${body.join('')}</tbody></table></div>${more}`;
}
