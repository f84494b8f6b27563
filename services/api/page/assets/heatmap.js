/** The cohort retention heatmap: a row per cohort (or (cohort, channel)), a cell per period index. */
import { groupCohorts, periodUnit } from './cohorts.js';
import { emptyNode, show } from './dom.js';
import { escapeHtml, formatCount, formatPercent } from './format.js';

/** Colour classes .r0 … .r20 of style.css: retention in 5 % steps. */
const STEPS = 20;
const colourStep = (active, size) => (size > 0 ? Math.round((STEPS * active) / size) : 0);

/**
 * Rows of fixed-width cells rather than a table: the browser lays out and paints only the rows in
 * view (content-visibility), where a table is laid out whole; and the tens of thousands of cells of
 * day cohorts by channel are one markup string set at once, several times faster than node by node.
 * @param {HTMLElement} container
 * @param {import('./cohorts.js').CohortRow[]} rows
 * @param {{byChannel: boolean}} options
 */
export function renderHeatmap(container, rows, { byChannel }) {
  if (rows.length === 0) {
    show(container, emptyNode('No cohort yet: no customer was acquired by this instant.'));
    return;
  }
  const groups = groupCohorts(rows);
  const columns = Math.max(...rows.map((row) => row.periodIndex)) + 1;
  const unit = periodUnit(groups[0].cohort);

  const head = [`<div class="head" role="columnheader">Cohort${byChannel ? ' · channel' : ''}<span class="size">customers</span></div>`];
  for (let k = 0; k < columns; k++) head.push(`<div role="columnheader" data-period-index="${k}">${k}</div>`);

  const body = groups.map((group) => {
    const name = `${group.cohort}${group.channel === undefined ? '' : ` · ${group.channel}`}`;
    const cells = group.cells.map(
      (row) =>
        `<div role="cell" class="r${colourStep(row.active, row.size)}" data-period-index="${row.periodIndex}" title="${escapeHtml(
          `${name}, period ${row.periodIndex} (${row.period}): ${row.active} of ${row.size} active, ${row.churned} churned, ${row.reactivated} reactivated`,
        )}">${formatPercent(row.active, row.size)}</div>`,
    );
    const channel = group.channel === undefined ? '' : `<span class="channel">${escapeHtml(group.channel)}</span>`;
    return (
      `<div role="row" data-cohort="${escapeHtml(group.cohort)}"${group.channel === undefined ? '' : ` data-channel="${escapeHtml(group.channel)}"`}>` +
      `<div class="head" role="rowheader" title="${escapeHtml(name)}"><span class="cohort">${escapeHtml(group.cohort)}</span>${channel}<span class="size">${formatCount(group.size)}</span></div>` +
      `${cells.join('')}</div>`
    );
  });

  const swatches = Array.from({ length: STEPS + 1 }, (_, step) => `<span class="r${step}"></span>`).join('');
  container.innerHTML =
    `<div class="heatmap-meta"><span class="muted">${formatCount(groups.length)} ${byChannel ? 'cohort × channel rows' : 'cohorts'}, ` +
    `${formatCount(rows.length)} cells; columns: ${unit} since acquisition</span>` +
    `<span class="legend-scale" aria-hidden="true">0%<span class="swatches">${swatches}</span>100%</span></div>` +
    `<div class="scroll"><div class="heatmap${byChannel ? ' by-channel' : ''}" role="table" aria-label="Retention by cohort and period index">` +
    `<div role="row" class="columns">${head.join('')}</div>${body.join('')}</div></div>`;
}
