import fc from 'fast-check';
import { parseLifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { CohortCells, CustomerFold, PeriodCalendar, cohortFactsAsOf, cohortSteps, compareCanonical, firstStepChange, foldCustomer, rowAsOf, timed, type CohortCell, type CustomerInput } from '@lifecycle/domain';

// A customer's history, taken at the latest instant it knows, must give at every earlier (and
// later) instant exactly what folding its touchpoints up to that instant gives: this is what
// lets an as-of export skip the touchpoints.

const DAY = 86_400_000;
const BASE = Date.parse('2024-01-29T22:00:00Z');

/** Instants on a coarse grid (so that touchpoints, deadlines and period boundaries collide) or anywhere. */
const instant = fc.oneof(
  fc.integer({ min: 0, max: 40 }).map((d) => BASE + d * DAY),
  fc.integer({ min: 0, max: 40 * DAY }).map((ms) => BASE + ms),
);
const channel = fc.constantFrom('search', 'social', 'video');
const money = fc.record({ amountMinor: fc.integer({ min: 0, max: 5000 }), currency: fc.constantFrom('USD', 'EUR') });

const ownTouchpoint = fc.oneof(
  fc.record({ type: fc.constant('ad_impression'), at: instant, channel }),
  fc.record({ type: fc.constant('registration'), at: instant, channel: fc.option(channel), referred: fc.boolean() }),
  fc.record({ type: fc.constantFrom('purchase', 'renewal'), at: instant, amount: money }),
  fc.record({ type: fc.constantFrom('payment_failure', 'referral'), at: instant }),
);
const linkedImpression = fc.record({ at: instant, channel, linkAt: instant });

type Own = { type: string; at: number; channel?: string | null; referred?: boolean; amount?: { amountMinor: number; currency: string } };

function touchpoint(own: Own, i: number): Touchpoint {
  const base = { id: `t${String(i).padStart(3, '0')}`, occurredAt: new Date(own.at).toISOString(), customerId: 'c' };
  switch (own.type) {
    case 'ad_impression':
      return { ...base, type: 'ad_impression', properties: { channel: own.channel! } } as Touchpoint;
    case 'registration':
      return {
        ...base,
        type: 'registration',
        properties: { ...(own.channel ? { channel: own.channel } : {}), ...(own.referred ? { referredBy: 'r' } : {}) },
      } as Touchpoint;
    case 'purchase':
    case 'renewal':
      return { ...base, type: own.type, properties: { amount: own.amount! } } as Touchpoint;
    default:
      return { ...base, type: own.type, properties: {} } as Touchpoint;
  }
}

const settings = fc.record({
  churn: fc.record({ paymentGraceDays: fc.integer({ min: 1, max: 5 }), inactivityDays: fc.integer({ min: 2, max: 12 }) }),
  loyalty: fc.record({ minPayments: fc.integer({ min: 2, max: 5 }) }),
  cohort: fc.record({ granularity: fc.constantFrom('month', 'week', 'day'), timeZone: fc.constantFrom('UTC', 'America/New_York', 'Asia/Kolkata') }),
});

describe('a customer history as of any instant (SPEC §3–§5, §7 as-of)', () => {
  test('gives the row and cohort facts that folding up to that instant gives', () => {
    fc.assert(
      fc.property(settings, fc.array(ownTouchpoint, { minLength: 1, maxLength: 14 }), fc.array(linkedImpression, { maxLength: 4 }), (raw, own, linked) => {
        const config = parseLifecycleConfig(raw);
        const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
        const input: CustomerInput = {
          customerId: 'c',
          touchpoints: own.map((o, i) => timed(touchpoint(o, i))),
          linkedImpressions: linked.map((l, i) => ({
            impression: timed({ id: `v${i}`, type: 'ad_impression', occurredAt: new Date(l.at).toISOString(), anonymousId: 'v', properties: { channel: l.channel } } as Touchpoint),
            linkAt: l.linkAt,
          })),
        };
        const latest = Math.max(...own.map((o) => o.at), ...linked.map((l) => Math.max(l.at, l.linkAt)));
        const { history } = foldCustomer(input, latest, config, { timeline: false });
        const deadlines = [...history.churns.map(([at]) => at), ...(history.pending ? [history.pending[0]] : [])];
        const instants = [...own.map((o) => o.at), ...linked.flatMap((l) => [l.at, l.linkAt]), ...deadlines].flatMap((at) => [at - 1, at, at + 1]);
        for (const asOf of [...instants, latest + 400 * DAY]) {
          // SPEC §3: as of T, only what had happened by T (touchpoints, and links by registrations) counts.
          const known: CustomerInput = {
            customerId: 'c',
            touchpoints: input.touchpoints.filter((t) => t.at <= asOf),
            linkedImpressions: input.linkedImpressions!.filter((l) => l.impression.at <= asOf && l.linkAt <= asOf),
          };
          const folded = known.touchpoints.length > 0 ? foldCustomer(known, asOf, config, { timeline: false }) : null;
          expect({ asOf, row: rowAsOf('c', history, asOf, calendar) }).toEqual({ asOf, row: folded?.row ?? null });
          if (folded) expect({ asOf, facts: cohortFactsAsOf(history, asOf, calendar) }).toEqual({ asOf, facts: folded.cohortFacts });
        }
      }),
      { seed: 20261130, numRuns: 400 },
    );
  });
});

/** The cells that are not empty, without currencies that have neither a payment nor an amount, in key order. */
function nonEmpty(cells: CohortCells): CohortCell[] {
  const kept: CohortCell[] = [];
  for (const cell of cells.cells.values()) {
    const currencies = Object.keys({ ...cell.revenue, ...cell.payments }).filter((c) => (cell.revenue[c] ?? 0) !== 0 || (cell.payments[c] ?? 0) !== 0);
    const pick = (amounts: Record<string, number>) => Object.fromEntries(currencies.sort().map((c) => [c, amounts[c] ?? 0]));
    const counts = [cell.customers, cell.converted, cell.active, cell.churned, cell.reactivated];
    if (currencies.length === 0 && counts.every((n) => n === 0)) continue;
    kept.push({ ...cell, revenue: pick(cell.revenue), payments: pick(cell.payments) });
  }
  return kept.sort((a, b) => a.cohortPeriod - b.cohortPeriod || a.offset - b.offset);
}

describe("a customer's cohort steps (what an as-of cohort table sums by day)", () => {
  test('add up, at every instant, to the cells of its cohort facts as of that instant', () => {
    fc.assert(
      fc.property(settings, fc.array(ownTouchpoint, { minLength: 1, maxLength: 14 }), (raw, own) => {
        const config = parseLifecycleConfig(raw);
        const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
        const touchpoints = own.map((o, i) => timed(touchpoint(o, i)));
        const latest = Math.max(...own.map((o) => o.at));
        const { history } = foldCustomer({ customerId: 'c', touchpoints }, latest, config, { timeline: false });
        const steps = cohortSteps(history, calendar);
        expect(steps.map((s) => s.at)).toEqual(steps.map((s) => s.at).sort((a, b) => a - b));
        const deadlines = [...history.churns.map(([at]) => at), ...(history.pending ? [history.pending[0]] : [])];
        const instants = [...own.map((o) => o.at), ...deadlines].flatMap((at) => [at - 1, at, at + 1]);
        for (const asOf of [...instants, latest + 400 * DAY]) {
          const summed = new CohortCells();
          for (const step of steps) if (step.at <= asOf) summed.addCell(step.cell);
          const whole = new CohortCells();
          const facts = cohortFactsAsOf(history, asOf, calendar);
          if (facts !== null) whole.addCustomer(facts);
          expect({ asOf, cells: nonEmpty(summed) }).toEqual({ asOf, cells: nonEmpty(whole) });
        }
      }),
      { seed: 20261202, numRuns: 600 },
    );
  });

  test('from an instant on are the whole steps from it, and two histories of a customer step alike before their first change', () => {
    fc.assert(
      fc.property(settings, fc.array(fc.tuple(ownTouchpoint, fc.boolean()), { minLength: 1, maxLength: 14 }), instant, (raw, own, from) => {
        const config = parseLifecycleConfig(raw);
        const calendar = PeriodCalendar.of(config.cohort.granularity, config.cohort.timeZone);
        const all = own.map(([o], i) => timed(touchpoint(o, i)));
        const latest = Math.max(...own.map(([o]) => o.at));
        const history = foldCustomer({ customerId: 'c', touchpoints: all }, latest, config, { timeline: false }).history;
        const steps = cohortSteps(history, calendar);
        expect(cohortSteps(history, calendar, from)).toEqual(steps.filter((s) => s.at >= from));
        // The same customer known earlier: some of its touchpoints, read at the latest of them (late ones come after).
        const known = all.filter((_, i) => own[i]![1]);
        if (known.length === 0) return;
        const earlier = foldCustomer({ customerId: 'c', touchpoints: known }, Math.max(...known.map((t) => t.at)), config, { timeline: false }).history;
        const change = firstStepChange(earlier, history);
        expect(firstStepChange(history, earlier)).toBe(change);
        expect(cohortSteps(earlier, calendar).filter((s) => s.at < change)).toEqual(steps.filter((s) => s.at < change));
        if (change === Number.POSITIVE_INFINITY) expect(cohortSteps(earlier, calendar)).toEqual(steps);
      }),
      { seed: 20261203, numRuns: 600 },
    );
  });
});

describe('a fold resumed where it stopped (the projector folds on what each transaction records)', () => {
  test('gives at each instant what folding all the touchpoints up to it gives, whatever instants it was read at before', () => {
    fc.assert(
      fc.property(settings, fc.array(fc.tuple(ownTouchpoint, fc.boolean(), fc.nat({ max: 20 * DAY })), { minLength: 1, maxLength: 14 }), (raw, own) => {
        const config = parseLifecycleConfig(raw);
        // Each touchpoint may end a transaction, read at an instant at or after it (T is ahead of
        // the customer's own touchpoints): a deadline that passed by then must not stop the fold
        // from taking a later touchpoint that comes before the deadline.
        const sorted = own.map(([o, readAfter, ahead], i) => ({ t: timed(touchpoint(o, i)), readAt: readAfter ? o.at + ahead : null })).sort((a, b) => compareCanonical(a.t, b.t));
        const fold = new CustomerFold(config, true);
        sorted.forEach(({ t, readAt }, i) => {
          expect(fold.follows(t)).toBe(true);
          fold.add(t);
          const asOf = i === sorted.length - 1 ? t.at + 400 * DAY : readAt;
          if (asOf === null) return;
          const whole = foldCustomer({ customerId: 'c', touchpoints: sorted.slice(0, i + 1).map((s) => s.t) }, asOf, config);
          expect({ asOf, snapshot: fold.snapshot('c', [], asOf) }).toEqual({ asOf, snapshot: whole });
        });
        // The walk goes forward only: a touchpoint before the last one folded needs a fold from the start.
        const first = sorted[0]!.t;
        if (sorted.length > 1 && compareCanonical(first, sorted.at(-1)!.t) < 0) {
          expect(fold.follows(first)).toBe(false);
          expect(() => fold.add(first)).toThrow(/only goes forward/);
        }
      }),
      { seed: 20261201, numRuns: 400 },
    );
  });
});
