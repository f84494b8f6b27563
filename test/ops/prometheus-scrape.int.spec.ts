import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseTouchpoint } from '@lifecycle/contracts';
import { createTestDatabase } from '../support/postgres.js';
import { cli, lifecycle } from '../support/cli.js';
import { ensureBroker, stopBroker, type OwnBroker } from '../support/kafka.js';
import { requireBinaries } from '../support/binaries.js';
import { exitWithin } from '../support/distributed.js';

// A real scrape (SPEC §8): a real Prometheus server on loopback scrapes a running projector
// (`lifecycle project`, real Kafka broker, PostgreSQL) every second and evaluates the repository's
// own rules (infra/prometheus/rules/lifecycle.rules.yml) every second, while a churn wave flows.
// Checked through Prometheus's HTTP API: the churn, customer and touchpoint metrics arrived, and
// LifecycleChurnSpike goes *pending* (`for: 10m`: firing is covered by the promtool unit tests in
// infra/prometheus/tests/).
//
// The spike alert compares the last hour with a 7-day baseline that only exists once
// `up{job="projector"}` has 7d+1h of history. That history is made honestly with Prometheus's own
// backfill: an OpenMetrics file with 8 days of `up` and a steady churn of 1 an hour (samples every
// 5 minutes, ending 10 minutes before now) becomes TSDB blocks with `promtool tsdb
// create-blocks-from openmetrics`, in the data directory the server then starts on. The backfilled
// series carry `instance="backfill"`; the live target is `instance="127.0.0.1:<port>"`.
//
// Kafka: a broker of this test's own, started by the project's script (infra/kafka/kafka.sh, the
// one ensureBroker() in test/support/kafka.ts runs) on free ports with its state in the temp
// directory, and stopped at the end: nothing else on the shared development broker (another
// test's projectors, a crashed run's leftovers) can slow this one down while its timing matters.
//
// Prometheus comes from Debian's `prometheus` package (`.ci/run` installs it): in CI its absence is
// a failure, elsewhere the test says it skipped.

const execFileAsync = promisify(execFile);
const root = join(import.meta.dirname, '../..');
const rulesFile = join(root, 'infra/prometheus/rules/lifecycle.rules.yml');

const { run: prometheusHere, missing } = requireBinaries('prometheus-scrape (the real-scrape test)', { prometheus: ['--version'], promtool: ['--version'] }, 'prometheus');

const HOUR = 3_600;
const SAMPLE_EVERY = 300; // seconds between backfilled samples
const BACKFILL_DAYS = 8;
const WAVE = 60; // churned customers in the wave: >= 20 and > 3x the baseline of ~1 an hour

// ---------------------------------------------------------------------------------------------
// Processes

interface Proc {
  name: string;
  child: ChildProcess;
  exit: Promise<number | null>;
  output: () => string;
}

function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { name, child, exit, output: () => output };
}

const running = (proc: Proc | undefined): proc is Proc => proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null;

/** SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves with the exit code. */
async function stop(proc: Proc, graceMs = 15_000): Promise<number | null> {
  if (running(proc)) proc.child.kill('SIGTERM');
  const result = await exitWithin(proc, graceMs);
  if (result === 'still running') {
    throw new Error(`${proc.name} did not stop within ${graceMs} ms of SIGTERM; output:\n${proc.output().slice(-4_000)}`);
  }
  return result;
}

/** A port free right now on 127.0.0.1 (Prometheus needs one up front). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a wait watches: `check` throws when waiting is pointless (a process died). */
interface Watch {
  check: () => void;
  diagnostics: () => string;
}

/** Polls `probe` until it returns a value (not undefined); the error names what was awaited. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, watch: Watch): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      watch.check();
    } catch (error) {
      throw new Error(`while waiting for ${what}: ${(error as Error).message}\n${watch.diagnostics()}`);
    }
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n${watch.diagnostics()}`);
    }
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus HTTP API

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

interface RuleGroup {
  name: string;
  rules: { name: string; type: 'alerting' | 'recording'; health: string; lastError?: string; state?: string }[];
}

async function api<T>(base: string, path: string): Promise<T> {
  const response = await fetch(`${base}${path}`);
  const body = (await response.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? response.status}`);
  return body.data;
}

async function query(base: string, expr: string): Promise<Sample[]> {
  const data = await api<{ resultType: string; result: Sample[] }>(base, `/api/v1/query?query=${encodeURIComponent(expr)}`);
  return data.result;
}

/** The value of a query that must give one sample, or undefined when it gives none. */
async function scalar(base: string, expr: string): Promise<number | undefined> {
  const result = await query(base, expr);
  if (result.length > 1) throw new Error(`${expr}: ${result.length} series, expected one`);
  return result.length === 0 ? undefined : Number(result[0]!.value[1]);
}

