/** The rolling churn rate (SPEC §4) at the as-of instant, one figure per window. */
import { h, show } from './dom.js';
import { formatInstant } from './format.js';

/** The windows shown, in days: a week, a month, a quarter. */
export const WINDOWS = [7, 30, 90];

const DAY_MS = 86_400_000;

/** `14.6%` from 0.1458…, one decimal; `—` without a base. @param {number | null} rate */
export const formatRate = (rate) => (rate === null ? '—' : `${(100 * rate).toFixed(1)}%`);

/**
 * @param {HTMLElement} container
 * @param {{asOf: string | null, windowDays: number, rate: number | null}[]} answers  one per window, in WINDOWS order
 */
export function renderChurnRate(container, answers) {
  const tiles = answers.map(({ asOf, windowDays, rate }) => {
    const start = asOf === null ? null : new Date(Date.parse(asOf) - windowDays * DAY_MS).toISOString();
    // The base: customers converted and not churned at the window's start; none, no rate.
    const note = start === null ? 'no data yet' : rate === null ? 'no customer to churn at its start' : `since ${formatInstant(start).slice(0, 10)}`;
    const bar = h('span');
    // A width set through the CSSOM: the page's content security policy refuses style attributes.
    bar.style.width = `${100 * (rate ?? 0)}%`;
    return h(
      'div',
      { class: 'rate', 'data-window-days': windowDays, title: start === null ? undefined : `churns after ${formatInstant(start)}, up to ${formatInstant(asOf)}` },
      h('dt', {}, `last ${windowDays} days`),
      h('dd', {}, h('span', { class: 'figure' }, formatRate(rate)), h('span', { class: 'window' }, note), h('span', { class: 'share', 'aria-hidden': 'true' }, bar)),
    );
  });
  show(container, h('dl', { class: 'rates' }, tiles));
}
