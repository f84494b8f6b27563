import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { parseTouchpoint } from '@lifecycle/contracts';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { createTestDatabase } from '../support/postgres.js';
import { ensureBroker } from '../support/kafka.js';
import { lifecycle } from '../support/cli.js';
import { asDeadLetter, projector, readTopic } from '../support/distributed.js';

describe('distributed mode: real Kafka broker, two projector processes, PostgreSQL', () => {
  let brokers: string;
  let dir: string;
  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-kafka-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a projector killed with SIGKILL and restarted: the PostgreSQL export equals the embedded one; the DLQ holds exactly the invalid lines', async () => {
    const lines = [...withDeliveryNoise(generateTouchpoints({ customers: 400, seed: 31, months: 9 }), { seed: 31, duplicateRate: 0.05, invalidRate: 0.02, lateRate: 0.05 })];
    const file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, lines.join('\n') + '\n');
    const invalid = lines.filter((line) => !parseTouchpoint(line).ok);
    expect(invalid.length).toBeGreaterThan(10);

    await lifecycle(['ingest', file, '--data-dir', join(dir, 'embedded')]);
    const expectedCustomers = (await lifecycle(['export', 'customers', '--data-dir', join(dir, 'embedded')])).stdout;
    const expectedCohorts = (await lifecycle(['export', 'cohorts', '--data-dir', join(dir, 'embedded')])).stdout;

    const topic = `touchpoints-${randomBytes(4).toString('hex')}`;
    const database = await createTestDatabase();
    try {
      const produced = JSON.parse((await lifecycle(['produce', file, '--topic', topic, '--partitions', '4', '--brokers', brokers])).stdout);
      expect(produced.accepted).toBe(lines.length - invalid.length);

      const a = projector('a', topic, database.url);
      const b = projector('b', topic, database.url);
      // Kill `a` once it has committed some chunks, in the middle of the run.
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      for (let i = 0; i < 600; i += 1) {
        const rows = await client.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'consumer_offsets'");
        if (rows.rows[0].n > 0 && (await client.query('SELECT coalesce(sum(next_offset), 0)::int AS n FROM consumer_offsets')).rows[0].n > 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await client.end();
      a.child.kill('SIGKILL');
      expect(await a.exit).toBeNull();
      const restarted = projector('a', topic, database.url);
      expect(await b.exit).toBe(0);
      expect(await restarted.exit).toBe(0);

      const customers = (await lifecycle(['export', 'customers', '--database', database.url])).stdout;
      const cohorts = (await lifecycle(['export', 'cohorts', '--database', database.url])).stdout;
      expect(customers).toBe(expectedCustomers);
      expect(cohorts).toBe(expectedCohorts);

      const dead = await readTopic(brokers, `${topic}.dlq`, invalid.length);
      expect([...dead].sort()).toEqual(invalid.map(asDeadLetter).sort());
      // Repartitioned exactly once, although `a` died mid-transaction: read_committed sees each
      // valid input line once in the internal topic.
      const repartitioned = await readTopic(brokers, `${topic}.by-customer`, produced.accepted);
      expect(repartitioned).toHaveLength(produced.accepted);

      await lifecycle(['replay', '--database', database.url]);
      expect((await lifecycle(['export', 'customers', '--database', database.url])).stdout).toBe(expectedCustomers);
    } finally {
      await database.drop();
    }
  }, 240_000);
});