// ---------------------------------------------------------------------------------------------
// Input

/**
 * 8 days of history in OpenMetrics text, ending at `end` (seconds): `up` of the projector job and
 * a churn counter growing by 1 every hour, so the 7-day baseline is ~1 churn an hour.
 */
function backfill(end: number): string {
  const first = end - BACKFILL_DAYS * 24 * HOUR;
  const labels = 'job="projector",instance="backfill"';
  const up = ['# HELP up Backfilled: the projector was scraped.', '# TYPE up gauge'];
  const churned = ['# HELP lifecycle_churned_customers Backfilled: churns recorded.', '# TYPE lifecycle_churned_customers counter'];
  for (let t = first; t <= end; t += SAMPLE_EVERY) {
    up.push(`up{${labels}} 1 ${t}`);
    churned.push(`lifecycle_churned_customers_total{${labels},reason="inactivity",service="projector"} ${Math.floor((t - first) / HOUR)} ${t}`);
  }
  return [...up, ...churned, '# EOF', ''].join('\n');
}

const registration = (customerId: string, at: string) => ({ id: `reg-${customerId}`, type: 'registration', occurredAt: at, customerId, properties: { channel: 'search' } });
const purchase = (customerId: string, at: string) => ({
  id: `buy-${customerId}`,
  type: 'purchase',
  occurredAt: at,
  customerId,
  properties: { orderId: `order-${customerId}`, amount: { amountMinor: 999, currency: 'USD' } },
});
const iso = (ms: number) => new Date(ms).toISOString();
const DAY_MS = 86_400_000;

/**
 * Priming (see the test): `prime-a` converts on 2025-01-01 and nothing follows; `prime-b` registers
 * on 2025-03-15, past prime-a's inactivity deadline (60 days, packages/contracts defaults), so the
 * projector appends one churn, reason `inactivity`.
 */
const primingStream = () => [registration('prime-a', '2025-01-01T10:00:00Z'), purchase('prime-a', '2025-01-01T10:05:00Z'), registration('prime-b', '2025-03-15T10:00:00Z')];

/**
 * The churn wave: WAVE customers register and pay in April 2025 and are never heard of again; one
 * other customer registers on 2025-07-15, which moves the watermark (the latest event time) past
 * all their inactivity deadlines (last payment + 60 days ≤ 2025-06-01). The projector re-folds the
 * customers whose stored deadline the watermark passed (customersDueBy in packages/projection), or,
 * if their touchpoints arrive after the July one on the other partition, folds them churned right
 * away: WAVE churns either way, all `inactivity`.
 */
function waveStream() {
  const lines = [];
  for (let i = 0; i < WAVE; i += 1) {
    const id = `wave-${String(i).padStart(2, '0')}`;
    const at = Date.parse('2025-04-01T08:00:00Z') + i * 6 * 3_600_000;
    lines.push(registration(id, iso(at)), purchase(id, iso(at + 15 * 60_000)));
  }
  lines.push(registration('late-a', iso(Date.parse('2025-06-01T00:00:00Z') + 44 * DAY_MS)));
  return lines;
}

// ---------------------------------------------------------------------------------------------

