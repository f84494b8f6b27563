import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, lifecycle, lifecycleExit } from '../support/cli.js';

/** Polls `check` every 50 ms until it holds; fails after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function background(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

const exportOf = async (dataDir: string) =>
  (await lifecycle(['export', 'customers', '--data-dir', dataDir])).stdout + (await lifecycle(['export', 'cohorts', '--data-dir', dataDir])).stdout;

describe('one process per data directory', () => {
  let dir: string;
  let file: string;
  let reference: string;
  let ingestMs: number;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-datadir-'));
    file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, (await lifecycle(['generate', '--customers', '800', '--seed', '5'])).stdout);
    // Timed from the lock on, as the kill below is: the start of a process is not ingest work.
    const measured = background(['ingest', file, '--data-dir', join(dir, 'reference')]);
    await until(() => existsSync(join(dir, 'reference', 'lifecycle.lock')), 'the reference ingest to take its directory');
    const started = Date.now();
    expect(await measured.exit).toBe(0);
    ingestMs = Date.now() - started;
    reference = await exportOf(join(dir, 'reference'));
  }, 120_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a second ingest into a directory in use is refused at once, exit 2, and nothing is lost', async () => {
    const data = join(dir, 'two-ingests');
    const first = background(['ingest', file, '--data-dir', data]);
    await until(() => existsSync(join(data, 'lifecycle.lock')), 'the first ingest to take the directory');
    const second = await lifecycleExit(['ingest', file, '--data-dir', data]);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`${data} is in use by pid ${first.child.pid} \\(lifecycle ingest .*\\); stop it or use another --data-dir`));
    expect(await first.exit).toBe(0);
    expect(await exportOf(data)).toBe(reference);
  }, 120_000);

  test('an ingest killed with SIGKILL leaves a directory that opens, whole, and a re-ingest completes it', async () => {
    const data = join(dir, 'killed');
    const first = background(['ingest', file, '--data-dir', data]);
    await until(() => existsSync(join(data, 'lifecycle.lock')), 'the ingest to take the directory');
    // A random moment in the second half of a whole ingest's work: inside its transaction, or
    // just before or after its commit. The fault is the point, not a wait for a condition.
    const at = ingestMs * (0.5 + Math.random() * 0.45);
    process.stderr.write(`data-directory: SIGKILL ${Math.round(at)} ms after the lock (a whole ingest takes ${ingestMs} ms)\n`);
    await new Promise((resolve) => setTimeout(resolve, at));
    first.child.kill('SIGKILL');
    expect(await first.exit).toBeNull();
    expect(existsSync(join(data, 'lifecycle.lock'))).toBe(true); // left behind by the dead holder
    const again = JSON.parse((await lifecycle(['ingest', file, '--data-dir', data])).stdout);
    expect(again.accepted + again.duplicates).toBe(again.lines);
    expect(await exportOf(data)).toBe(reference);
  }, 120_000);

  test('an ingest killed inside its commit (test fault) leaves the store as before that transaction', async () => {
    const data = join(dir, 'killed-in-commit');
    const killed = await lifecycleExit(['ingest', file, '--data-dir', data], { env: { ...process.env, LIFECYCLE_TEST_CRASH_BEFORE_COMMIT: 'chunk:1' } });
    expect(killed.stderr).toContain('test fault: SIGKILL inside chunk transaction 1, before its COMMIT');
    expect(killed.code).toBeNull(); // killed by a signal: no exit code
    expect(await lifecycleExit(['export', 'customers', '--data-dir', data])).toMatchObject({ code: 0, stdout: '' });
    const again = JSON.parse((await lifecycle(['ingest', file, '--data-dir', data])).stdout);
    expect(again).toMatchObject({ duplicates: 0, accepted: again.lines });
    expect(await exportOf(data)).toBe(reference);
  }, 120_000);

  test('npm start holds its directory; an ingest is told to send to it, and what it is sent is stored', async () => {
    const data = join(dir, 'served');
    const half = (await readFile(file, 'utf8')).split('\n');
    const [head, tail] = [half.slice(0, half.length >> 1).join('\n') + '\n', half.slice(half.length >> 1).join('\n')];
    await writeFile(join(dir, 'head.ndjson'), head);
    const start = background(['start', '--file', join(dir, 'head.ndjson'), '--data-dir', data, '--port', '0']);
    await until(() => /serving the read models at (\S+)/.test(start.output()), 'start to serve');
    const address = /serving the read models at (\S+)/.exec(start.output())![1]!;

    const refused = await lifecycleExit(['ingest', file, '--data-dir', data]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`send the touchpoints to it: curl --data-binary @FILE ${address}/v1/touchpoints`);

    const response = await fetch(`${address}/v1/touchpoints`, { method: 'POST', body: tail, headers: { 'content-type': 'application/x-ndjson' } });
    expect(response.status).toBe(200);
    const summary = (await response.json()) as { accepted: number; lines: number };
    expect(summary.accepted).toBe(tail.split('\n').filter((l) => l.trim() !== '').length);

    start.child.kill('SIGTERM');
    expect(await start.exit).toBe(0);
    expect(existsSync(join(data, 'lifecycle.lock'))).toBe(false);
    expect(await exportOf(data)).toBe(reference);
  }, 120_000);

  test('start with nothing valid to ingest serves an empty store instead of failing on its summary', async () => {
    await writeFile(join(dir, 'invalid.ndjson'), 'not json\n');
    const start = background(['start', '--file', join(dir, 'invalid.ndjson'), '--data-dir', join(dir, 'empty'), '--port', '0']);
    await until(() => /serving the read models at/.test(start.output()) || start.child.exitCode !== null, 'start to serve or fail');
    expect(start.output()).toContain('no touchpoint stored yet');
    start.child.kill('SIGTERM');
    expect(await start.exit).toBe(0);
  }, 60_000);

  test('start on a port in use fails with exit 2 before it makes or touches a data directory', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const data = join(dir, 'never-made');
      const result = await lifecycleExit(['start', '--data-dir', data, '--port', String(port)]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`port ${port} on 127.0.0.1 is in use`);
      expect(existsSync(data)).toBe(false);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
