/** Customers by stage, in the order a customer moves through them. */
import { emptyNode, h, show } from './dom.js';
import { formatCount } from './format.js';

const ORDER = ['reached', 'acquired', 'converted', 'retained', 'loyal', 'at_risk', 'churned'];
const rank = (stage) => (ORDER.includes(stage) ? ORDER.indexOf(stage) : ORDER.length);

/**
 * @param {HTMLElement} container
 * @param {{stage: string, customers: number}[]} rows
 */
export function renderStages(container, rows) {
  const total = rows.reduce((sum, row) => sum + row.customers, 0);
  if (total === 0) {
    show(container, emptyNode('No customer by this instant.'));
    return;
  }
  const tiles = [...rows]
    .sort((a, b) => rank(a.stage) - rank(b.stage))
    .map((row) => {
      const bar = h('span');
      // A width set through the CSSOM: the page's content security policy refuses style attributes.
      bar.style.width = `${(100 * row.customers) / total}%`;
      return h(
        'div',
        { class: `stage ${row.stage}`, 'data-stage': row.stage, title: `${((100 * row.customers) / total).toFixed(1)}% of ${formatCount(total)} customers` },
        h('dt', {}, row.stage.replace('_', ' ')),
        h('dd', {}, formatCount(row.customers), h('span', { class: 'share', 'aria-hidden': 'true' }, bar)),
      );
    });
  show(container, h('dl', { class: 'stages' }, tiles));
}