(prometheusHere ? describe : describe.skip)('a real Prometheus scrapes a running projector during a churn wave', () => {
  let dir: string | undefined;
  let database: { url: string; drop: () => Promise<void> } | undefined;
  let projector: Proc | undefined;
  let prometheus: Proc | undefined;
  let broker: OwnBroker | undefined;
  let brokers: string;

  beforeAll(async () => {
    if (missing.length > 0) {
      throw new Error(`${missing.join(' and ')} not found on PATH, and CI=true: the real-scrape test needs Debian's prometheus package (apt-get install prometheus, as .ci/run does)`);
    }
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-prometheus-'));
    const port = await freePort();
    let controllerPort = await freePort();
    while (controllerPort === port) controllerPort = await freePort();
    broker = { port, controllerPort, state: join(dir, 'kafka') };
    brokers = ensureBroker(broker);
    database = await createTestDatabase();
  }, 330_000);

  afterAll(async () => {
    // Whatever happened: no process, directory or database is left behind.
    for (const proc of [prometheus, projector]) {
      if (running(proc)) await stop(proc, 10_000).catch((error: Error) => process.stderr.write(`${error.message}\n`));
    }
    if (broker !== undefined) {
      try {
        stopBroker(broker);
      } catch (error) {
        process.stderr.write(`kafka.sh stop: ${(error as Error).message}\n`);
      }
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    if (database !== undefined) await database.drop();
  }, 60_000);

  test('the churn metrics arrive, the 7-day baseline comes from the backfill, and LifecycleChurnSpike goes pending', async () => {
    const work = dir!;
    const started = () => [projector, prometheus].filter((p): p is Proc => p !== undefined);
    const watch: Watch = {
      check: () => {
        for (const p of started()) if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} exited (code ${p.child.exitCode}, signal ${p.child.signalCode})`);
      },
      diagnostics: () => started().map((p) => `--- ${p.name} (last output) ---\n${p.output().slice(-3_000)}`).join('\n'),
    };

    // 1. Backfill 8 days of history into a fresh TSDB directory. promtool cuts 2-hour blocks
    //    (this promtool has no --max-block-duration flag: ~97 small blocks, which the server
    //    loads in well under a second and compacts later on its own).
    const now = Math.floor(Date.now() / 1000);
    const end = now - 600 - (now % SAMPLE_EVERY); // a bit before now: the live head starts after it
    const openMetrics = join(work, 'backfill.om.txt');
    const tsdb = join(work, 'tsdb');
    await writeFile(openMetrics, backfill(end));
    await mkdir(tsdb);
    await execFileAsync('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', openMetrics, tsdb], { maxBuffer: 16 << 20 });

    // 2. The projector, kept running (no --until-idle: it serves /metrics until SIGTERM).
    const topic = `prom-scrape-${randomBytes(4).toString('hex')}`;
    projector = start(
      'projector',
      process.execPath,
      [cli, 'project', '--brokers', brokers, '--topic', topic, '--partitions', '2', '--database', database!.url, '--instance-id', `prom-${topic}`, '--metrics-port', '0'],
      { ...process.env, LOG_LEVEL: 'info' },
    );
    const metricsUrl = await waitFor(
      'the projector to serve /metrics',
      async () => projector!.output().match(/"metrics":"(http:\/\/[^"]+)"/)?.[1],
      30_000,
      watch,
    );
    const target = new URL(metricsUrl).host; // 127.0.0.1:<port>, Prometheus's `instance` label
    const live = `job="projector",instance="${target}"`;

    // Before any churn the counter is exported at 0 for each reason (metrics.ts); the test only
    // depends on no churn having been counted yet.
    const before = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(before).toContain('# TYPE lifecycle_churned_customers_total counter');
    expect(before).not.toMatch(/^lifecycle_churned_customers_total\S* [1-9]/m);

    // 3. Prometheus: scrape and evaluate every second, the repository's rules (absolute path).
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const config = join(work, 'prometheus.yml');
    await writeFile(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(rulesFile)}`,
        'scrape_configs:',
        '  - job_name: projector',
        '    static_configs:',
        `      - targets: [${JSON.stringify(target)}]`,
        '',
      ].join('\n'),
    );
    prometheus = start('prometheus', 'prometheus', [
      `--config.file=${config}`,
      `--storage.tsdb.path=${tsdb}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ]);
    await waitFor(
      'Prometheus to be ready',
      async () => ((await fetch(`${base}/-/ready`)).ok ? true : undefined),
      30_000,
      watch,
    );

    // The rules loaded without error, and the backfill gives the baseline: 1 churn an hour.
    const groups = (await api<{ groups: RuleGroup[] }>(base, '/api/v1/rules')).groups;
    expect(groups.map((g) => g.name).sort()).toEqual(['lifecycle-churn', 'lifecycle-input', 'lifecycle-projector']);
    const baseline = await waitFor('the 7-day churn baseline', () => scalar(base, 'lifecycle:churned_customers:increase1h_avg7d'), 15_000, watch);
    expect(baseline).toBeGreaterThan(0.9);
    expect(baseline).toBeLessThan(1.1);
    expect(await scalar(base, 'group(present_over_time(up{job="projector"}[1h] offset 7d))')).toBe(1);

    // 4. The live target is up and has been scraped a few times before anything churns.
    await waitFor('a few scrapes of the live projector', async () => ((await scalar(base, `min_over_time(up{${live}}[1m]) * count_over_time(up{${live}}[1m])`)) ?? 0) >= 3 || undefined, 30_000, watch);

    // 5. Priming: one churn before the wave. `increase()` needs two samples of a series and
    //    counts from the first one it has; the zero-initialised series has those already, and the
    //    single churn checks that a lone churn before the wave is counted but does not page.
    const priming = primingStream();
    const wave = waveStream();
    for (const line of [...priming, ...wave]) expect(parseTouchpoint(JSON.stringify(line)).ok).toBe(true);
    const primingFile = join(work, 'priming.ndjson');
    await writeFile(primingFile, priming.map((t) => JSON.stringify(t)).join('\n') + '\n');
    expect(JSON.parse((await lifecycle(['produce', primingFile, '--topic', topic, '--partitions', '2', '--brokers', brokers])).stdout).accepted).toBe(priming.length);
    const churnCounter = `lifecycle_churned_customers_total{${live},reason="inactivity",service="projector"}`;
    await waitFor('the priming churn to be scraped three times', async () => {
      const scraped = await scalar(base, `count_over_time(${churnCounter}[1m]) and ${churnCounter} == 1`);
      return scraped !== undefined && scraped >= 3 ? scraped : undefined;
    }, 60_000, watch);
    expect(await scalar(base, 'ALERTS{alertname="LifecycleChurnSpike"}')).toBeUndefined();

    // 6. The wave.
    const waveFile = join(work, 'wave.ndjson');
    await writeFile(waveFile, wave.map((t) => JSON.stringify(t)).join('\n') + '\n');
    const produced = Date.now();
    expect(JSON.parse((await lifecycle(['produce', waveFile, '--topic', topic, '--partitions', '2', '--brokers', brokers])).stdout).accepted).toBe(wave.length);
    await waitFor(`Prometheus to scrape ${WAVE + 1} churns from the projector`, async () => ((await scalar(base, churnCounter)) === WAVE + 1) || undefined, 60_000, watch);

    // The metrics as Prometheus scraped them from the projector.
    expect(await scalar(base, `sum(lifecycle_churned_customers_total{${live}})`)).toBe(WAVE + 1);
    await waitFor('the customers gauge', async () => ((await scalar(base, `lifecycle_customers{${live},stage="churned"}`)) === WAVE + 1) || undefined, 10_000, watch);
    expect(await scalar(base, `lifecycle_customers{${live},stage="acquired"}`)).toBe(2); // prime-b, late-a
    expect(await scalar(base, `sum(lifecycle_touchpoints_total{${live},outcome="accepted"})`)).toBe(priming.length + wave.length);
    // Lag of both stages, every partition of the input and of the internal topic, drained.
    await waitFor('the consumer lag to drain', async () => ((await scalar(base, `sum(lifecycle_consumer_lag_messages{${live}})`)) === 0) || undefined, 10_000, watch);
    expect(await scalar(base, `count(lifecycle_consumer_lag_messages{${live}})`)).toBe(4);

    // The recorded series: the hour's increase counts the wave, plus the backfill's last ~50
    // minutes (~1), plus increase()'s extrapolation, which is largest right after the wave (a few
    // seconds of samples) and shrinks as samples accumulate: ~60-75 here.
    const hour = await waitFor('the hour\'s churn to include the wave', async () => {
      const value = await scalar(base, 'lifecycle:churned_customers:increase1h');
      return value !== undefined && value >= WAVE ? value : undefined;
    }, 15_000, watch);
    expect(hour).toBeLessThan(WAVE * 1.5);
    expect(await scalar(base, 'reason:lifecycle_churned_customers:increase1h{reason="inactivity"}')).toBeGreaterThanOrEqual(WAVE);
    expect(hour).toBeGreaterThan(3 * baseline);

    // 7. LifecycleChurnSpike: pending (for: 10m), not firing.
    const spike = await waitFor(
      'LifecycleChurnSpike to be pending',
      async () => (await api<{ alerts: Alert[] }>(base, '/api/v1/alerts')).alerts.find((a) => a.labels['alertname'] === 'LifecycleChurnSpike'),
      20_000,
      watch,
    );
    const pendingAfter = (Date.now() - produced) / 1000;
    expect(spike.state).toBe('pending');
    expect(spike.labels['severity']).toBe('page');
    expect(Number(spike.value)).toBeGreaterThanOrEqual(WAVE);
    expect(spike.annotations['summary']).toMatch(/^Churn spike: \d+ customers churned in the last hour$/);
    expect(spike.annotations['description']).toContain('1.0 per hour'); // the baseline, from the backfill
    expect(Date.parse(spike.activeAt)).toBeGreaterThanOrEqual(produced - 2_000);
    const rules = (await api<{ groups: RuleGroup[] }>(base, '/api/v1/rules')).groups.flatMap((g) => g.rules);
    for (const rule of rules) expect({ rule: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({ rule: rule.name, health: 'ok', error: '' });
    expect(rules.find((r) => r.name === 'LifecycleChurnSpike')?.state).toBe('pending');
    expect(rules.find((r) => r.name === 'LifecycleProjectorStalled')?.state).toBe('inactive');
    expect(await scalar(base, 'ALERTS{alertname="LifecycleChurnSpike",alertstate="pending"}')).toBe(1);
    process.stderr.write(`prometheus-scrape: LifecycleChurnSpike pending ${pendingAfter.toFixed(1)} s after the wave was produced (hour ${hour.toFixed(1)}, baseline ${baseline.toFixed(2)}/h)\n`);

    // 8. Clean shutdowns on SIGTERM.
    expect(await stop(projector)).toBe(0);
    expect(await stop(prometheus)).toBe(0);
  }, 120_000);
});
