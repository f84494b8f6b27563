import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTouchpoint } from '@lifecycle/contracts';
import { openLifecycleStore, recordedTouchpoints, type StoreLocation } from '@lifecycle/projection';
import { cli, lifecycle } from '../support/cli.js';
import { ensureBroker } from '../support/kafka.js';
import { createTestDatabase } from '../support/postgres.js';

// `ingest`, `start` and `project` with settings other than those the store was projected with are
// refused before any work (README, "Settings"): exit 2, a message that names both settings and
// `replay`, the store as it was, and (embedded) the directory free for the next command.

interface Run {
  code: number | null | 'still running';
  stdout: string;
  stderr: string;
}

/** Runs the CLI; a process still there after `timeoutMs` is SIGKILLed and reported as 'still running' (a refusal must end the process). */
function run(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: late ? 'still running' : code, stdout, stderr });
    });
  });
}

/** The refusal: exit 2, naming the stored settings (inactivity 60), the new ones (30) and `lifecycle replay`. */
function expectRefused(result: Run): void {
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 2, stdout: '' });
  expect(result.stderr).toContain('lifecycle replay');
  expect(result.stderr).toContain('"inactivityDays":60');
  expect(result.stderr).toContain('"inactivityDays":30');
}

/** What a refused run must leave as it was: the exports (from the read models), the event rows, the offsets, the projection state. */
async function snapshot(location: StoreLocation) {
  const where = 'dataDir' in location ? ['--data-dir', location.dataDir] : ['--database', location.databaseUrl];
  const customers = (await lifecycle(['export', 'customers', ...where])).stdout;
  const cohorts = (await lifecycle(['export', 'cohorts', ...where])).stdout;
  const db = await openLifecycleStore(location);
  try {
    const events = await db.query<{ position: string | number; event_id: string }>('SELECT position, event_id FROM lifecycle_events ORDER BY position');
    const offsets = await db.query<{ group_id: string; topic: string; partition: number; next_offset: string | number }>(
      'SELECT group_id, topic, partition, next_offset FROM consumer_offsets ORDER BY group_id, topic, partition',
    );
    return {
      customers,
      cohorts,
      events: events.map((e) => `${e.position}:${e.event_id}`),
      offsets: offsets.map((o) => ({ ...o, next_offset: Number(o.next_offset) })),
      state: await db.query('SELECT key, value FROM projection_state ORDER BY key'),
    };
  } finally {
    await db.close();
  }
}

async function recordedIds(location: StoreLocation): Promise<string[]> {
  const db = await openLifecycleStore(location);
  try {
    return (await recordedTouchpoints(db)).map((t) => t.id).sort();
  } finally {
    await db.close();
  }
}

const validIds = (lines: readonly string[]) => [...new Set(lines.flatMap((line) => {
  const verdict = parseTouchpoint(line);
  return verdict.ok ? [verdict.touchpoint.id] : [];
}))].sort();

const exists = (path: string) => access(path).then(() => true, () => false);

