/** The customer lookup: the customer's row and its stream, each stage change with its cause. */
import { emptyNode, h, show } from './dom.js';
import { formatCount, formatInstant, formatMoney } from './format.js';

const TOUCHPOINT = 'TouchpointRecorded';
const CORRECTION = 'LifecycleHistoryCorrected';
const DEADLINES = { inactivity: 'inactivity deadline', payment_grace: 'payment grace deadline' };

/** @typedef {{revision: number, type: string, data: any}} StreamEvent */

const instant = (iso) => (iso ? h('time', { datetime: iso, title: iso }, formatInstant(iso)) : '—');
const id = (text) => h('code', {}, text);

/** `renewal tp-1-10193 of 2024-07-06 18:34:50 UTC`, from the touchpoint in the stream when it is there. */
function touchpointRef(touchpointId, touchpoints, type) {
  const touchpoint = touchpoints.get(touchpointId);
  return [`${type ?? touchpoint?.type ?? 'touchpoint'} `, id(touchpointId), touchpoint ? [' of ', instant(touchpoint.occurredAt)] : null];
}

function cause(event, touchpoints) {
  const { cause } = event.data;
  if (cause?.kind === 'touchpoint') return h('td', { class: 'cause', 'data-cause': 'touchpoint' }, touchpointRef(cause.touchpointId, touchpoints, cause.touchpointType));
  if (cause?.kind === 'deadline') {
    return h('td', { class: 'cause', 'data-cause': 'deadline' }, `${DEADLINES[cause.deadline] ?? `${cause.deadline} deadline`} after `, touchpointRef(cause.after, touchpoints));
  }
  return h('td', { class: 'cause' }, h('span', { class: 'none' }, '—'));
}

/** The lifecycle events and corrections of the stream, in stream order; retracted ones struck through. */
function lifecycleTable(stream, touchpoints) {
  const retractedBy = new Map();
  for (const event of stream) {
    if (event.type === CORRECTION) for (const revision of event.data.retractedRevisions) retractedBy.set(revision, event.revision);
  }
  const rows = stream
    .filter((event) => event.type !== TOUCHPOINT)
    .map((event) => {
      if (event.type === CORRECTION) {
        const causes = event.data.causedBy.flatMap((touchpointId, i) => [i ? ', ' : '', ...touchpointRef(touchpointId, touchpoints)]);
        return h(
          'tr',
          { class: 'correction', 'data-revision': event.revision, 'data-type': event.type },
          h('td', { class: 'num' }, event.revision),
          h('td', {}, event.type),
          h('td', {}, h('span', { class: 'none' }, '—')),
          h('td', {}, `retracts ${event.data.retractedRevisions.map((revision) => `#${revision}`).join(', ')}`),
          h('td', { class: 'cause', 'data-cause': 'correction' }, 'late ', causes),
        );
      }
      const retracted = retractedBy.get(event.revision);
      return h(
        'tr',
        { class: retracted === undefined ? undefined : 'retracted', 'data-revision': event.revision, 'data-type': event.type },
        h('td', { class: 'num' }, event.revision),
        h('td', {}, event.type, event.data.reason ? ` (${event.data.reason.replace('_', ' ')})` : null),
        h('td', { class: 'at' }, instant(event.data.at)),
        h('td', { class: 'transition' }, `${event.data.from ?? '—'} → ${event.data.to}`),
        retracted === undefined ? cause(event, touchpoints) : h('td', { class: 'note' }, `retracted by #${retracted}`),
      );
    });
  if (rows.length === 0) return emptyNode('No stage change yet.');
  return h(
    'table',
    { class: 'data lifecycle' },
    h('thead', {}, h('tr', {}, ['#', 'Event', 'At', 'Stage', 'Cause'].map((name, i) => h('th', { scope: 'col', class: i ? undefined : 'num' }, name)))),
    h('tbody', {}, rows),
  );
}

/** What a touchpoint carries that a reader of the stream wants: channel, amount, reason. */
function touchpointDetails(touchpoint) {
  const { properties = {} } = touchpoint;
  const parts = [];
  if (properties.channel) parts.push(`channel ${properties.channel}`);
  if (properties.amount) parts.push(`${formatMoney(properties.amount.amountMinor, properties.amount.currency)} ${properties.amount.currency}`);
  if (properties.cost) parts.push(`cost ${formatMoney(properties.cost.amountMinor, properties.cost.currency)} ${properties.cost.currency}`);
  if (properties.reason) parts.push(`reason ${properties.reason}`);
  if (properties.referredBy) parts.push(`referred by ${properties.referredBy}`);
  return parts.join(', ');
}

function touchpointTable(stream) {
  const recorded = stream.filter((event) => event.type === TOUCHPOINT);
  return h(
    'details',
    {},
    h('summary', {}, `${formatCount(recorded.length)} touchpoints in the stream`),
    h(
      'table',
      { class: 'data touchpoints' },
      h('thead', {}, h('tr', {}, ['#', 'Occurred at', 'Type', 'Id', 'Details'].map((name, i) => h('th', { scope: 'col', class: i ? undefined : 'num' }, name)))),
      h(
        'tbody',
        {},
        recorded.map(({ revision, data }) =>
          h('tr', { 'data-revision': revision }, h('td', { class: 'num' }, revision), h('td', {}, instant(data.occurredAt)), h('td', {}, data.type), h('td', {}, id(data.id)), h('td', {}, touchpointDetails(data))),
        ),
      ),
    ),
  );
}

/** The customer's row as name/value pairs. */
function customerRow(customer) {
  const revenue = Object.entries(customer.revenue);
  const fields = [
    ['Customer', customer.customerId],
    ['Stage', h('span', { class: 'badge' }, customer.stage.replace('_', ' '))],
    ['Cohort', customer.cohort ?? '—'],
    ['Channel', customer.channel ?? '—'],
    ['Acquired', instant(customer.acquiredAt)],
    ['Converted', instant(customer.convertedAt)],
    ['Churned', customer.churnedAt ? [instant(customer.churnedAt), ` (${customer.churnReason.replace('_', ' ')})`] : '—'],
    ['Payments', formatCount(customer.payments)],
    ['Reactivations', formatCount(customer.reactivations)],
    ['Referrals', formatCount(customer.referrals)],
    ['Revenue', revenue.length ? revenue.map(([currency, minor]) => `${formatMoney(minor, currency)} ${currency}`).join(', ') : '—'],
  ];
  return h('dl', { class: 'customer-row' }, fields.map(([name, value]) => h('div', {}, h('dt', {}, name), h('dd', {}, value))));
}

/**
 * @param {HTMLElement} container
 * @param {{customer: any, stream: StreamEvent[]}} answer
 */
export function renderCustomer(container, { customer, stream }) {
  const touchpoints = new Map(stream.filter((event) => event.type === TOUCHPOINT).map((event) => [event.data.id, event.data]));
  show(container, customerRow(customer), h('h3', {}, 'Stage changes, in stream order'), lifecycleTable(stream, touchpoints), touchpointTable(stream));
}
