import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { newApiKey } from '@lifecycle/access';
import { buildApi, inProcessExports, workerExports } from '@lifecycle/api';
import { parseLifecycleConfig } from '@lifecycle/contracts';
import { eventStoreMigrations } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestLines } from '@lifecycle/projection';
import { readModelMigrations } from '@lifecycle/readmodel';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';
import { parseExposition } from '../support/exposition.js';
import { bearer, generatedStore, get, startService, until, writeKeyFile, type Service } from './support.js';

// No request can take a server down (SPEC §9): at most K computations at once, the next refused at
// once with 503 and Retry-After, each in a worker thread, so that probes are answered meanwhile.
describe('lifecycle serve with one computation at a time', () => {
  const key = newApiKey('analyst', ['read']);
  let dir: string;
  let service: Service;
  const asOf = '2024-10-01T00:00:00Z';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-bounded-'));
    await generatedStore(dir, join(dir, 'store'), 4000);
    await writeKeyFile(join(dir, 'keys.json'), [key.key]);
    service = await startService(['serve', '--data-dir', join(dir, 'store'), '--port', '0', '--metrics-port', '0', '--auth-keys', join(dir, 'keys.json'), '--export-concurrency', '1']);
  }, 240_000);
  afterAll(async () => {
    await service?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('beyond K computations at once: 503 at once, with Retry-After; the slot is free again afterwards', async () => {
    const answers = await Promise.all(['/channels', '/cohorts', '/stages'].map((path) => get(`${service.address}${path}?asOf=${asOf}`, bearer(key.secret))));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 503, 503]);
    for (const busy of answers.filter((a) => a.status === 503)) {
      expect(Number(busy.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(busy.text)).toEqual({ error: 'busy', message: expect.stringMatching(/^1 computations are running, the most at once; retry in \d+ s$/) });
    }
    expect((await get(`${service.address}/stages?asOf=${asOf}`, bearer(key.secret))).status).toBe(200);
    const metrics = parseExposition((await get(`${service.metrics}/metrics`)).text);
    const busy = metrics.filter((s) => s.name === 'lifecycle_http_refusals_total' && s.labels['reason'] === 'busy');
    expect(busy.reduce((sum, s) => sum + s.value, 0)).toBe(2);
  });

  test('/health and /metrics are answered while a computation runs', async () => {
    let computed: number | undefined;
    const computation = get(`${service.address}/channels?asOf=${asOf}`, bearer(key.secret)).then((answer) => {
      computed = performance.now();
      return answer;
    });
    const probes: number[] = [];
    // Probes one after another until the computation is done; a probe answered before it ended is
    // one the event loop served while the worker computed.
    while (computed === undefined) {
      const health = await get(`${service.address}/health`);
      expect(health.status).toBe(200);
      probes.push(performance.now());
    }
    expect((await computation).status).toBe(200);
    expect(probes.filter((at) => at < computed!).length).toBeGreaterThan(0);
    expect((await get(`${service.metrics}/metrics`)).status).toBe(200);
  });

  test('a client that goes away mid-stream gives its slot back', async () => {
    const controller = new AbortController();
    const response = await fetch(`${service.address}/customers?format=ndjson&asOf=${asOf}`, { headers: bearer(key.secret), signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    await reader.read(); // the first piece, then the client leaves
    controller.abort();
    await until(async () => (await get(`${service.address}/stages?asOf=${asOf}`, bearer(key.secret))).status === 200 || undefined, 'the slot to be free again', 10_000);
  });
});

describe('export workers', () => {
  const config = parseLifecycleConfig({});
  let db: SqlDatabase;
  const logger = pino({ level: 'silent' });

  beforeAll(async () => {
    db = await openPglite();
    await migrate(db, [...eventStoreMigrations, ...readModelMigrations]);
    await ingestLines(db, [...generateTouchpoints({ customers: 1200, seed: 4 })].map((t) => JSON.stringify(t)), { config });
  });
  afterAll(() => db.close());

  /** Serves `db` with the given runner; GETs `paths` and gives the answers (status, type, body). */
  async function answers(exports: ReturnType<typeof inProcessExports>, paths: readonly string[]) {
    const app = await buildApi({ db, config, exports });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const found: string[] = [];
      for (const path of paths) {
        const answer = await get(base + path);
        found.push(`${answer.status} ${answer.headers.get('content-type')} ${answer.headers.get('link') ?? ''}\n${answer.text}`);
      }
      return found;
    } finally {
      await app.close();
    }
  }

  test('answer what the same computation answers on the event loop, byte for byte, in every format', async () => {
    const paths = [
      '/cohorts',
      '/cohorts?by=channel&format=csv',
      '/channels?asOf=2024-06-01T00:00:00Z&format=ndjson',
      '/churns?format=csv',
      '/stages?asOf=2024-03-01T00:00:00Z',
      '/referrals',
      '/churn-rate?windowDays=7',
      '/customers?asOf=2024-06-01T00:00:00Z',
      '/customers?asOf=2024-06-01T00:00:00Z&format=ndjson',
      '/customers?asOf=2024-06-01T00:00:00Z&format=csv&limit=40&after=c-4-100',
      '/customers?asOf=1999-01-01T00:00:00Z',
    ];
    const inProcess = await answers(inProcessExports(db, config), paths);
    const inWorkers = await answers(workerExports({ db, config, workers: 2, deadlineMs: 60_000, logger }), paths);
    expect(inWorkers).toEqual(inProcess);
    expect(inProcess.every((answer) => answer.startsWith('200 '))).toBe(true);
  });

  test('a body abandoned after its first piece frees its worker (which keeps nothing of it)', async () => {
    const runner = workerExports({ db, config, workers: 1, deadlineMs: 60_000, logger });
    const job = { kind: 'customers', format: 'ndjson', asOf: Date.parse('2024-06-01T00:00:00Z') } as const;
    try {
      const answer = await runner.run(job);
      const pieces = (answer.body as AsyncIterable<string>)[Symbol.asyncIterator]();
      expect((await pieces.next()).done).toBe(false);
      await pieces.return!();
      // One worker: while it is still busy with the abandoned body, a second job is refused.
      const second = await until(
        () =>
          runner.run(job).catch((error: Error) => {
            if (/more export jobs than workers/.test(error.message)) return undefined;
            throw error;
          }),
        'the worker to be free again',
        10_000,
      );
      let rows = 0;
      for await (const piece of second.body) rows += piece.split('\n').length - 1;
      expect(rows).toBeGreaterThan(500); // more than one piece: the first one alone was abandoned
    } finally {
      await runner.close();
    }
  });

  test('a computation over its deadline is stopped and refused with 503; the next one gets a new worker', async () => {
    // No worker starts within a millisecond: the deadline always passes first.
    const hurried = await answers(workerExports({ db, config, workers: 1, deadlineMs: 1, logger }), ['/cohorts', '/cohorts']);
    for (const answer of hurried) {
      expect(answer).toMatch(/^503 application\/json/);
      expect(JSON.parse(answer.split('\n')[1]!)).toEqual({ error: 'too_slow', message: expect.stringContaining('the computation took more than 0.001 s and was stopped') });
    }
  });
});
