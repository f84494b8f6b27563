import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase } from '../support/postgres.js';
import { ensureBroker } from '../support/kafka.js';
import { lifecycle, lifecycleExit } from '../support/cli.js';
import { crashLine, exitWithin, killProjectors, logLines, projector, waitFor } from '../support/distributed.js';

const DAY = 86_400_000;
const purchase = (id: string, customerId: string, occurredAt: string) => ({
  id, type: 'purchase', occurredAt, customerId, properties: { orderId: `o-${id}`, amount: { amountMinor: 100, currency: 'EUR' } },
});
const registration = (id: string, customerId: string, occurredAt: string) => ({ id, type: 'registration', occurredAt, customerId, properties: {} });

// Every last payment is less than 60 days before the latest event time (2025-01-25), so no
// inactivity deadline passes by event time: only the wall clock (today) can churn them.
const touchpoints = [
  registration('w1-r', 'w1', '2025-01-02T00:00:00Z'),
  purchase('w1-p', 'w1', '2025-01-03T00:00:00Z'),
  purchase('w2-p1', 'w2', '2025-01-05T12:00:00Z'),
  purchase('w2-p2', 'w2', '2025-01-10T12:00:00Z'),
  purchase('w3-p', 'w3', '2025-01-20T08:30:00.250Z'),
  // Registered, never paid: no churn episode, whatever the clock says.
  registration('stay-r', 'stay', '2025-01-25T00:00:00Z'),
];
const latestEventTime = Date.parse('2025-01-25T00:00:00Z');
const lastPayments: Record<string, string> = { w1: '2025-01-03T00:00:00Z', w2: '2025-01-10T12:00:00Z', w3: '2025-01-20T08:30:00.250Z' };
const churners = Object.keys(lastPayments).sort();
const stagesBeforeChurn = { stay: 'acquired', w1: 'converted', w2: 'retained', w3: 'converted' };

// Churn is a deadline passing with nothing happening: with no input at all, only the wall clock
// can tell. A projector started with --wall-clock-after-idle records it once, across crashes.
describe('churn noticed by the wall clock while the input is idle', () => {
  let brokers: string;
  let dir: string;
  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-wallclock-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a crash inside the advance commits nothing; then each churn is recorded exactly once, across restarts; other settings are refused', async () => {
    const file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, touchpoints.map((t) => JSON.stringify(t)).join('\n') + '\n');
    const topic = `wallclock-${randomBytes(4).toString('hex')}`;
    const database = await createTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    const churnsByStream = async () =>
      Object.fromEntries(
        (await client.query<{ stream_id: string; n: number }>("SELECT stream_id, count(*)::int AS n FROM lifecycle_events WHERE event_type = 'CustomerChurned' GROUP BY stream_id ORDER BY stream_id")).rows.map((r) => [r.stream_id, r.n]),
      );
    const stages = async () =>
      Object.fromEntries((await client.query<{ customer_id: string; stage: string }>('SELECT customer_id, stage FROM customers ORDER BY customer_id')).rows.map((r) => [r.customer_id, r.stage]));
    // T: the largest of the partitions' watermarks.
    const watermark = async () =>
      Number((await client.query("SELECT max(value::bigint) AS t FROM projection_state WHERE key LIKE 'watermark%'")).rows[0]?.t ?? Number.NaN);
    const eventCount = async () => (await client.query('SELECT count(*)::int AS n FROM lifecycle_events')).rows[0].n as number;
    const exports = async () => ({
      customers: (await lifecycle(['export', 'customers', '--database', database.url])).stdout,
      cohorts: (await lifecycle(['export', 'cohorts', '--database', database.url])).stdout,
    });
    const idle = ['--wall-clock-after-idle', '1'];
    const info = { LOG_LEVEL: 'info' };
    const advanced = (run: ReturnType<typeof projector>) => logLines(run.stderr(), 'wall clock passed deadlines');
    try {
      await lifecycle(['produce', file, '--topic', topic, '--partitions', '2', '--brokers', brokers]);
      await client.connect();

      // 1. Dies inside its first wall-clock advance, after its writes, before COMMIT.
      const first = projector('wall-1', topic, database.url, idle, { LIFECYCLE_TEST_CRASH_BEFORE_COMMIT: 'advance:1' });
      expect(await exitWithin(first, 60_000)).toBeNull();
      expect(first.stderr()).toContain(crashLine('advance', 1));
      // Its chunks committed (the advance waits for them); nothing of the advance did.
      expect(await churnsByStream()).toEqual({});
      expect(await stages()).toEqual(stagesBeforeChurn);
      expect(await watermark()).toBe(latestEventTime);

      // 2. A restarted instance advances to the wall clock: each churner churns once, by inactivity.
      const second = projector('wall-2', topic, database.url, idle, info);
      const changes = await waitFor('the restarted projector to advance past the churn deadlines', () => {
        const lines = advanced(second);
        return lines.length > 0 && lines.reduce((sum, line) => sum + Number(line['stageChanges']), 0);
      });
      expect(changes).toBeGreaterThanOrEqual(churners.length);
      const once = Object.fromEntries(churners.map((id) => [`customer-${id}`, 1]));
      expect(await churnsByStream()).toEqual(once);
      const rows = (await exports()).customers.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(rows.map((r) => [r['customerId'], r['stage'], r['churnedAt'], r['churnReason']])).toEqual([
        ['stay', 'acquired', null, null],
        ...churners.map((id) => [id, 'churned', new Date(Date.parse(lastPayments[id]!) + 60 * DAY).toISOString(), 'inactivity']),
      ]);

      // 3. Killed once idle, another instance advances again (a later watermark): no churn twice.
      const advancedTo = await watermark();
      second.child.kill('SIGKILL');
      expect(await second.exit).toBeNull();
      const third = projector('wall-3', topic, database.url, idle, info);
      await waitFor('the third projector to advance the watermark', async () => (await watermark()) > advancedTo, 90_000);
      third.child.kill('SIGTERM');
      expect(await third.exit).toBe(0);
      expect(await churnsByStream()).toEqual(once);

      // 4. Other settings are refused before anything is touched.
      const config = join(dir, 'other.json');
      await writeFile(config, JSON.stringify({ churn: { inactivityDays: 30 } }));
      const [eventsBefore, exportsBefore] = [await eventCount(), await exports()];
      const refused = await lifecycleExit(['project', '--instance-id', 'wall-4', '--topic', topic, '--database', database.url, '--metrics-port', '0', '--config', config, '--until-idle', ...idle]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/settings.*"inactivityDays":30/);
      expect(refused.stderr).toContain('replay');
      expect(await eventCount()).toBe(eventsBefore);
      expect(await exports()).toEqual(exportsBefore);
    } finally {
      await killProjectors();
      await client.end();
      await database.drop();
    }
  }, 180_000);
});
