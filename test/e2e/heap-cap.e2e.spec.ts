import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, lifecycle } from '../support/cli.js';

// With --heap-cap, `lifecycle ingest` does its work in a child process started with a capped V8
// heap (README, "Known limits"). A child that reaches its cap is followed by one with twice
// the cap (a file can be read again); the supervisor's exit is the child's, and a supervisor
// killed with SIGKILL takes its child with it.

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function ingest(args: string[], stdin = ''): { pid: number; done: Promise<Run> } {
  const child = spawn(process.execPath, [cli, 'ingest', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.on('error', () => undefined); // an ingest that stops early reads no further (EPIPE)
  child.stdin.end(stdin);
  return { pid: child.pid!, done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))) };
}

const logLines = (stderr: string, message: string) =>
  stderr
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes(message))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const exportsOf = async (dataDir: string) =>
  (await lifecycle(['export', 'customers', '--data-dir', dataDir])).stdout + (await lifecycle(['export', 'cohorts', '--data-dir', dataDir])).stdout;

describe('ingest under a heap cap', () => {
  let dir: string;
  let file: string;
  let reference: { summary: Record<string, number>; exports: string; deadLetters: string };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-heap-cap-'));
    file = join(dir, 'touchpoints.ndjson');
    const generated = await lifecycle(['generate', '--customers', '1500', '--seed', '3', '--duplicate-rate', '0.05', '--invalid-rate', '0.02', '--late-rate', '0.05']);
    await writeFile(file, generated.stdout);
    // No cap (the default): in this one process.
    const run = await ingest([file, '--data-dir', join(dir, 'reference')]).done;
    expect(run.code).toBe(0);
    reference = { summary: JSON.parse(run.stdout), exports: await exportsOf(join(dir, 'reference')), deadLetters: await readFile(join(dir, 'reference', 'dead-letter.ndjson'), 'utf8') };
  }, 120_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('from a file: each child that reaches its cap is followed by one with twice the cap, and the result is that of one ingest', async () => {
    const dataDir = join(dir, 'restarted');
    const run = await ingest([file, '--data-dir', dataDir, '--heap-cap', '24']).done;
    expect(run.code).toBe(0);
    const restarts = logLines(run.stderr, 'ingest reached its heap cap');
    expect(restarts.length).toBeGreaterThan(0);
    restarts.forEach((restart, i) => expect(restart).toMatchObject({ heapCapMb: 24 * 2 ** i, nextHeapCapMb: 48 * 2 ** i }));
    const summary = JSON.parse(run.stdout) as Record<string, number>;
    // What a child stored before it stopped is a duplicate for the next one.
    expect(summary.accepted! + summary.duplicates!).toBe(reference.summary.accepted! + reference.summary.duplicates!);
    expect(summary.rejected).toEqual(reference.summary.rejected);
    expect(await exportsOf(dataDir)).toBe(reference.exports);
    // Cut back before each new child: every dead letter once.
    expect(await readFile(join(dataDir, 'dead-letter.ndjson'), 'utf8')).toBe(reference.deadLetters);
  }, 240_000);

  test('from stdin, which cannot be read again: a child that reaches its cap ends the ingest with what to do, and what it committed stays', async () => {
    const dataDir = join(dir, 'stdin');
    const input = await readFile(file, 'utf8');
    const run = await ingest(['-', '--data-dir', dataDir, '--heap-cap', '24'], input).done;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('ingest of - ran out of memory at its heap cap of 24 MiB (--heap-cap); the batches it committed stay; run it again with --heap-cap 48');
    const again = await ingest(['-', '--data-dir', dataDir, '--heap-cap', '0'], input).done;
    expect(again.code).toBe(0);
    expect(await exportsOf(dataDir)).toBe(reference.exports);
  }, 240_000);

  test('a supervisor killed with SIGKILL takes its child with it, and the next ingest of the directory waits for that instead of refusing', async () => {
    const dataDir = join(dir, 'killed');
    const lockFile = join(dataDir, 'lifecycle.lock');
    const running = ingest([file, '--data-dir', dataDir, '--batch-size', '500', '--heap-cap', '600']);
    // The child holds the lock, and names its supervisor.
    const deadline = Date.now() + 60_000;
    while (!existsSync(lockFile) || !(await readFile(lockFile, 'utf8')).includes('"supervisor"')) {
      if (Date.now() > deadline) throw new Error('the child never took the lock');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const holder = JSON.parse(await readFile(lockFile, 'utf8')) as { pid: number; supervisor: number };
    expect(holder.supervisor).toBe(running.pid);
    process.kill(running.pid, 'SIGKILL');
    expect((await running.done).signal).toBe('SIGKILL');
    const next = ingest([file, '--data-dir', dataDir]).done;
    // The child ends at its next turn of the event loop, well before it could have finished.
    const killedAt = Date.now();
    while (isAlive(holder.pid) && Date.now() - killedAt < 5_000) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isAlive(holder.pid)).toBe(false);
    const rest = await next;
    expect(rest.code).toBe(0);
    expect((JSON.parse(rest.stdout) as { accepted: number }).accepted).toBeGreaterThan(0);
    expect(await exportsOf(dataDir)).toBe(reference.exports);
  }, 240_000);

  test('a misspelled cap is refused before any work', async () => {
    const run = await ingest([file, '--data-dir', join(dir, 'refused'), '--heap-cap', '400MB']).done;
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--heap-cap must be a whole number ≥ 0; got "400MB"');
    expect(existsSync(join(dir, 'refused'))).toBe(false);
  });
});
