import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { CHURN_REASONS, REJECTION_REASONS, STAGES, TOUCHPOINT_TYPES, parseTouchpoint } from '@lifecycle/contracts';
import { cli, lifecycle } from '../support/cli.js';
import { ensureBroker } from '../support/kafka.js';
import { createTestDatabase } from '../support/postgres.js';
import { exitWithin } from '../support/distributed.js';
import { parseExposition, type Series } from '../support/exposition.js';

// SPEC §8: label values are bounded sets, never a customer id. A real projector process is scraped
// after it projected a noisy stream; every lifecycle_* series must carry only the label names and
// values of the README's metrics table.


const PARTITIONS = 4;
const stages = new Set<string>(STAGES);

/** The README's metrics table: per series name, each label and the values it may take. */
function documented(topic: string): Record<string, Record<string, (value: string) => boolean>> {
  const oneOf = (...values: readonly string[]) => (value: string) => values.includes(value);
  const service = oneOf('projector');
  const topics = oneOf(topic, `${topic}.by-customer`);
  const partition = oneOf(...Array.from({ length: PARTITIONS }, (_, i) => String(i)));
  const le = (value: string) => value === '+Inf' || Number.isFinite(Number(value));
  return {
    lifecycle_touchpoints_total: { service, type: oneOf(...TOUCHPOINT_TYPES, 'unknown'), outcome: oneOf('accepted', 'duplicate', 'rejected') },
    lifecycle_touchpoints_rejected_total: { service, reason: oneOf(...REJECTION_REASONS) },
    lifecycle_stage_transitions_total: { service, from: (v) => v === 'none' || stages.has(v), to: (v) => stages.has(v) },
    lifecycle_churned_customers_total: { service, reason: oneOf(...CHURN_REASONS) },
    lifecycle_reactivated_customers_total: { service },
    lifecycle_customers: { service, stage: (v) => stages.has(v) },
    lifecycle_churn_rate: { service, window: oneOf('1d', '7d', '30d') },
    lifecycle_consumer_lag_messages: { service, topic: topics, partition },
    lifecycle_batch_duration_seconds_bucket: { service, le },
    lifecycle_batch_duration_seconds_sum: { service },
    lifecycle_batch_duration_seconds_count: { service },
    lifecycle_store_errors_total: { service, store: oneOf('postgres', 'embedded') },
  };
}

/** Every id-like string of the input, valid lines and invalid ones (as far as they parse). */
function identifiers(lines: readonly string[]): Set<string> {
  const ids = new Set<string>();
  const keys = ['id', 'customerId', 'anonymousId', 'referredBy', 'referredCustomerId', 'orderId', 'subscriptionId'];
  for (const line of lines) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    const properties = (value as { properties?: unknown }).properties;
    for (const source of [value, typeof properties === 'object' && properties !== null ? properties : {}] as Record<string, unknown>[]) {
      for (const key of keys) if (typeof source[key] === 'string') ids.add(source[key]);
    }
  }
  return ids;
}

