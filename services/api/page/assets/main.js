/**
 * The page's state (as-of instant, rows by cohort or by channel, currency, channel filter, order of
 * the referrers and whether all are shown) and its wiring: every view is drawn from the API's
 * answers for the same instant.
 */
import { ApiError, apiKey, getJson, needsKey } from './api.js';
import { renderChannels } from './channels.js';
import { WINDOWS, renderChurnRate } from './churn-rate.js';
import { renderChurns } from './churns.js';
import { renderCustomer } from './customer.js';
import { emptyNode, errorNode, h, show } from './dom.js';
import { currenciesOf, formatInstant } from './format.js';
import { renderHeatmap } from './heatmap.js';
import { renderLtv } from './ltv.js';
import { DEFAULT_SORT, nextSort, renderReferrals } from './referrals.js';
import { renderStages } from './stages.js';

const $ = (id) => document.getElementById(id);
const views = {
  stages: $('stages'),
  heatmap: $('heatmap'),
  ltv: $('ltv'),
  churnRate: $('churn-rate'),
  churns: $('churns'),
  channels: $('channels'),
  referrals: $('referrals'),
  customer: $('customer'),
};
const asOfInput = $('as-of');
const keyForm = $('key-form');
const currencySelect = $('currency');
const channelSelect = $('channel-filter');

const state = {
  /** The instant every view shows: the picker's, else the watermark (null: no data at all). */
  asOf: /** @type {string | null} */ (null),
  byChannel: false,
  currency: /** @type {string | undefined} */ (undefined),
  channel: '',
  referralSort: DEFAULT_SORT,
  allReferrers: false,
  /** The API's answers for state.asOf, or the error that came instead. */
  cohorts: /** @type {object[] | Error} */ ([]),
  channels: /** @type {object[] | Error} */ ([]),
  referrals: /** @type {object[] | Error} */ ([]),
};

// Answers of an older reload that arrive after a newer one started are dropped.
let generation = 0;

/** `2024-06-30T23:59:59Z` from the picker's `2024-06-30T23:59:59` (or `…T23:59`), read as UTC. */
function pickedInstant() {
  const value = asOfInput.value;
  if (!value) return undefined;
  return `${value.length === 16 ? `${value}:00` : value}Z`;
}

/** Runs `render` with the answer, or shows the error in the view instead. */
function draw(view, answer, render) {
  if (answer instanceof Error) show(view, errorNode(answer));
  else render(answer);
}

const settle = (promise) => promise.catch((error) => (error instanceof Error ? error : new Error(String(error))));

function drawLtv() {
  draw(views.ltv, state.cohorts, (rows) => {
    const currencies = currenciesOf(rows.map((row) => row.revenue));
    if (!currencies.includes(state.currency)) state.currency = currencies[0];
    currencySelect.replaceChildren(...currencies.map((code) => h('option', { value: code, selected: code === state.currency }, code)));
    currencySelect.disabled = currencies.length === 0;
    renderLtv(views.ltv, rows, { byChannel: state.byChannel, currency: state.currency });
  });
}

function drawChannels() {
  draw(views.channels, state.channels, (rows) => {
    const channels = [...new Set(rows.map((row) => row.channel))].sort();
    if (!channels.includes(state.channel)) state.channel = '';
    channelSelect.replaceChildren(
      h('option', { value: '' }, 'All channels'),
      ...channels.map((channel) => h('option', { value: channel, selected: channel === state.channel }, channel)),
    );
    renderChannels(views.channels, rows, { channel: state.channel });
  });
}

function drawReferrals() {
  draw(views.referrals, state.referrals, (rows) => renderReferrals(views.referrals, rows, { sort: state.referralSort, all: state.allReferrers }));
}

/** The rolling churn rate of each window, or the first refusal among them. */
function drawChurnRate(answers) {
  const refused = answers.find((answer) => answer instanceof Error);
  draw(views.churnRate, refused ?? answers, (rates) => renderChurnRate(views.churnRate, rates));
}

const cohortsQuery = () => ({ asOf: state.asOf ?? undefined, by: state.byChannel ? 'channel' : undefined });

