import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { finished as streamFinished } from 'node:stream/promises';
import { round3 } from './bench-report.js';

/** What one run of a `lifecycle` command took, as the child process itself reported it. */
export interface CliRun {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From spawn to exit: what a user waits, node's start included. */
  seconds: number;
  /**
   * From process.resourceUsage() at exit, added up over the command's processes (an `ingest`
   * under a heap cap is two: the one started and its child that does the work; their peaks
   * added up are at least their peak together); null when it was killed before it could report.
   */
  peakRssKiB: number | null;
  cpuSeconds: number | null;
  /** Warning and error log lines (JSON, level ≥ 40) by message, with their counts. */
  warnings: Record<string, number>;
  stdout: string;
  stderrTail: string;
}

export interface RunningCli {
  readonly pid: number | undefined;
  readonly finished: Promise<CliRun>;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<CliRun>;
}

export interface CliOptions {
  /** Variables added to the bench's environment; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** `text`: kept in CliRun.stdout (a command's JSON summary); a function reads it itself; by default it is discarded. */
  stdout?: 'text' | ((stdout: Readable) => Promise<unknown>);
}

const STDERR_TAIL = 16 * 1024;

/**
 * Peak RSS and CPU must be the command's own, measured by the kernel for its whole life: an
 * `--import` hook writes `process.resourceUsage()` on exit, one file per process (a node process
 * that the command starts with the same options reports too). Polling /proc from outside would
 * miss a peak between two polls; the hook costs nothing while the command runs.
 */
const usageHook = (dir: string) =>
  `data:text/javascript,${encodeURIComponent(`import{writeFileSync}from'node:fs';process.on('exit',()=>writeFileSync(${JSON.stringify(dir)}+'/'+process.pid+'.json',JSON.stringify(process.resourceUsage())))`)}`;

/** The processes' reports added up; undefined when the command's own process did not report. */
async function usageOf(dir: string, pid: number | undefined): Promise<{ maxRSS: number; cpuMicros: number } | undefined> {
  const files = await readdir(dir).catch(() => [] as string[]);
  if (!files.includes(`${pid}.json`)) return undefined;
  const reports = await Promise.all(files.map(async (file) => JSON.parse(await readFile(join(dir, file), 'utf8')) as NodeJS.ResourceUsage));
  return reports.reduce((sum, r) => ({ maxRSS: sum.maxRSS + r.maxRSS, cpuMicros: sum.cpuMicros + r.userCPUTime + r.systemCPUTime }), { maxRSS: 0, cpuMicros: 0 });
}

/** Starts `lifecycle <args>` (this same CLI) in a child process, as a user would run it. */
export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  const usageDir = join(tmpdir(), `lifecycle-bench-usage-${randomUUID()}`);
  mkdirSync(usageDir);
  const command = `lifecycle ${args.join(' ')}`;
  const env = { ...process.env };
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', usageHook(usageDir), process.argv[1]!, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let exitedAt: number | undefined;
  child.once('exit', () => {
    exitedAt = performance.now();
  });
  let stderr = '';
  let partial = '';
  const warnings: Record<string, number> = {};
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const { level, msg } = JSON.parse(line) as { level?: number; msg?: string };
        if ((level ?? 0) >= 40 && msg !== undefined) warnings[msg] = (warnings[msg] ?? 0) + 1;
      } catch {
        // Not a log line: kept in the tail only.
      }
    }
  });
  let stdout = '';
  const reading =
    options.stdout === 'text'
      ? (async () => {
          for await (const chunk of child.stdout.setEncoding('utf8')) stdout += chunk as string;
        })()
      : options.stdout
        ? options.stdout(child.stdout)
        : (child.stdout.resume(), Promise.resolve());
  const finished = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const seconds = ((exitedAt ?? performance.now()) - started) / 1000;
      void (async () => {
        await reading.catch(() => undefined);
        const usage = await usageOf(usageDir, child.pid);
        await rm(usageDir, { recursive: true, force: true });
        resolve({
          command,
          code,
          signal,
          seconds,
          peakRssKiB: usage?.maxRSS ?? null,
          cpuSeconds: usage === undefined ? null : usage.cpuMicros / 1e6,
          warnings,
          stdout,
          stderrTail: stderr,
        });
      })();
    });
  });
  return {
    pid: child.pid,
    finished,
    async stop(graceMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await finished;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export class CliFailedError extends Error {
  override readonly name = 'CliFailedError';
  constructor(run: CliRun) {
    super(`${run.command} failed (${run.signal ?? `exit ${run.code}`}); its stderr ends with:\n${run.stderrTail.trimEnd()}`);
  }
}

/** Runs `lifecycle <args>` to its end; fails unless it exits 0. */
export async function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  const run = await startCli(args, options).finished;
  if (run.code !== 0) throw new CliFailedError(run);
  return run;
}

/** What the JSON file keeps of a run. */
export const runFigures = (run: CliRun) => ({ seconds: round3(run.seconds), peakRssKiB: run.peakRssKiB, cpuSeconds: run.cpuSeconds === null ? null : round3(run.cpuSeconds), warnings: run.warnings });

/**
 * `lifecycle generate <args>` into `file`, its first `maxLines` lines (the generator has no
 * line count of its own, only customers); returns how many lines it wrote.
 */
export async function generateFile(args: readonly string[], file: string, maxLines: number): Promise<number> {
  let lines = 0;
  const out = createWriteStream(file);
  const running = startCli(['generate', ...args], {
    stdout: async (stdout) => {
      for await (const chunk of stdout as AsyncIterable<Buffer>) {
        let end = chunk.length;
        for (let i = chunk.indexOf(10); i !== -1 && lines < maxLines; i = chunk.indexOf(10, i + 1)) {
          lines += 1;
          if (lines === maxLines) end = i + 1;
        }
        if (!out.write(end === chunk.length ? chunk : chunk.subarray(0, end))) await once(out, 'drain');
        if (lines === maxLines) break;
      }
      out.end();
      await streamFinished(out);
      // The rest of the stream is not wanted.
      if (lines === maxLines) void running.stop();
    },
  });
  const run = await running.finished;
  if (run.code !== 0 && lines < maxLines) throw new CliFailedError(run);
  return lines;
}
