import fc from 'fast-check';
import { parseLifecycleConfig, type ChannelRow, type ChurnRow, type CohortRow, type CustomerRow, type LifecycleConfig, type ReferralRow } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { exportChannels, exportChurnRate, exportChurns, exportCohorts, exportCohortsByChannel, exportProjection, exportReferrals, exportStages, ingestLines, openLifecycleStore, recordedTouchpoints, replay, type DeadLetter, type IngestSummary } from '@lifecycle/projection';
import { readCohortRowsAsOf } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { oracleExport } from '../oracle/batch-oracle.js';
import { oracleRollingChurnRate } from '../oracle/churn-rate.js';
import { oracleIntake, type OracleIntake } from '../oracle/intake.js';
import { FAULTS, EDGES, Rng, asObj, conflictingVersion, jsonText, oracleNoisyLines, type Obj } from '../oracle/noise.js';

// The product's `ingest` and the oracle (test/oracle: its own validation, deduplication, noise
// and fold; nothing shared with packages/contracts, domain, projection or readmodel) get the same
// raw lines; the exports and every line's fate (accepted, duplicate, or the dead-letter reason)
// must be the same.

const DAY = 86_400_000;

interface Run {
  summary: IngestSummary;
  letters: DeadLetter[];
}

/** Ingests each group of lines as a separate `ingest` run into one fresh in-memory store. */
async function ingestRuns(db: SqlDatabase, runs: readonly (readonly Uint8Array[])[], config: LifecycleConfig, batchSize = 97): Promise<Run[]> {
  const out: Run[] = [];
  for (const lines of runs) {
    const letters: DeadLetter[] = [];
    const summary = await ingestLines(db, lines, { config, batchSize, onDeadLetters: async (l) => void letters.push(...l) });
    out.push({ summary, letters });
  }
  return out;
}

