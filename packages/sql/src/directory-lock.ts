import { readFile, unlink, writeFile } from 'node:fs/promises';
import { readFileSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** The lock file of an embedded store, beside its data. */
export const LOCK_FILE = 'lifecycle.lock';

/** Who holds a data directory: written into its lock file, shown to whoever finds it taken. */
export interface LockHolder {
  pid: number;
  host: string;
  /** What the holder runs (`lifecycle start`, `ingest file.ndjson`, …). */
  command: string;
  since: string;
  /** The address at which the holder serves this directory's read models and ingest (`npm start`). */
  servingAt?: string;
  /** The process that started the holder, which the holder does not outlive (`ingest` under a heap cap). */
  supervisor?: number;
}

/**
 * Set by a `lifecycle` process for the child that does its work: the child ends itself when its
 * supervisor is gone, and an opener waits for that instead of refusing the directory.
 */
export const SUPERVISOR_PID_ENV = 'LIFECYCLE_SUPERVISOR_PID';

/** How long an opener waits for a holder whose supervisor is gone to end (it may be inside a long statement). */
const ORPHAN_WAIT_MS = 30_000;

/** The directory is held by another live process. */
export class DirectoryInUseError extends Error {
  override readonly name = 'DirectoryInUseError';
  constructor(
    readonly directory: string,
    readonly holder: LockHolder,
  ) {
    // The process a user started: the one that supervises the holder, if any.
    const pid = holder.supervisor !== undefined ? `pid ${holder.supervisor} (through its child pid ${holder.pid})` : `pid ${holder.pid}`;
    const where = holder.host === hostname() ? pid : `${pid} on host ${holder.host}`;
    const send = holder.servingAt
      ? `; it serves this directory at ${holder.servingAt}: read the exports there (GET ${holder.servingAt}/customers, ` +
        `${holder.servingAt}/cohorts) and, to ingest into it while it runs, send the touchpoints to it: ` +
        `curl --data-binary @FILE ${holder.servingAt}/v1/touchpoints`
      : '';
    super(
      `${directory} is in use by ${where} (${holder.command}, since ${holder.since})${send}; ` +
        `stop it or use another --data-dir (if that process is gone, delete ${join(directory, LOCK_FILE)})`,
    );
  }
}

export interface DirectoryLock {
  /** Rewrites what the lock file says about its holder (e.g. once a server listens). */
  describe(extra: Pick<LockHolder, 'servingAt'>): Promise<void>;
  release(): Promise<void>;
}

/**
 * Whether a process has exited but was not reaped yet (a zombie): it holds nothing any more. Its
 * parent reaps it, unless the parent is gone and PID 1 does not reap (a container started without
 * an init): then a holder killed mid-work would keep its directory taken for as long as the
 * container runs. Linux only (/proc); elsewhere, false.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (command) state …": the command may hold spaces and parentheses, the state follows the last ")".
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return false;
  }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch (error) {
    // EPERM: it exists, it is someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM' && !isZombie(pid);
  }
};

const readHolder = async (path: string): Promise<LockHolder | undefined> => {
  try {
    const holder = JSON.parse(await readFile(path, 'utf8')) as LockHolder;
    return typeof holder.pid === 'number' && typeof holder.host === 'string' ? holder : undefined;
  } catch {
    return undefined; // gone, or being written
  }
};

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Takes the one-writer lock of an embedded store directory: two processes on one PGlite
 * directory corrupt it. The file names the holder's pid and host; a lock whose process is gone
 * (SIGKILL, power loss) is taken over. Not proper-lockfile: its staleness is an mtime refreshed
 * by a timer, which a long synchronous PGlite statement would starve, and it cannot say which
 * process holds the directory.
 */
export async function lockDirectory(directory: string, command: string): Promise<DirectoryLock> {
  const path = join(directory, LOCK_FILE);
  const supervisor = Number(process.env[SUPERVISOR_PID_ENV]);
  let holder: LockHolder = { pid: process.pid, host: hostname(), command, since: new Date().toISOString(), ...(Number.isSafeInteger(supervisor) && supervisor > 0 ? { supervisor } : {}) };
  const write = (flag: 'wx' | 'w') => writeFile(path, `${JSON.stringify(holder)}\n`, { flag });
  const orphanDeadline = Date.now() + ORPHAN_WAIT_MS;
  for (let attempt = 1; ; attempt += 1) {
    if (attempt > 200) throw new Error(`could not take ${path} within 5 s; if no lifecycle process uses ${directory}, delete it`);
    try {
      await write('wx');
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const current = await readHolder(path);
    if (current === undefined) {
      // Just created by another opener and not written yet, or not a lock file of ours.
      await pause(25);
      continue;
    }
    const orphaned = current.host === holder.host && current.supervisor !== undefined && !isAlive(current.supervisor);
    if (orphaned && isAlive(current.pid) && Date.now() < orphanDeadline) {
      attempt -= 1; // not a lock being written: a holder about to end
      await pause(50);
      continue;
    }
    if (current.host !== holder.host || isAlive(current.pid)) throw new DirectoryInUseError(directory, current);
    await takeOver(path, current);
  }
  const release = () => {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  };
  // An exit that is not a signal (an uncaught error) still frees the directory; after a signal
  // or SIGKILL the next opener finds the pid gone and takes the lock over.
  process.once('exit', release);
  return {
    async describe(extra) {
      holder = { ...holder, ...extra };
      await write('w');
    },
    async release() {
      process.removeListener('exit', release);
      if ((await readHolder(path))?.pid === process.pid) await unlink(path);
    },
  };
}

/**
 * Removes a dead holder's lock. Two openers may find it dead at once: only the one that creates
 * the takeover file removes it, so neither can remove the lock the other just took.
 */
async function takeOver(path: string, dead: LockHolder): Promise<void> {
  const marker = `${path}.takeover`;
  try {
    await writeFile(marker, String(process.pid), { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const owner = Number(await readFile(marker, 'utf8').catch(() => 'NaN'));
    if (Number.isInteger(owner) && !isAlive(owner)) await unlink(marker).catch(() => undefined);
    await pause(25);
    return;
  }
  try {
    const current = await readHolder(path);
    if (current?.pid === dead.pid && current.since === dead.since) await unlink(path);
  } finally {
    await unlink(marker);
  }
}
