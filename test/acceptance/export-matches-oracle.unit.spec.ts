import fc from 'fast-check';
import { parseLifecycleConfig, parseTouchpoint, type LifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { exportProjection, ingestLines, openLifecycleStore, replay } from '@lifecycle/projection';
import { oracleExport } from '../oracle/batch-oracle.js';

/** Ingests each group of lines as a separate run into a fresh in-memory store; returns the export. */
async function ingestRuns(runs: readonly string[][], config: LifecycleConfig, asOf?: number, batchSize = 97) {
  const db = await openLifecycleStore({ dataDir: undefined as unknown as string });
  try {
    for (const lines of runs) await ingestLines(db, lines, { config, batchSize });
    return await exportProjection(db, config, asOf);
  } finally {
    await db.close();
  }
}

const validOf = (lines: readonly string[]): Touchpoint[] =>
  lines.flatMap((line) => {
    const parsed = parseTouchpoint(line);
    return parsed.ok ? [parsed.touchpoint] : [];
  });

const ndjson = (rows: readonly object[]) => rows.map((r) => JSON.stringify(r)).join('\n');

describe('export equals an independent batch recomputation (SPEC §3–§5, §7)', () => {
  const lines = [...withDeliveryNoise(generateTouchpoints({ customers: 150, seed: 11, months: 8 }), { seed: 11, duplicateRate: 0.05, invalidRate: 0.03, lateRate: 0.05 })];
  const valid = validOf(lines);

  test.each([
    ['month, UTC', {}],
    ['week, America/New_York', { cohort: { granularity: 'week', timeZone: 'America/New_York' } }],
    ['day, Asia/Kolkata, short churn windows', { cohort: { granularity: 'day', timeZone: 'Asia/Kolkata' }, churn: { inactivityDays: 20, paymentGraceDays: 3 }, loyalty: { minPayments: 3 } }],
  ])('%s, at the latest instant and at earlier ones', async (_name, settings) => {
    const config = parseLifecycleConfig(settings);
    const latest = await ingestRuns([lines], config);
    const expected = oracleExport(valid, config);
    expect(ndjson(latest.customers)).toEqual(ndjson(expected.customers));
    expect(ndjson(latest.cohorts)).toEqual(ndjson(expected.cohorts));
    expect(latest.customers.length).toBeGreaterThan(30);
    for (const asOf of ['2024-03-15T12:00:00Z', '2024-06-01T00:00:00+02:00']) {
      const db = await ingestRuns([lines], config, Date.parse(asOf));
      const oracle = oracleExport(valid, config, asOf);
      expect(ndjson(db.customers)).toEqual(ndjson(oracle.customers));
      expect(ndjson(db.cohorts)).toEqual(ndjson(oracle.cohorts));
    }
  });

  test('the generated stream exercises every stage, both churn reasons and reactivations', () => {
    const { customers } = oracleExport(valid, parseLifecycleConfig({}));
    const stages = new Set(customers.map((c) => c.stage));
    for (const stage of ['reached', 'acquired', 'converted', 'retained', 'loyal', 'churned']) expect(stages).toContain(stage);
    expect(new Set(customers.map((c) => c.churnReason))).toEqual(new Set([null, 'inactivity', 'payment_failure']));
    expect(customers.some((c) => c.reactivations > 0)).toBe(true);
  });

  test('replay from the streams reproduces the read models', async () => {
    const config = parseLifecycleConfig({});
    const db = await openLifecycleStore({ dataDir: undefined as unknown as string });
    try {
      await ingestLines(db, lines, { config, batchSize: 50 });
      const before = await exportProjection(db, config);
      await replay(db, config);
      expect(await exportProjection(db, config)).toEqual(before);
    } finally {
      await db.close();
    }
  });
});

describe('arrival order, redelivery and splitting never change the export (SPEC §6.1)', () => {
  const base = [...generateTouchpoints({ customers: 12, seed: 5, months: 6 })].map((t) => JSON.stringify(t));
  const config = parseLifecycleConfig({ churn: { inactivityDays: 30 } });
  let expected: string;
  beforeAll(() => {
    const oracle = oracleExport(validOf(base), config);
    expected = ndjson(oracle.customers) + '\n' + ndjson(oracle.cohorts);
  });

  test('shuffled, duplicated and split into several ingest runs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray(base, { minLength: base.length, maxLength: base.length }),
        fc.array(fc.nat(base.length - 1), { maxLength: 20 }),
        fc.array(fc.nat(base.length), { minLength: 0, maxLength: 3 }),
        fc.integer({ min: 1, max: 40 }),
        async (shuffled, redelivered, cuts, batchSize) => {
          const delivered = [...shuffled, ...redelivered.map((i) => base[i]!)];
          const bounds = [0, ...[...cuts].sort((a, b) => a - b), delivered.length];
          const runs = bounds.slice(1).map((end, i) => delivered.slice(bounds[i], end));
          const result = await ingestRuns(runs, config, undefined, batchSize);
          expect(ndjson(result.customers) + '\n' + ndjson(result.cohorts)).toEqual(expected);
        },
      ),
      { numRuns: 12 },
    );
    // 12 runs of up to hundreds of small transactions: ~45 s alone, more beside other test files.
  }, 180_000);
});