describe('settings other than the store holds are refused on every path, before any work', () => {
  let dir: string;
  let first: string;
  let more: string;
  let other: string;
  let firstLines: string[];
  let allLines: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-mismatch-'));
    allLines = (await lifecycle(['generate', '--customers', '40', '--seed', '11', '--invalid-rate', '0.1'])).stdout.trimEnd().split('\n');
    const cut = Math.floor(allLines.length * 0.7);
    firstLines = allLines.slice(0, cut);
    first = join(dir, 'first.ndjson');
    more = join(dir, 'more.ndjson');
    other = join(dir, 'other.json');
    await writeFile(first, firstLines.join('\n') + '\n');
    await writeFile(more, allLines.slice(cut).join('\n') + '\n');
    await writeFile(other, JSON.stringify({ churn: { inactivityDays: 30 } }));
    // A run that did any work would show: `more` has touchpoints the store lacks and lines to dead-letter.
    const moreIds = validIds(allLines.slice(cut));
    const firstIds = new Set(validIds(firstLines));
    expect(moreIds.filter((id) => !firstIds.has(id)).length).toBeGreaterThan(0);
    expect(allLines.slice(cut).filter((line) => !parseTouchpoint(line).ok).length).toBeGreaterThan(0);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('embedded: ingest --data-dir and start --data-dir', async () => {
    const dataDir = join(dir, 'embedded');
    const location = { dataDir };
    const deadLetters = join(dataDir, 'dead-letter.ndjson');
    expect((await run(['ingest', first, '--data-dir', dataDir])).code).toBe(0);
    const before = await snapshot(location);
    const lettersBefore = await readFile(deadLetters, 'utf8');

    expectRefused(await run(['ingest', more, '--data-dir', dataDir, '--config', other]));
    expect(await exists(join(dataDir, 'lifecycle.lock'))).toBe(false);
    expect(await snapshot(location)).toEqual(before);
    expect(await readFile(deadLetters, 'utf8')).toBe(lettersBefore);

    expectRefused(await run(['start', '--file', more, '--port', '0', '--data-dir', dataDir, '--config', other]));
    expect(await exists(join(dataDir, 'lifecycle.lock'))).toBe(false);
    expect(await snapshot(location)).toEqual(before);
    expect(await readFile(deadLetters, 'utf8')).toBe(lettersBefore);

    // The directory is free and nothing was half-done: the same file with the store's settings goes in whole.
    expect((await run(['ingest', more, '--data-dir', dataDir])).code).toBe(0);
    expect(await recordedIds(location)).toEqual(validIds(allLines));
  }, 120_000);

  test('PostgreSQL: ingest --database', async () => {
    const database = await createTestDatabase();
    try {
      const location = { databaseUrl: database.url };
      const deadLetters = join(dir, 'postgres-dead-letters.ndjson');
      expect((await run(['ingest', first, '--database', database.url, '--dead-letters', deadLetters])).code).toBe(0);
      const before = await snapshot(location);
      const lettersBefore = await readFile(deadLetters, 'utf8');

      expectRefused(await run(['ingest', more, '--database', database.url, '--dead-letters', deadLetters, '--config', other]));
      expect(await snapshot(location)).toEqual(before);
      expect(await readFile(deadLetters, 'utf8')).toBe(lettersBefore);

      expect((await run(['ingest', more, '--database', database.url, '--dead-letters', deadLetters])).code).toBe(0);
      expect(await recordedIds(location)).toEqual(validIds(allLines));
    } finally {
      await database.drop();
    }
  }, 120_000);

  test('Kafka → PostgreSQL: project', async () => {
    const brokers = ensureBroker();
    const topic = `mismatch-${randomBytes(4).toString('hex')}`;
    const database = await createTestDatabase();
    const project = (extra: string[] = []) =>
      run(['project', '--brokers', brokers, '--topic', topic, '--partitions', '2', '--database', database.url, '--instance-id', 'a', '--until-idle', '--metrics-port', '0', ...extra], 90_000);
    try {
      const location = { databaseUrl: database.url };
      expect((await run(['produce', first, '--brokers', brokers, '--topic', topic, '--partitions', '2'])).code).toBe(0);
      expect((await project()).code).toBe(0);
      expect(await recordedIds(location)).toEqual(validIds(firstLines));
      expect((await run(['produce', more, '--brokers', brokers, '--topic', topic, '--partitions', '2'])).code).toBe(0);
      const before = await snapshot(location);
      expect(before.offsets.length).toBeGreaterThan(0);

      expectRefused(await project(['--config', other]));
      expect(await snapshot(location)).toEqual(before);

      // Nothing was consumed for good: the next run with the store's settings projects the rest.
      expect((await project()).code).toBe(0);
      expect(await recordedIds(location)).toEqual(validIds(allLines));
    } finally {
      await database.drop();
    }
  }, 180_000);
});
