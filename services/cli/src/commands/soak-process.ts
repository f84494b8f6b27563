import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Child processes of the soak: the real `lifecycle` command (projectors, the HTTP ingest,
 * `produce`, `export`, …) and other programs (kcat, kafka.sh, pg_ctlcluster), run as an
 * operator runs them.
 */

/** The built `lifecycle` command beside this module (dist/main.js): the soak's own entry point is another file. */
export const LIFECYCLE_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'main.js');

const STDERR_TAIL = 32 * 1024;

/** Every child still running, for Ctrl-C: nothing the soak started may outlive it. */
const children = new Set<ChildProcess>();
const track = (child: ChildProcess) => {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
};

export function killEveryChild(): void {
  for (const child of children) child.kill('SIGKILL');
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child whose stderr tail is kept (where a crash says why). */
export interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exit: Promise<Exit>;
  readonly startedAt: number;
  exited: boolean;
  /** The last STDERR_TAIL characters of its stderr. */
  stderr(): string;
}

export function startProcess(name: string, command: string, args: readonly string[], env: Record<string, string> = {}): Running {
  const child = track(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } }));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-STDERR_TAIL)));
  const running: Running = {
    name,
    child,
    startedAt: Date.now(),
    exited: false,
    exit: new Promise<Exit>((resolve) => {
      child.once('error', () => resolve({ code: -1, signal: null }));
      child.once('exit', (code, signal) => {
        running.exited = true;
        resolve({ code, signal });
      });
    }),
    stderr: () => stderr,
  };
  return running;
}

/** `lifecycle <args>` running on its own (a projector, the ingest service). */
export const startLifecycle = (name: string, args: readonly string[], env: Record<string, string> = {}): Running =>
  startProcess(name, process.execPath, [LIFECYCLE_MAIN, ...args], env);

/** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. */
export async function stopProcess(running: Running, graceMs = 30_000): Promise<Exit> {
  if (!running.exited) running.child.kill('SIGTERM');
  const timer = setTimeout(() => running.child.kill('SIGKILL'), graceMs);
  try {
    return await running.exit;
  } finally {
    clearTimeout(timer);
  }
}

export async function killProcess(running: Running): Promise<Exit> {
  if (!running.exited) running.child.kill('SIGKILL');
  return running.exit;
}

export interface Finished extends Exit {
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to its end with `input` on its stdin (if any); never throws for a non-zero
 * exit (the caller decides), but a `timeoutMs` overrun SIGKILLs it.
 */
export function runProcess(command: string, args: readonly string[], options: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Finished> {
  return new Promise((resolve) => {
    const child = track(spawn(command, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } }));
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-STDERR_TAIL)));
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout: '', stderr: `${stderr}${error.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
    if (options.input !== undefined) {
      // A child that dies mid-input (killed, broker gone) closes its stdin: its exit says what happened.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(options.input);
    }
  });
}

export const runLifecycle = (args: readonly string[], options: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Finished> =>
  runProcess(process.execPath, [LIFECYCLE_MAIN, ...args], options);

/** Runs `lifecycle <args>`; fails with its stderr unless it exits 0. */
export async function lifecycleOk(args: readonly string[], options: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<string> {
  const run = await runLifecycle(args, options);
  if (run.code !== 0) throw new Error(`lifecycle ${args.join(' ')} failed (${run.signal ?? `exit ${run.code}`}): ${run.stderr.trim().slice(-4_000)}`);
  return run.stdout;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