async function withStore<T>(work: (db: SqlDatabase) => Promise<T>): Promise<T> {
  const db = await openLifecycleStore({ dataDir: undefined as unknown as string });
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

/**
 * Every line of every run: the product's dead letters (line, reason) equal the oracle's rejected
 * lines, every field the product names for an invalid_field is one the oracle found wrong, and
 * the summaries count what the oracle counts.
 */
function expectSameFates(runs: readonly (readonly Uint8Array[])[], ingested: readonly Run[], oracle: OracleIntake): void {
  let offset = 0;
  runs.forEach((lines, r) => {
    const expected = oracle.lines.slice(offset, offset + lines.length);
    offset += lines.length;
    const { summary, letters } = ingested[r]!;
    const actual = [...letters].sort((a, b) => a.line - b.line);
    expect(actual.map((l) => `run ${r} line ${l.line}: ${l.reason}`)).toEqual(
      expected.flatMap((o, i) => (o.outcome === 'rejected' ? [`run ${r} line ${i + 1}: ${o.reason}`] : [])),
    );
    const strayPaths = actual.flatMap((l) => {
      const o = expected[l.line - 1]!;
      if (l.reason !== 'invalid_field' || o.outcome !== 'rejected') return [];
      return l.issues.filter((issue) => !o.paths.includes(issue.path)).map((issue) => `run ${r} line ${l.line}: ${issue.path} (oracle: ${o.paths.join(', ')})`);
    });
    expect(strayPaths).toEqual([]);
    const count = (what: string) => expected.filter((o) => o.outcome === what).length;
    expect({ lines: summary.lines, accepted: summary.accepted, duplicates: summary.duplicates }).toEqual({ lines: lines.length, accepted: count('accepted'), duplicates: count('duplicate') });
  });
}

const ndjson = (rows: readonly object[]) => rows.map((r) => JSON.stringify(r)).join('\n');

/** What the analyst views of channels, churns and referrals (SQL) hold, as the export's rows. */
async function historyViews(db: SqlDatabase): Promise<{ channels: ChannelRow[]; churns: ChurnRow[]; referrals: ReferralRow[] }> {
  // Counts and sums come back as text (bigint, numeric); jsonb maps as objects of numbers.
  const channels = await db.query<{ channel: string; period: string; impressions: string; cost: object; acquired: string; revenue: object; cpm: object; cpa: object | null }>('SELECT * FROM analyst_channels');
  const churns = await db.query<{ period: string; reason: ChurnRow['reason']; churns: string }>('SELECT * FROM analyst_churns');
  const referrals = await db.query<{ referrer: string; referred: string; converted: string; revenue: object }>('SELECT * FROM analyst_referrals');
  return {
    channels: channels.map((r) => ({ ...r, impressions: Number(r.impressions), acquired: Number(r.acquired) }) as ChannelRow),
    churns: churns.map((r) => ({ ...r, churns: Number(r.churns) })),
    referrals: referrals.map((r) => ({ ...r, referred: Number(r.referred), converted: Number(r.converted) }) as ReferralRow),
  };
}

/** The analyst views (SQL) say what the export says at the watermark. */
async function expectAnalystViews(
  db: SqlDatabase,
  cohorts: readonly CohortRow[],
  customers: readonly CustomerRow[],
  exported: { channels: readonly ChannelRow[]; churns: readonly ChurnRow[]; referrals: readonly ReferralRow[] },
): Promise<void> {
  const viewed = await historyViews(db);
  expect(ndjson(viewed.channels)).toEqual(ndjson(exported.channels));
  expect(ndjson(viewed.churns)).toEqual(ndjson(exported.churns));
  expect(ndjson(viewed.referrals)).toEqual(ndjson(exported.referrals));
  const cohortView = await db.query<{ cohort: string; period_index: number; period: string; size: number; converted: string; active: number; churned: number; reactivated: number; retention_rate: string }>(
    'SELECT * FROM analyst_cohorts ORDER BY cohort, period_index',
  );
  expect(cohortView.map((r) => ({ cohort: r.cohort, periodIndex: r.period_index, period: r.period, size: r.size, converted: Number(r.converted), active: r.active, churned: r.churned, reactivated: r.reactivated }))).toEqual(
    cohorts.map(({ revenue: _, ...rest }) => rest),
  );
  expect(cohortView.map((r) => Number(r.retention_rate))).toEqual(cohorts.map((c) => Math.round((c.active / c.size) * 10_000) / 10_000));
  const revenue = await db.query<{ cohort: string; period_index: number; currency: string; revenue: string; cumulative_revenue: string }>(
    'SELECT cohort, period_index, currency, revenue, cumulative_revenue FROM analyst_cohort_revenue',
  );
  const cumulative = new Map<string, number>();
  for (const c of cohorts) {
    for (const [currency, amount] of Object.entries(c.revenue)) {
      const key = `${c.cohort} ${currency}`;
      cumulative.set(key, (cumulative.get(key) ?? 0) + amount);
    }
    for (const r of revenue.filter((x) => x.cohort === c.cohort && x.period_index === c.periodIndex)) {
      expect([c.cohort, c.periodIndex, r.currency, Number(r.revenue), Number(r.cumulative_revenue)]).toEqual([c.cohort, c.periodIndex, r.currency, c.revenue[r.currency] ?? 0, cumulative.get(`${c.cohort} ${r.currency}`) ?? 0]);
    }
  }
  // Every amount of the export is in the view.
  const keys = new Set(revenue.map((r) => `${r.cohort} ${r.period_index} ${r.currency}`));
  expect(cohorts.flatMap((c) => Object.keys(c.revenue).map((currency) => `${c.cohort} ${c.periodIndex} ${currency}`)).filter((k) => !keys.has(k))).toEqual([]);
  const rows = await db.query<{ customer_id: string; stage: string }>('SELECT customer_id, stage FROM analyst_customers');
  expect(rows.length).toBe(customers.length);
}

describe('export equals an independent recomputation from the raw noisy lines (SPEC §2–§5, §7)', () => {
  const base = [...generateTouchpoints({ customers: 150, seed: 11, months: 8 })];
  const noisy = oracleNoisyLines(base, {
    seed: 11,
    redeliveryRate: 0.06,
    lateRate: 0.05,
    invalidRate: 0.1,
    conflictRate: 0.04,
    edgeRate: 0.05,
    blankRate: 0.01,
    redeliverConflicting: true,
  });
  const lines = noisy.map((l) => l.bytes);
  const oracle = oracleIntake(lines);

  test.each([
    ['month, UTC', {}],
    ['week, America/New_York', { cohort: { granularity: 'week', timeZone: 'America/New_York' } }],
    ['day, Asia/Kolkata, short churn windows', { cohort: { granularity: 'day', timeZone: 'Asia/Kolkata' }, churn: { inactivityDays: 20, paymentGraceDays: 3 }, loyalty: { minPayments: 3 } }],
  ])('%s: every line’s fate, and the export at the latest instant and at earlier ones', async (_name, settings) => {
    const config = parseLifecycleConfig(settings);
    await withStore(async (db) => {
      const runs = [lines];
      expectSameFates(runs, await ingestRuns(db, runs, config), oracle);
      const latest = await exportProjection(db, config);
      const expected = oracleExport(oracle.accepted, config);
      expect(ndjson(latest.customers)).toEqual(ndjson(expected.customers));
      expect(ndjson(latest.cohorts)).toEqual(ndjson(expected.cohorts));
      expect(ndjson((await exportCohortsByChannel(db, config)).rows)).toEqual(ndjson(expected.cohortsByChannel));
      expect(ndjson((await exportChannels(db, config)).rows)).toEqual(ndjson(expected.channels));
      expect(ndjson((await exportChurns(db, config)).rows)).toEqual(ndjson(expected.churns));
      expect(ndjson((await exportStages(db, config)).rows)).toEqual(ndjson(expected.stages));
      expect(ndjson((await exportReferrals(db, config)).rows)).toEqual(ndjson(expected.referrals));
      expect(expected.referrals.length).toBeGreaterThan(0);
      expect(latest.customers.length).toBeGreaterThan(30);
      await expectAnalystViews(db, latest.cohorts, latest.customers, expected);
      for (const asOf of ['2024-03-15T12:00:00Z', '2024-06-01T00:00:00+02:00']) {
        const at = Date.parse(asOf);
        const earlier = await exportProjection(db, config, at);
        const atAsOf = oracleExport(oracle.accepted, config, asOf);
        expect(ndjson(earlier.customers)).toEqual(ndjson(atAsOf.customers));
        expect(ndjson(earlier.cohorts)).toEqual(ndjson(atAsOf.cohorts));
        expect(ndjson((await exportCohortsByChannel(db, config, at)).rows)).toEqual(ndjson(atAsOf.cohortsByChannel));
        expect(ndjson((await exportChannels(db, config, at)).rows)).toEqual(ndjson(atAsOf.channels));
        expect(ndjson((await exportChurns(db, config, at)).rows)).toEqual(ndjson(atAsOf.churns));
        expect(ndjson((await exportStages(db, config, at)).rows)).toEqual(ndjson(atAsOf.stages));
        expect(ndjson((await exportReferrals(db, config, at)).rows)).toEqual(ndjson(atAsOf.referrals));
      }
      // The cohort table as of instants inside a day, at its edges and after the latest touchpoint, from its days.
      for (const asOf of ['2024-03-15T12:00:00Z', '2024-04-30T23:59:59.999-04:00', '2024-06-01T00:00:00+02:00', '2024-07-20T06:30:00.250Z', '2025-01-01T00:00:00Z']) {
        const expectedRows = ndjson(oracleExport(oracle.accepted, config, asOf).cohorts);
        const days = await readCohortRowsAsOf(db, Date.parse(asOf), config);
        expect({ asOf, rows: days && ndjson(days) }).toEqual({ asOf, rows: expectedRows });
        expect({ asOf, rows: ndjson((await exportCohorts(db, config, Date.parse(asOf))).rows) }).toEqual({ asOf, rows: expectedRows });
      }
      // The rolling churn rate at earlier instants and after the latest touchpoint (churns that come due later).
      for (const asOf of ['2024-03-15T12:00:00Z', '2024-06-01T00:00:00+02:00', '2025-01-01T00:00:00Z']) {
        for (const windowDays of [7, 30, 90]) {
          const at = Date.parse(asOf);
          const expectedRate = oracleRollingChurnRate(oracle.accepted, config, at, windowDays * 86_400_000);
          expect({ asOf, windowDays, rate: (await exportChurnRate(db, config, windowDays * 86_400_000, at)).rate }).toEqual({ asOf, windowDays, rate: expectedRate });
        }
      }
    });
  });

  test('the noisy lines exercise every rejection reason, every fault and edge, id conflicts won either way, and every stage', () => {
    const reasons = new Set(oracle.lines.flatMap((o) => (o.outcome === 'rejected' ? [o.reason] : [])));
    expect(reasons).toEqual(new Set(['malformed_json', 'payload_too_large', 'not_an_object', 'unknown_type', 'invalid_field', 'id_conflict']));
    const kinds = new Set(noisy.map((l) => l.kind.replace(/^late /, '')));
    for (const f of FAULTS) expect(kinds).toContain(`fault:${f.kind}`);
    for (const e of EDGES) expect(kinds).toContain(`edge:${e.kind}`);
    expect(noisy.some((l) => l.kind.startsWith('late '))).toBe(true);
    expect(noisy.some((l) => l.kind.startsWith('redelivery:'))).toBe(true);
    expect(oracle.lines.some((o) => o.outcome === 'blank')).toBe(true);
    // A conflicting version that came first (it stays), and one that came second.
    const fateOf = (kind: RegExp) => new Set(noisy.flatMap((l, i) => (kind.test(l.kind) ? [oracle.lines[i]!.outcome] : [])));
    expect(fateOf(/^conflict:.*:before$/)).toEqual(new Set(['accepted']));
    expect(fateOf(/^conflict:/)).toContain('rejected');
    expect(oracle.accepted).toHaveLength(base.length);

    const { customers } = oracleExport(oracle.accepted, parseLifecycleConfig({}));
    const stages = new Set(customers.map((c) => c.stage));
    for (const stage of ['reached', 'acquired', 'converted', 'retained', 'loyal', 'churned']) expect(stages).toContain(stage);
    expect(new Set(customers.map((c) => c.churnReason))).toEqual(new Set([null, 'inactivity', 'payment_failure']));
    expect(customers.some((c) => c.reactivations > 0)).toBe(true);
    // What channel economics must get right: impressions of visitors no registration links,
    // channels with cost and no acquisition, several currencies.
    const linked = new Set(oracle.accepted.flatMap((t) => (t.type === 'registration' && t.anonymousId !== undefined ? [t.anonymousId] : [])));
    expect(oracle.accepted.some((t) => t.type === 'ad_impression' && t.customerId === undefined && !linked.has(t.anonymousId!))).toBe(true);
    const { channels } = oracleExport(oracle.accepted, parseLifecycleConfig({}));
    expect(channels.some((r) => Object.keys(r.cost).length > 0 && r.acquired === 0)).toBe(true);
    expect(new Set(channels.flatMap((r) => [...Object.keys(r.cost), ...Object.keys(r.revenue)])).size).toBeGreaterThan(1);
  });

  test('replay from the streams reproduces the read models', async () => {
    const config = parseLifecycleConfig({});
    await withStore(async (db) => {
      await ingestRuns(db, [lines], config, 50);
      const before = await exportProjection(db, config);
      const channelsBefore = await exportChannels(db, config);
      const asOf = Date.parse('2024-04-10T08:00:00Z');
      const cohortsBefore = await readCohortRowsAsOf(db, asOf, config);
      await replay(db, config);
      expect(await exportProjection(db, config)).toEqual(before);
      expect(await exportChannels(db, config)).toEqual(channelsBefore);
      expect(await readCohortRowsAsOf(db, asOf, config)).toEqual(cohortsBefore);
      expect(cohortsBefore!.length).toBeGreaterThan(0);
    });
  });
});

describe('arrival order, redelivery, id conflicts and splitting: the export and every line as the oracle says (SPEC §6.1)', () => {
  const touchpoints = [...generateTouchpoints({ customers: 12, seed: 5, months: 6 })];
  const instants = touchpoints.map((t) => Date.parse(t.occurredAt));
  const [first, last] = [Math.min(...instants), Math.max(...instants)];
  const base: Uint8Array[] = touchpoints.map((t) => Buffer.from(JSON.stringify(t)));
  const config = parseLifecycleConfig({ churn: { inactivityDays: 30 } });

  test('shuffled, duplicated, with conflicting versions and invalid lines, split into several ingest runs', async () => {
    await fc.assert(
      fc.asyncProperty(
        // Indices, not lines: a counterexample stays readable.
        fc.shuffledSubarray([...base.keys()], { minLength: base.length, maxLength: base.length }),
        fc.uniqueArray(fc.record({ index: fc.nat(base.length - 1), seed: fc.nat(), at: fc.nat(), retried: fc.boolean() }), { maxLength: 6, selector: (c) => c.index }),
        fc.array(fc.nat(base.length - 1), { maxLength: 20 }),
        fc.array(fc.record({ fault: fc.nat(FAULTS.length - 1), index: fc.nat(base.length - 1), at: fc.nat() }), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (shuffled, conflicts, redelivered, faults, cuts, batchSize, instant) => {
          const delivered: Uint8Array[] = shuffled.map((i) => base[i]!);
          // Redeliveries at the end, as after a consumer restart; conflicting versions (maybe retried
          // at once) and invalid lines anywhere.
          const again = redelivered.map((i) => base[i]!);
          delivered.push(...again);
          for (const c of conflicts) {
            const version = Buffer.from(jsonText(conflictingVersion(asObj(touchpoints[c.index]!), new Rng(c.seed)).t));
            delivered.splice(c.at % (delivered.length + 1), 0, ...(c.retried ? [version, version] : [version]));
          }
          for (const f of faults) delivered.splice(f.at % (delivered.length + 1), 0, FAULTS[f.fault]!.line(asObj(touchpoints[f.index]!), new Rng(f.at)));
          const bounds = [0, ...cuts.map((c) => c % (delivered.length + 1)).sort((a, b) => a - b), delivered.length];
          const runs = bounds.slice(1).map((end, i) => delivered.slice(bounds[i], end));

          const oracle = oracleIntake(delivered);
          const expected = oracleExport(oracle.accepted, config);
          await withStore(async (db) => {
            expectSameFates(runs, await ingestRuns(db, runs, config, batchSize), oracle);
            const result = await exportProjection(db, config);
            expect(ndjson(result.customers) + '\n' + ndjson(result.cohorts)).toEqual(ndjson(expected.customers) + '\n' + ndjson(expected.cohorts));
            // As of an instant anywhere from the first touchpoint to 90 days after the last: the
            // days kept through every run's retractions (late touchpoints, moved deadlines).
            const asOf = new Date(Math.round(first + instant * (last + 90 * DAY - first))).toISOString();
            const days = await readCohortRowsAsOf(db, Date.parse(asOf), config);
            expect({ asOf, rows: days && ndjson(days) }).toEqual({ asOf, rows: ndjson(oracleExport(oracle.accepted, config, asOf).cohorts) });
          });
        },
      ),
      // No shrinking: each try ingests anew, and a first counterexample (with its seed) says enough.
      { numRuns: 12, endOnFailure: true },
    );
    // 12 runs of up to hundreds of small transactions: ~45 s alone, more beside other test files.
  }, 180_000);
});

// Divergences of the product from SPEC §2 / the README that the oracle found, fixed: regressions.
describe('what the oracle found (issue 12)', () => {
  const config = parseLifecycleConfig({});
  const fatesOf = async (runs: readonly (readonly Uint8Array[])[]) =>
    withStore(async (db) => {
      const ingested = await ingestRuns(db, runs, config);
      return { product: ingested.map((r) => r.letters.map((l) => `${l.line}: ${l.reason}`)), recorded: await recordedTouchpoints(db) };
    });
  const oracleFates = (runs: readonly (readonly Uint8Array[])[]) => {
    const lines = oracleIntake(runs.flat()).lines;
    let offset = 0;
    return runs.map((run) => {
      const mine = lines.slice(offset, offset + run.length);
      offset += run.length;
      return mine.flatMap((o, i) => (o.outcome === 'rejected' ? [`${i + 1}: ${o.reason}`] : []));
    });
  };
  const purchase = (amount: object): Buffer =>
    Buffer.from(jsonText({ id: 'p1', type: 'purchase', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c1', properties: { orderId: 'o1', amount } } as Obj));
  const referral = (fields: object): Buffer => Buffer.from(jsonText({ id: 'r1', type: 'referral', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c1', ...fields } as Obj));

  test('id conflicts: in a batch after the first copy was recorded, a repeated conflicting copy is an id_conflict and the recorded content a duplicate', async () => {
    const A = purchase({ amountMinor: 1, currency: 'EUR' });
    const B = purchase({ amountMinor: 2, currency: 'EUR' });
    // Run 2 is one batch: B conflicts with the recorded A, so does B again; A again is a duplicate.
    const runs = [[A], [B, B, A]];
    expect(oracleFates(runs)).toEqual([[], ['1: id_conflict', '2: id_conflict']]);
    expect((await fatesOf(runs)).product).toEqual(oracleFates(runs));
  });

  test('free text: DEL and C1 control characters are refused (README: only tab, LF and CR)', async () => {
    const runs = [[referral({ source: 'billing\u007f' }), referral({ id: 'r2', source: 'billing\u009b2J' }), referral({ id: 'r3', properties: { code: 'x\u0085' } })]];
    expect(oracleFates(runs)).toEqual([['1: invalid_field', '2: invalid_field', '3: invalid_field']]);
    expect((await fatesOf(runs)).product).toEqual(oracleFates(runs));
  });

  test('Money: an unknown field inside amount or cost is kept (SPEC §2), so a copy that differs there is an id_conflict', async () => {
    const runs = [[purchase({ amountMinor: 1, currency: 'EUR', note: 'a' })], [purchase({ amountMinor: 1, currency: 'EUR', note: 'b' })]];
    expect(oracleFates(runs)).toEqual([[], ['1: id_conflict']]);
    const { product, recorded } = await fatesOf(runs);
    expect(recorded.map((t) => t.properties)).toEqual([{ orderId: 'o1', amount: { amountMinor: 1, currency: 'EUR', note: 'a' } }]);
    expect(product).toEqual(oracleFates(runs));
  });

  test('free text has the README length limits (source, campaign, reason: 256; plan, code: 128 code points)', async () => {
    const runs = [[referral({ source: 's'.repeat(257) }), referral({ id: 'r2', properties: { code: 'c'.repeat(129) } }), referral({ id: 'r3', source: 's'.repeat(256), properties: { code: 'c'.repeat(128) } })]];
    expect(oracleFates(runs)).toEqual([['1: invalid_field', '2: invalid_field']]);
    expect((await fatesOf(runs)).product).toEqual(oracleFates(runs));
  });
});
