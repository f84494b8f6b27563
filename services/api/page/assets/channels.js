/** The channel economics table: one row per (channel, period), amounts per currency. */
import { emptyNode, show } from './dom.js';
import { escapeHtml, formatCount, formatMoney, formatRatio } from './format.js';

/**
 * @typedef {{channel: string, period: string, impressions: number, cost: Record<string, number>, acquired: number,
 *   revenue: Record<string, number>, cpm: Record<string, number>, cpa: Record<string, number> | null}} ChannelRow
 */

const NONE = '<span class="none">—</span>';

/** One line per currency, `EUR 25.82`, or a dash for none. */
function amounts(map, format) {
  const lines = Object.keys(map ?? {})
    .sort()
    .map((currency) => `<div class="money"><span class="cur">${escapeHtml(currency)}</span> <span>${format(map[currency], currency)}</span></div>`);
  return lines.length ? lines.join('') : NONE;
}

/** Return on ad spend per currency: revenue ÷ cost where both are in that currency. */
function roas(row) {
  const ratios = {};
  for (const [currency, cost] of Object.entries(row.cost)) {
    if (cost > 0 && row.revenue[currency] !== undefined) ratios[currency] = row.revenue[currency] / cost;
  }
  return ratios;
}

const COLUMNS = ['Channel', 'Period', 'Impressions', 'Cost', 'CPM', 'Acquired', 'CPA', 'Revenue', 'ROAS'];

/**
 * @param {HTMLElement} container
 * @param {ChannelRow[]} rows
 * @param {{channel: string}} options  the one channel to show, or '' for all
 */
export function renderChannels(container, rows, { channel }) {
  const shown = channel ? rows.filter((row) => row.channel === channel) : rows;
  if (shown.length === 0) {
    show(container, emptyNode('No impression, acquisition or payment by this instant.'));
    return;
  }
  const money = (map) => amounts(map, formatMoney);
  const body = shown.map((row, i) => {
    // The channel is written on every row (what a reader copies stays whole) but greyed where it repeats.
    const repeat = i > 0 && shown[i - 1].channel === row.channel ? ' class="repeat"' : '';
    return (
      `<tr data-channel="${escapeHtml(row.channel)}" data-period="${escapeHtml(row.period)}">` +
      `<td${repeat} data-column="channel">${escapeHtml(row.channel)}</td><td data-column="period">${escapeHtml(row.period)}</td>` +
      `<td class="num" data-column="impressions">${formatCount(row.impressions)}</td>` +
      `<td class="num" data-column="cost">${money(row.cost)}</td>` +
      `<td class="num" data-column="cpm">${money(row.cpm)}</td>` +
      `<td class="num" data-column="acquired">${formatCount(row.acquired)}</td>` +
      `<td class="num" data-column="cpa">${row.cpa === null ? NONE : money(row.cpa)}</td>` +
      `<td class="num" data-column="revenue">${money(row.revenue)}</td>` +
      `<td class="num" data-column="roas">${amounts(roas(row), formatRatio)}</td></tr>`
    );
  });
  const head = COLUMNS.map((name, i) => `<th scope="col"${i > 1 ? ' class="num"' : ''}>${name}</th>`).join('');
  container.innerHTML = `<div class="scroll"><table class="data channels"><thead><tr>${head}</tr></thead><tbody>${body.join('')}</tbody></table></div>`;
}
