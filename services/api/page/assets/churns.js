/** Churn by reason over time: a stacked bar per period, payment failures below inactivity. */
import { HEIGHT, MARGIN, WIDTH, axes, every, scale, svgChart, ticks } from './chart.js';
import { emptyNode, h, s, show } from './dom.js';
import { formatCount } from './format.js';

const REASONS = [
  ['payment_failure', 'payment failure'],
  ['inactivity', 'inactivity'],
];

/**
 * @param {HTMLElement} container
 * @param {{period: string, reason: string, churns: number}[]} rows
 * @param {{periods: string[]}} options  periods to show besides those with churns, so that one
 *   without churn is an empty place on the time axis rather than missing from it
 */
export function renderChurns(container, rows, { periods: known }) {
  if (rows.length === 0) {
    show(container, emptyNode('No churn by this instant.'));
    return;
  }
  // Period labels (2024-03, 2024-W09, 2024-03-01) sort as time does.
  const periods = [...new Set([...known, ...rows.map((row) => row.period)])].sort();
  const counts = new Map(rows.map((row) => [`${row.period} ${row.reason}`, row.churns]));
  const count = (period, reason) => counts.get(`${period} ${reason}`) ?? 0;
  const totals = periods.map((period) => REASONS.reduce((sum, [reason]) => sum + count(period, reason), 0));
  const yValues = ticks(Math.max(...totals));
  const y = scale(0, yValues.at(-1), HEIGHT - MARGIN.bottom, MARGIN.top);
  const band = (WIDTH - MARGIN.left - MARGIN.right) / periods.length;
  const gap = band > 6 ? band * 0.2 : 0;
  // About 7 px a character of a label and some room between labels.
  const step = every(periods.length, Math.floor((WIDTH - MARGIN.left - MARGIN.right) / (periods[0].length * 7 + 16)));

  const bars = periods.flatMap((period, i) => {
    let base = 0;
    return REASONS.filter(([reason]) => count(period, reason) > 0).map(([reason, name]) => {
      const churns = count(period, reason);
      const rect = s(
        'rect',
        { class: reason, x: MARGIN.left + i * band + gap / 2, width: Math.max(band - gap, 0.5), y: y(base + churns), height: y(base) - y(base + churns), 'data-period': period, 'data-reason': reason, 'data-churns': churns },
        s('title', {}, `${period}, ${name}: ${formatCount(churns)}`),
      );
      base += churns;
      return rect;
    });
  });

  const chart = svgChart('Churns per period by reason');
  chart.append(
    axes({
      y,
      values: yValues,
      format: (value) => formatCount(value),
      xs: periods.map((period, i) => [MARGIN.left + (i + 0.5) * band, period]).filter((_, i) => i % step === 0),
      xTitle: 'period of the churn',
      yTitle: 'customers churned',
    }),
    s('g', {}, bars),
  );
  const sums = REASONS.map(([reason, name]) =>
    h('li', {}, h('span', { class: `key ${reason}` }), `${name}: ${formatCount(rows.filter((row) => row.reason === reason).reduce((sum, row) => sum + row.churns, 0))}`),
  );
  show(container, chart, h('ul', { class: 'legend' }, sums));
}
