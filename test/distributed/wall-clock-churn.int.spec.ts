import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase } from '../support/postgres.js';
import { ensureBroker } from '../support/kafka.js';
import { lifecycle } from '../support/cli.js';
import { projector } from '../support/distributed.js';

// Churn is a deadline passing with nothing happening: with no input at all, only the wall clock
// can tell. A projector started with --wall-clock-after-idle records it once, also after a restart.
describe('churn noticed by the wall clock while the input is idle', () => {
  let brokers: string;
  let dir: string;
  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-wallclock-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('records the churn exactly once, across a restart', async () => {
    const touchpoints = [
      { id: 'w-r', type: 'registration', occurredAt: '2025-01-02T00:00:00Z', customerId: 'w', properties: {} },
      { id: 'w-p', type: 'purchase', occurredAt: '2025-01-03T00:00:00Z', customerId: 'w', properties: { orderId: 'o', amount: { amountMinor: 100, currency: 'EUR' } } },
    ];
    const file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, touchpoints.map((t) => JSON.stringify(t)).join('\n') + '\n');
    const topic = `wallclock-${randomBytes(4).toString('hex')}`;
    const database = await createTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    const churnEvents = async () =>
      (await client.query("SELECT count(*)::int AS n FROM lifecycle_events WHERE stream_id = 'customer-w' AND event_type = 'CustomerChurned'")).rows[0].n as number;
    const stageOf = async () => (await client.query("SELECT stage FROM customers WHERE customer_id = 'w'")).rows[0]?.stage as string | undefined;
    try {
      await lifecycle(['produce', file, '--topic', topic, '--partitions', '2', '--brokers', brokers]);
      const idle = ['--wall-clock-after-idle', '1'];
      const first = projector('wall-1', topic, database.url, idle);
      await client.connect();
      let stage: string | undefined;
      for (let i = 0; i < 120 && stage !== 'churned'; i += 1) {
        await new Promise((r) => setTimeout(r, 500));
        stage = await stageOf().catch(() => undefined); // the tables appear with the first batch
      }
      expect(stage).toBe('churned');
      first.child.kill('SIGTERM');
      expect(await first.exit).toBe(0);

      const second = projector('wall-2', topic, database.url, idle);
      await new Promise((r) => setTimeout(r, 8_000)); // several idle ticks
      second.child.kill('SIGTERM');
      expect(await second.exit).toBe(0);
      expect(await churnEvents()).toBe(1);
      const { stdout } = await lifecycle(['export', 'customers', '--database', database.url]);
      expect(JSON.parse(stdout)).toMatchObject({ customerId: 'w', stage: 'churned', churnedAt: '2025-03-04T00:00:00.000Z', churnReason: 'inactivity' });
    } finally {
      await client.end();
      await database.drop();
    }
  }, 120_000);
});
