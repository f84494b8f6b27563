import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiKey } from '@lifecycle/access';
import { cli, lifecycle } from '../support/cli.js';

/** A service of the built CLI in a child process, as an operator runs it; its output kept whole. */
export interface Service {
  child: ChildProcess;
  /** The HTTP address it logged once listening. */
  address: string;
  /** Its metrics server's address, when it has one of its own (serve, ingest-server). */
  metrics: string | undefined;
  stdout: () => string;
  stderr: () => string;
  /** Its JSON log lines (stderr) so far. */
  logs: () => Record<string, unknown>[];
  /** Resolves once a log line matches. */
  logged: (match: (line: Record<string, unknown>) => boolean, what: string, ms?: number) => Promise<Record<string, unknown>>;
  /** SIGTERM, and its exit code. */
  stop: () => Promise<number | null>;
}

const SERVING = new Set(['api serving', 'ingest serving', 'serving']);

/** Polls `check` every 25 ms until it holds; fails after `ms` with what was awaited. */
export async function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Starts `lifecycle …args` and waits until it logs that it serves (or fails with what it said, if it exits first). */
export async function startService(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Service> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let exited = false;
  void exit.then(() => (exited = true));
  const logs = () =>
    stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const logged = (match: (line: Record<string, unknown>) => boolean, what: string, ms = 60_000) =>
    until(() => {
      if (exited) throw new Error(`lifecycle ${args.join(' ')} exited before ${what}:\n${stderr}`);
      return logs().find(match);
    }, what, ms);
  const serving = await logged((line) => SERVING.has(String(line['msg'])) && typeof line['address'] === 'string', 'it serves', 120_000);
  return {
    child,
    address: serving['address'] as string,
    metrics: serving['metrics'] as string | undefined,
    stdout: () => stdout,
    stderr: () => stderr,
    logs,
    logged,
    stop: async () => {
      if (!exited) child.kill('SIGTERM');
      return exit;
    },
  };
}

/** An embedded store in `dataDir` holding a generated stream of `customers` customers. */
export async function generatedStore(dir: string, dataDir: string, customers: number, seed = 3): Promise<string> {
  const file = join(dir, `touchpoints-${customers}-${seed}.ndjson`);
  await writeFile(file, (await lifecycle(['generate', '--customers', String(customers), '--seed', String(seed)])).stdout);
  await lifecycle(['ingest', file, '--data-dir', dataDir]);
  return file;
}

/** Writes a key file holding `keys` (their hashes: the secrets stay with the test). */
export const writeKeyFile = (file: string, keys: readonly ApiKey[]) => writeFile(file, JSON.stringify(keys, null, 2));

export const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

/** GET with the given headers: status, headers and text. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(url, { headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}
