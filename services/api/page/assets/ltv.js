/** Lifetime value: cumulative revenue per customer after k periods, per cohort or per channel. */
import { HEIGHT, MARGIN, WIDTH, axes, scale, svgChart, ticks } from './chart.js';
import { groupCohorts, periodUnit } from './cohorts.js';
import { emptyNode, h, s, show } from './dom.js';
import { formatMoney, toMajor } from './format.js';

// A categorical palette for channels (Tableau 10), and a sequential one for cohorts by age.
const CATEGORICAL = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const EARLIEST = [8, 29, 88];
const LATEST = [127, 205, 187];
const byAge = (t) => `rgb(${EARLIEST.map((c, i) => Math.round(c + (LATEST[i] - c) * t)).join(' ')})`;
// Beyond this many lines, a legend entry per line is noise: the legend shows the age scale instead.
const LEGEND_LINES = 12;

/**
 * LTV after each period index of a pool of groups, in minor units per customer: Σ revenue of
 * periods ≤ k ÷ Σ size, over the groups that have reached period k. One group: SPEC §4's LTV of
 * a cohort; a channel's groups: the LTV of all its cohorts together.
 * @param {import('./cohorts.js').CohortGroup[]} groups
 */
function pooledLtv(groups, currency) {
  const revenue = [];
  const size = [];
  for (const group of groups) {
    let cumulative = 0;
    for (const cell of group.cells) {
      cumulative += cell.revenue[currency] ?? 0;
      revenue[cell.periodIndex] = (revenue[cell.periodIndex] ?? 0) + cumulative;
      size[cell.periodIndex] = (size[cell.periodIndex] ?? 0) + group.size;
    }
  }
  return revenue.map((sum, k) => (size[k] > 0 ? sum / size[k] : 0));
}

/** The lines to draw: one per cohort, or one per channel, then the pool of all. */
function series(rows, byChannel, currency) {
  const groups = groupCohorts(rows);
  const lines = [];
  if (byChannel) {
    const channels = [...new Set(groups.map((group) => group.channel))].sort();
    channels.forEach((channel, i) => {
      lines.push({ label: channel, colour: CATEGORICAL[i % CATEGORICAL.length], values: pooledLtv(groups.filter((g) => g.channel === channel), currency) });
    });
  } else {
    groups.forEach((group, i) => {
      lines.push({ label: group.cohort, colour: byAge(groups.length > 1 ? i / (groups.length - 1) : 0), values: pooledLtv([group], currency) });
    });
  }
  return { lines, total: { label: byChannel ? 'all channels' : 'all cohorts', values: pooledLtv(groups, currency) } };
}

/**
 * @param {HTMLElement} container
 * @param {import('./cohorts.js').CohortRow[]} rows
 * @param {{byChannel: boolean, currency: string | undefined}} options
 */
export function renderLtv(container, rows, { byChannel, currency }) {
  if (rows.length === 0 || currency === undefined) {
    show(container, emptyNode(rows.length === 0 ? 'No cohort yet.' : 'No revenue yet in any currency.'));
    return;
  }
  const { lines, total } = series(rows, byChannel, currency);
  const periods = total.values.length;
  const top = Math.max(...lines.flatMap((line) => line.values), 0);
  const yValues = ticks(toMajor(top, currency));
  const x = scale(0, Math.max(periods - 1, 1), MARGIN.left, WIDTH - MARGIN.right);
  const yMajor = scale(0, yValues.at(-1), HEIGHT - MARGIN.bottom, MARGIN.top);
  const y = (minor) => yMajor(toMajor(minor, currency));
  const path = (values) => values.map((value, k) => `${k ? 'L' : 'M'}${x(k).toFixed(1)},${y(value).toFixed(1)}`).join('');
  const last = (values) => `${formatMoney(values.at(-1) ?? 0, currency)} ${currency} after ${values.length - 1} periods`;
  const unit = periodUnit(rows[0].cohort);

  const chart = svgChart(`Lifetime value per customer in ${currency}, per ${byChannel ? 'channel' : 'cohort'}`);
  chart.append(
    axes({
      y: yMajor,
      values: yValues,
      format: (value) => value.toLocaleString('en-US'),
      xs: ticks(periods - 1, 10).filter((k) => k < periods).map((k) => [x(k), String(k)]),
      xTitle: `${unit} since acquisition`,
      yTitle: `${currency} per customer`,
    }),
    s(
      'g',
      {},
      lines.map((line) =>
        s('path', { class: `series${lines.length > LEGEND_LINES ? ' faint' : ''}`, d: path(line.values), stroke: line.colour, 'data-series': line.label }, s('title', {}, `${line.label}: ${last(line.values)}`)),
      ),
      s('path', { class: 'series total', d: path(total.values), 'data-series': total.label }, s('title', {}, `${total.label}: ${last(total.values)}`)),
    ),
  );

  const key = (colour) => s('svg', { width: 12, height: 12, 'aria-hidden': 'true' }, s('rect', { width: 12, height: 12, rx: 3, fill: colour }));
  const legend =
    lines.length <= LEGEND_LINES
      ? lines.map((line) => h('li', {}, key(line.colour), line.label))
      : [h('li', {}, key(byAge(0)), `earliest cohort (${lines[0].label})`), h('li', {}, key(byAge(1)), `latest cohort (${lines.at(-1).label})`)];
  show(container, chart, h('ul', { class: 'legend' }, legend, h('li', {}, h('span', { class: 'key total' }), total.label)));
}