/** Loads every view for the picked instant (or the latest) and draws it. */
async function reload() {
  const mine = ++generation;
  document.documentElement.dataset.state = 'loading';
  $('status').textContent = 'Loading…';
  const banner = $('banner');
  banner.hidden = true;

  let watermark;
  try {
    ({ watermark } = await getJson('/health'));
  } catch (error) {
    if (mine !== generation) return;
    banner.textContent = `The service cannot be read: ${error.message}`;
    banner.hidden = false;
    $('status').textContent = 'No data shown.';
    document.documentElement.dataset.state = 'error';
    return;
  }
  const picked = pickedInstant();
  // The watermark, asked for explicitly: every view shows the same instant even while data arrives.
  state.asOf = picked ?? watermark;
  const asOf = state.asOf ?? undefined;
  // Each answer is a computation of the service: api.js asks two at a time, in this order.
  const answers = await Promise.all([
    settle(getJson('/cohorts', cohortsQuery())),
    settle(getJson('/channels', { asOf })),
    settle(getJson('/churns', { asOf })),
    settle(getJson('/stages', { asOf })),
    settle(getJson('/referrals', { asOf })),
    ...WINDOWS.map((windowDays) => settle(getJson('/churn-rate', { asOf, windowDays: String(windowDays) }))),
  ]);
  if (mine !== generation) return;
  const [cohorts, channels, churns, stages, referrals, ...rates] = answers;
  if (answers.some(needsKey)) {
    askForKey();
    return;
  }

  if (watermark === null) {
    banner.textContent = 'No touchpoints have been ingested yet, so there is nothing to show. Ingest some (lifecycle ingest <file>) and reload the page.';
    banner.hidden = false;
  }
  const latest = watermark === null ? 'no data yet' : `latest data ${formatInstant(watermark)}`;
  $('status').textContent = picked ? `As of ${formatInstant(picked)} (${latest})` : watermark === null ? 'No data yet' : `As of the latest data: ${formatInstant(watermark)}`;

  Object.assign(state, { cohorts, channels, referrals });
  draw(views.heatmap, cohorts, (rows) => renderHeatmap(views.heatmap, rows, { byChannel: state.byChannel }));
  drawLtv();
  drawChannels();
  // Every period from the first acquisition to the instant has a cohort row (SPEC §4): the churn chart's time axis.
  const periods = cohorts instanceof Error ? [] : [...new Set(cohorts.map((row) => row.period))];
  draw(views.churns, churns, (rows) => renderChurns(views.churns, rows, { periods }));
  draw(views.stages, stages, (rows) => renderStages(views.stages, rows));
  drawChurnRate(rates);
  drawReferrals();
  document.documentElement.dataset.asOf = state.asOf ?? '';
  document.documentElement.dataset.by = state.byChannel ? 'channel' : 'cohort';
  document.documentElement.dataset.state = answers.some((answer) => answer instanceof Error) ? 'error' : 'ready';
}

/** Switches the heatmap and the LTV curves between cohorts and (cohort, channel) rows. */
function setByChannel(byChannel) {
  if (byChannel === state.byChannel) return;
  state.byChannel = byChannel;
  for (const button of document.querySelectorAll('[data-by]')) button.setAttribute('aria-pressed', String((button.dataset.by === 'channel') === byChannel));
  reload();
}

/** Shows the customer typed in the lookup (or picked elsewhere on the page). */
async function lookUp(customerId) {
  const view = views.customer;
  view.dataset.state = 'loading';
  view.dataset.customerId = customerId;
  show(view, emptyNode('Loading…'));
  try {
    const answer = await getJson(`/customers/${encodeURIComponent(customerId)}`);
    if (view.dataset.customerId !== customerId) return;
    renderCustomer(view, answer);
    view.dataset.state = 'ready';
  } catch (error) {
    if (view.dataset.customerId !== customerId) return;
    show(view, error instanceof ApiError && error.status === 404 ? emptyNode(`No customer with the id “${customerId}”.`) : errorNode(error));
    view.dataset.state = 'error';
    if (needsKey(error)) askForKey();
  }
}

/**
 * The service refused to read without a (better) key: the page asks for one. The same words
 * whether there was no key, an unknown one or one without the read scope: the service does not
 * say which, and neither does the page.
 */
function askForKey() {
  const held = apiKey.get() !== null;
  $('key-reason').textContent = held
    ? 'The service refused this key: it is not one of its keys, or it does not allow reading. Enter another.'
    : 'This service needs an API key that allows reading (scope read).';
  keyForm.hidden = false;
  $('forget-key').hidden = !held;
  $('status').textContent = 'No data shown: an API key is needed.';
  document.documentElement.dataset.state = 'locked';
  $('api-key').focus();
}

keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const secret = $('api-key').value.trim();
  if (!secret) return;
  apiKey.set(secret);
  $('api-key').value = '';
  keyForm.hidden = true;
  $('forget-key').hidden = false;
  reload();
});
$('forget-key').addEventListener('click', () => {
  apiKey.forget();
  $('forget-key').hidden = true;
  reload();
});
$('forget-key').hidden = apiKey.get() === null;

// A picker being typed into changes on every field: wait for the typing to pause.
let typing;
asOfInput.addEventListener('change', () => {
  clearTimeout(typing);
  typing = setTimeout(reload, 300);
});
$('latest').addEventListener('click', () => {
  asOfInput.value = '';
  reload();
});
$('as-of-form').addEventListener('submit', (event) => event.preventDefault());
for (const button of document.querySelectorAll('[data-by]')) button.addEventListener('click', () => setByChannel(button.dataset.by === 'channel'));
currencySelect.addEventListener('change', () => {
  state.currency = currencySelect.value;
  drawLtv();
});
channelSelect.addEventListener('change', () => {
  state.channel = channelSelect.value;
  drawChannels();
});
views.referrals.addEventListener('click', (event) => {
  const target = /** @type {Element} */ (event.target);
  const sort = target.closest('button[data-sort]');
  if (sort) {
    state.referralSort = nextSort(state.referralSort, sort.dataset.sort);
    drawReferrals();
    views.referrals.querySelector(`button[data-sort="${sort.dataset.sort}"]`)?.focus();
    return;
  }
  if (target.closest('button.show-all')) {
    state.allReferrers = !state.allReferrers;
    drawReferrals();
    views.referrals.querySelector('button.show-all')?.focus();
    return;
  }
  // A referrer is a customer id: open it in the lookup.
  const referrer = target.closest('button[data-customer-id]');
  if (referrer) {
    const customerId = referrer.dataset.customerId;
    $('customer-id').value = customerId;
    $('customer-title').scrollIntoView({ block: 'start' });
    $('customer-id').focus({ preventScroll: true });
    lookUp(customerId);
  }
});
$('lookup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  // The id exactly as typed: ids are compared exactly, and a 404 shows what was asked.
  const customerId = $('customer-id').value;
  if (customerId) lookUp(customerId);
});

reload();
