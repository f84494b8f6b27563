import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryInUseError, LOCK_FILE, lockDirectory, openPglite } from '@lifecycle/sql';

/** The pid of a process that has exited: a holder killed without releasing its lock. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

const staleLock = (pid: number, host = hostname()) => `${JSON.stringify({ pid, host, command: 'lifecycle ingest x', since: '2026-01-01T00:00:00.000Z' })}\n`;

describe('one process per data directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-lock-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('a second opener is refused with the holder named, until the first releases', async () => {
    const lock = await lockDirectory(dir, 'lifecycle start');
    await lock.describe({ servingAt: 'http://127.0.0.1:3000' });
    const refused = await lockDirectory(dir, 'lifecycle ingest f').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DirectoryInUseError);
    expect((refused as Error).message).toContain(`is in use by pid ${process.pid} (lifecycle start`);
    expect((refused as Error).message).toContain('GET http://127.0.0.1:3000/customers');
    expect((refused as Error).message).toContain('curl --data-binary @FILE http://127.0.0.1:3000/v1/touchpoints');
    await lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    await (await lockDirectory(dir, 'lifecycle ingest f')).release();
  });

  test('a lock whose process is gone is taken over', async () => {
    await writeFile(join(dir, LOCK_FILE), staleLock(deadPid()));
    const lock = await lockDirectory(dir, 'lifecycle ingest f');
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, command: 'lifecycle ingest f' });
    await lock.release();
  });

  test('a lock whose process exited but was not reaped (a zombie, under a parent that never waits) is taken over', async () => {
    // `sh` starts `true` in the background, prints its pid and becomes `sleep`, which never reaps it.
    const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 30']);
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (data: Buffer) => resolve(data.toString()))));
      let state = '';
      for (let i = 0; i < 100 && state !== 'Z'; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        state = stat[stat.lastIndexOf(')') + 2]!;
      }
      expect(state).toBe('Z');
      await writeFile(join(dir, LOCK_FILE), staleLock(pid));
      const lock = await lockDirectory(dir, 'lifecycle ingest f');
      expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
      await lock.release();
    } finally {
      parent.kill();
    }
  });

  test('openers racing for a dead holder’s lock: exactly one wins', async () => {
    await writeFile(join(dir, LOCK_FILE), staleLock(deadPid()));
    // One process, so "alive" is the same pid for all: the winner is told apart by the lock's `command`.
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => lockDirectory(dir, `opener ${i}`)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(DirectoryInUseError);
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof lockDirectory>>>).value.release();
  });

  test('a holder whose supervisor is gone is waited for (it ends itself), one whose supervisor lives is refused at once', async () => {
    // The holder: a live process that ends in a second, as an ingest's child ends when its supervisor is gone.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 1000)']);
    const ended = new Promise((resolve) => holder.once('exit', resolve));
    const lockOf = (supervisor: number) => `${JSON.stringify({ pid: holder.pid, host: hostname(), command: 'lifecycle ingest x', since: '2026-01-01T00:00:00.000Z', supervisor })}\n`;
    await writeFile(join(dir, LOCK_FILE), lockOf(process.pid));
    await expect(lockDirectory(dir, 'x')).rejects.toThrow(`in use by pid ${process.pid} (through its child pid ${holder.pid}) (lifecycle ingest x`);
    await writeFile(join(dir, LOCK_FILE), lockOf(deadPid()));
    let taken = false;
    const lock = lockDirectory(dir, 'lifecycle ingest f').then((l) => ((taken = true), l));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(taken).toBe(false);
    await ended;
    await (await lock).release();
  });

  test('a lock held on another host is never taken over (its pid means nothing here)', async () => {
    await writeFile(join(dir, LOCK_FILE), staleLock(deadPid(), 'elsewhere'));
    await expect(lockDirectory(dir, 'x')).rejects.toThrow(/in use by pid \d+ on host elsewhere/);
  });

  test('the embedded store takes the lock and frees it on close', async () => {
    const db = await openPglite(dir);
    await expect(openPglite(dir)).rejects.toBeInstanceOf(DirectoryInUseError);
    await db.close();
    const again = await openPglite(dir);
    await again.close();
  });
});
