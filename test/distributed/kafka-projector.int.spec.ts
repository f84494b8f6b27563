import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { parseTouchpoint } from '@lifecycle/contracts';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { createTestDatabase } from '../support/postgres.js';
import { ensureBroker } from '../support/kafka.js';

const run = promisify(execFile);
const cli = join(import.meta.dirname, '../../services/cli/dist/main.js');
const lifecycle = (args: string[]) => run(process.execPath, [cli, ...args], { maxBuffer: 256 << 20 });

function projector(instanceId: string, topic: string, database: string): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [cli, 'project', '--until-idle', '--instance-id', instanceId, '--topic', topic, '--database', database, '--metrics-port', '0', '--chunk-size', '40'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`projector ${instanceId} exited with ${code}:\n${stderr}\n`);
    resolve(code);
  }));
  return { child, exit };
}

async function readTopic(brokers: string, topic: string, expected: number): Promise<string[]> {
  const kafka = new Kafka({ brokers: [brokers], clientId: 'test-reader', logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `test-${randomBytes(4).toString('hex')}` });
  const values: string[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void values.push(message.value!.toString()) });
  const deadline = Date.now() + 20_000;
  while (values.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 1_000)); // anything beyond the expected count shows up too
  await consumer.disconnect();
  return values;
}

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
      expect([...dead].sort()).toEqual([...invalid].sort());

      await lifecycle(['replay', '--database', database.url]);
      expect((await lifecycle(['export', 'customers', '--database', database.url])).stdout).toBe(expectedCustomers);
    } finally {
      await database.drop();
    }
  }, 240_000);
});