describe('labels of a real projector scrape', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-labels-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('every lifecycle_* series carries only documented label names and values, never an id of the input', async () => {
    const brokers = ensureBroker();
    const topic = `labels-${randomBytes(4).toString('hex')}`;
    const lines = (await lifecycle(['generate', '--customers', '200', '--seed', '12', '--invalid-rate', '0.05', '--duplicate-rate', '0.05'])).stdout.trimEnd().split('\n');
    const file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, lines.join('\n') + '\n');
    const invalid = lines.filter((line) => !parseTouchpoint(line).ok);
    const valid = lines.flatMap((line) => {
      const verdict = parseTouchpoint(line);
      return verdict.ok ? [verdict.touchpoint] : [];
    });
    // An id recorded first with other content: the projector's own rejection (id_conflict).
    const conflict = JSON.stringify({ ...valid[0]!, source: 'a-conflicting-copy' });
    const distinctValid = new Set(valid.map((t) => t.id)).size;

    const database = await createTestDatabase();
    const child = spawn(
      process.execPath,
      [cli, 'project', '--brokers', brokers, '--topic', topic, '--partitions', String(PARTITIONS), '--database', database.url, '--instance-id', 'labels', '--metrics-port', '0'],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      // `produce` dead-letters invalid lines itself; they reach the projector (and its rejection
      // counter) only from a producer that does not validate, so they also go to the topic raw.
      expect(JSON.parse((await lifecycle(['produce', file, '--brokers', brokers, '--topic', topic, '--partitions', String(PARTITIONS)])).stdout).accepted).toBe(valid.length);
      const producer = new Kafka({ brokers: [brokers], clientId: 'test-raw-producer', logLevel: logLevel.NOTHING }).producer();
      await producer.connect();
      try {
        await producer.send({ topic, acks: -1, messages: [...invalid, conflict].map((value) => ({ value })) });
      } finally {
        await producer.disconnect();
      }

      const deadline = Date.now() + 90_000;
      let address: string | undefined;
      while (address === undefined) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no "projector starting" log line; stderr:\n${stderr}`);
        for (const line of stderr.split('\n').filter((l) => l.startsWith('{'))) {
          const entry = JSON.parse(line) as { msg?: string; metrics?: string };
          if (entry.msg === 'projector starting') address = entry.metrics;
        }
        if (address === undefined) await new Promise((r) => setTimeout(r, 100));
      }

      // Wait for lag 0 on every partition of both topics and every line counted (the counters move
      // after the commit that moves the offsets).
      let series: Series[] = [];
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the projector exited with ${child.exitCode}; stderr:\n${stderr}`);
        series = parseExposition(await (await fetch(`${address}/metrics`)).text());
        const lag = series.filter((s) => s.name === 'lifecycle_consumer_lag_messages');
        const counted = (outcome: string) => series.filter((s) => s.name === 'lifecycle_touchpoints_total' && s.labels['outcome'] === outcome).reduce((n, s) => n + s.value, 0);
        if (lag.length === 2 * PARTITIONS && lag.every((s) => s.value === 0) && counted('accepted') === distinctValid && counted('rejected') === invalid.length + 1) break;
        if (Date.now() > deadline) throw new Error(`lag not 0 within 90 s: ${JSON.stringify(lag)}; stderr:\n${stderr.slice(-4_000)}`);
        await new Promise((r) => setTimeout(r, 500));
      }

      const allowed = documented(topic);
      const lifecycleSeries = series.filter((s) => s.name.startsWith('lifecycle_'));
      const offending = lifecycleSeries.filter((s) => {
        const labels = allowed[s.name];
        if (labels === undefined) return true; // a lifecycle_* metric the README does not list
        const names = Object.keys(s.labels);
        return names.length !== Object.keys(labels).length || names.some((name) => labels[name] === undefined || !labels[name]!(s.labels[name]!));
      });
      expect(offending).toEqual([]);
      const ids = identifiers([...lines, conflict]);
      expect(series.flatMap((s) => Object.values(s.labels).filter((value) => ids.has(value)).map((value) => `${s.name}: ${value}`))).toEqual([]);

      // The check above saw the paths that could leak: every outcome, the reasons of the input's
      // rejections, the unknown type, stage changes.
      const values = (name: string, label: string, nonZero = true) =>
        [...new Set(series.filter((s) => s.name === name && (!nonZero || s.value > 0)).map((s) => s.labels[label]))].sort();
      expect(values('lifecycle_touchpoints_total', 'outcome')).toEqual(['accepted', 'duplicate', 'rejected']);
      expect(values('lifecycle_touchpoints_total', 'type')).toContain('unknown');
      const reasons = new Set(invalid.map((line) => { const v = parseTouchpoint(line); return v.ok ? 'valid' : v.rejection.reason; }));
      expect(values('lifecycle_touchpoints_rejected_total', 'reason')).toEqual([...reasons, 'id_conflict'].sort());
      expect(values('lifecycle_stage_transitions_total', 'to').length).toBeGreaterThan(2);
      expect(values('lifecycle_customers', 'stage').length).toBeGreaterThan(2);

      child.kill('SIGTERM');
      expect(await exitWithin({ child, exit }, 30_000)).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exit;
      }
      await database.drop();
    }
  }, 150_000);
});
