import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { openLifecycleStore, recordedTouchpoints } from '@lifecycle/projection';
import { createTestDatabase } from '../support/postgres.js';
import { ensureBroker } from '../support/kafka.js';
import { lifecycle } from '../support/cli.js';
import { crashLine, deadLetterEntries, expectedDeadLetters, exitWithin, killProjectors, noiseFaultReason, projector, readMessages, readTopic, waitFor } from '../support/distributed.js';

interface Money { amountMinor: number; currency: string }
interface Line { id: string; type: string; occurredAt: string; customerId?: string; properties: { amount?: Money } }

const CRASH_CHUNK = 3;

describe('distributed mode: real Kafka broker, two projector processes, PostgreSQL', () => {
  let brokers: string;
  let dir: string;
  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-kafka-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a projector killed inside a chunk transaction and restarted: the PostgreSQL export equals the embedded one; each line lands exactly once where it belongs', async () => {
    const noisy = [...withDeliveryNoise(generateTouchpoints({ customers: 400, seed: 31, months: 9 }), { seed: 31, duplicateRate: 0.05, invalidRate: 0.02, lateRate: 0.05 })];
    // An id conflict: an existing purchase's id again, with another amount, after everything
    // else (so after the first copy on its partition too); the first copy must stay.
    const original = noisy.find((line) => noiseFaultReason(line) === undefined && (JSON.parse(line) as Line).type === 'purchase')!;
    const first = JSON.parse(original) as Line;
    const conflicting = JSON.stringify({ ...first, properties: { ...first.properties, amount: { ...first.properties.amount!, amountMinor: first.properties.amount!.amountMinor + 100_000 } } });
    const lines = [...noisy, conflicting];
    const file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, lines.join('\n') + '\n');
    const invalid = lines.filter((line) => noiseFaultReason(line) !== undefined);
    const valid = lines.filter((line) => noiseFaultReason(line) === undefined);
    expect(new Set(invalid.map(noiseFaultReason))).toEqual(new Set(['malformed_json', 'unknown_type', 'invalid_field', 'payload_too_large']));
    const firstCopies = new Map<string, Line>();
    for (const line of valid) {
      const t = JSON.parse(line) as Line;
      if (!firstCopies.has(t.id)) firstCopies.set(t.id, t);
    }

    await lifecycle(['ingest', file, '--data-dir', join(dir, 'embedded')]);
    const expectedCustomers = (await lifecycle(['export', 'customers', '--data-dir', join(dir, 'embedded')])).stdout;
    const expectedCohorts = (await lifecycle(['export', 'cohorts', '--data-dir', join(dir, 'embedded')])).stdout;
    // An instant inside the data, inside a day: the cohort table as of it comes from the days the
    // instances kept in their partitions' parts.
    const instants = [...firstCopies.values()].map((t) => Date.parse(t.occurredAt));
    const asOf = new Date(Math.round((Math.min(...instants) + Math.max(...instants)) / 2) + 12_345).toISOString();
    const expectedEarlierCohorts = (await lifecycle(['export', 'cohorts', '--as-of', asOf, '--data-dir', join(dir, 'embedded')])).stdout;

    const topic = `touchpoints-${randomBytes(4).toString('hex')}`;
    const database = await createTestDatabase();
    try {
      const produced = JSON.parse((await lifecycle(['produce', file, '--topic', topic, '--partitions', '4', '--brokers', brokers])).stdout);
      expect(produced.accepted).toBe(valid.length);

      // `a` alone first, so that it surely gets partitions and reaches its chunk CRASH_CHUNK; `b`
      // joins once `a` committed a chunk. `a` dies on its own inside that chunk's transaction,
      // after its writes, before the COMMIT.
      const a = projector('a', topic, database.url, undefined, { LIFECYCLE_TEST_CRASH_BEFORE_COMMIT: `chunk:${CRASH_CHUNK}` });
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const committed = () => client.query('SELECT count(*)::int AS n FROM consumer_offsets').then((r) => r.rows[0].n > 0, () => false); // no table yet
        let exited = false;
        void a.exit.then(() => (exited = true));
        await waitFor('projector a to commit a chunk', async () => exited || (await committed()));
      } finally {
        await client.end();
      }
      const b = projector('b', topic, database.url);
      expect(await exitWithin(a, 120_000)).toBeNull();
      expect(a.stderr()).toContain(crashLine('chunk', CRASH_CHUNK));
      const restarted = projector('a', topic, database.url);
      expect(await b.exit).toBe(0);
      expect(await restarted.exit).toBe(0);

      const customers = (await lifecycle(['export', 'customers', '--database', database.url])).stdout;
      const cohorts = (await lifecycle(['export', 'cohorts', '--database', database.url])).stdout;
      expect(customers).toBe(expectedCustomers);
      expect(cohorts).toBe(expectedCohorts);
      expect((await lifecycle(['export', 'cohorts', '--as-of', asOf, '--database', database.url])).stdout).toBe(expectedEarlierCohorts);
      expect(expectedEarlierCohorts).not.toBe(expectedCohorts);
      // The first copy stayed: the customer's revenue is that of its first copies.
      const revenue: Record<string, number> = {};
      for (const t of firstCopies.values()) {
        if (t.customerId === first.customerId && (t.type === 'purchase' || t.type === 'renewal')) {
          revenue[t.properties.amount!.currency] = (revenue[t.properties.amount!.currency] ?? 0) + t.properties.amount!.amountMinor;
        }
      }
      const row = customers.trim().split('\n').map((line) => JSON.parse(line) as { customerId: string; revenue: unknown }).find((r) => r.customerId === first.customerId);
      expect(row?.revenue).toEqual(revenue);

      // Recorded: each distinct valid id once, the conflicting id with its first copy's content.
      const db = await openLifecycleStore({ databaseUrl: database.url });
      try {
        const recorded = await recordedTouchpoints(db);
        expect(recorded.map((t) => t.id).sort()).toEqual([...firstCopies.keys()].sort());
        expect((recorded.find((t) => t.id === first.id) as Line | undefined)?.properties.amount).toEqual(first.properties.amount);
      } finally {
        await db.close();
      }

      // The DLQ: each invalid line exactly once (from `produce`), with its reason; the conflicting
      // copy from the project stage as id_conflict (at least once: it is sent before the COMMIT).
      const dead = await readMessages(brokers, `${topic}.dlq`, invalid.length + 1);
      expect(deadLetterEntries(dead.filter((m) => m.value !== conflicting))).toEqual(expectedDeadLetters(invalid, noiseFaultReason));
      const conflicts = dead.filter((m) => m.value === conflicting);
      expect(conflicts.length).toBeGreaterThanOrEqual(1);
      expect(new Set(conflicts.map((m) => `${m.headers['lifecycle-reason']} from ${m.headers['lifecycle-topic']}`))).toEqual(new Set([`id_conflict from ${topic}.by-customer`]));
      // Repartitioned exactly once, although `a` died: read_committed sees each valid input line once.
      const repartitioned = await readTopic(brokers, `${topic}.by-customer`, valid.length);
      expect(repartitioned.sort()).toEqual([...valid].sort());

      await lifecycle(['replay', '--database', database.url]);
      expect((await lifecycle(['export', 'customers', '--database', database.url])).stdout).toBe(expectedCustomers);
    } finally {
      await killProjectors();
      await database.drop();
    }
  }, 240_000);

  test('database connections cut while a projector commits: what it had consumed is fetched again, the export equals the embedded one', async () => {
    const lines = [...withDeliveryNoise(generateTouchpoints({ customers: 300, seed: 47, months: 8 }), { seed: 47, duplicateRate: 0.05, invalidRate: 0.02, lateRate: 0.05 })];
    const file = join(dir, 'cut.ndjson');
    await writeFile(file, lines.join('\n') + '\n');
    await lifecycle(['ingest', file, '--data-dir', join(dir, 'cut-embedded')]);
    const expected = (await lifecycle(['export', 'customers', '--data-dir', join(dir, 'cut-embedded')])).stdout;
    const topic = `touchpoints-${randomBytes(4).toString('hex')}`;
    const database = await createTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await lifecycle(['produce', file, '--topic', topic, '--partitions', '4', '--brokers', brokers]);
      const a = projector('a', topic, database.url, ['--until-idle', '--chunk-size', '20']);
      const rewound = () => a.stderr().includes('committing the consumed touchpoints failed');
      // Started (its store opened, its partitions claimed) before the first cut.
      await waitFor('projector a to commit', async () => (await client.query('SELECT to_regclass($1) IS NOT NULL AS t', ['consumer_offsets'])).rows[0].t && (await client.query('SELECT count(*)::int AS n FROM consumer_offsets WHERE next_offset > 0')).rows[0].n > 0);
      // Cut every connection of the projector until one of its commits failed on it (the cut
      // lands inside a transaction sooner or later: most of its time is spent in one).
      await waitFor('a commit cut off', async () => {
        await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
        return rewound();
      }, 60_000, 150);
      expect(await exitWithin(a, 120_000)).toBe(0);
      expect((await lifecycle(['export', 'customers', '--database', database.url])).stdout).toBe(expected);
    } finally {
      await client.end();
      await killProjectors();
      await database.drop();
    }
  }, 240_000);
});
