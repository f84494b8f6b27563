import { spawn } from 'node:child_process';
import { stat, truncate } from 'node:fs/promises';
import { SUPERVISOR_PID_ENV } from '@lifecycle/sql';
import { logger } from './logger.js';

/** A doubled cap above this is no cap: node's own limit. */
const LARGEST_HEAP_CAP_MB = 4096;

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** True in the child that `runUnderHeapCap` started: it does the work itself. */
export const isHeapCapped = () => process.env[SUPERVISOR_PID_ENV] !== undefined;

/**
 * In the child: a supervisor that is gone (SIGKILL) takes the child with it, at the child's next
 * turn of the event loop (an opener of its directory waits for that, see lockDirectory).
 */
export function endWithSupervisor(): void {
  process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));
  process.channel?.unref();
}

export interface HeapCapOptions {
  heapCapMb: number;
  /** The input can be read again (a file, not stdin): a child that reached its cap is followed by one with twice the cap. */
  restartable: boolean;
  /** Cut back to its size before the first child when another starts: that one writes them all again. */
  deadLetters: string;
  source: string;
}

/**
 * Runs this same command again in a child process whose V8 heap is capped (`--max-old-space-size`):
 * V8 lets an uncapped heap grow to 2–4 times what the ingest holds, and only a flag given at
 * start caps it (README, "Benchmarks"). Not a worker thread: node ends a worker at the first
 * sign of its limit, before the collection that would have made room (measured: a worker died
 * at caps where this process lives). The child's exit code or signal is this process's. A child that reaches its cap
 * (SIGABRT) has committed whole batches only: another one with twice the cap ingests the input
 * again, and what the first one stored is recognised as duplicates.
 */
export async function runUnderHeapCap(options: HeapCapOptions): Promise<void> {
  const deadLettersBefore = await sizeOf(options.deadLetters);
  for (let heapCapMb = options.heapCapMb; ; ) {
    const end = await runChild(heapCapMb);
    if (end.signal === 'SIGABRT') {
      const stopped = `ingest of ${options.source} ran out of memory`;
      if (heapCapMb === 0) throw new Error(`${stopped}; the batches it committed stay; a smaller --batch-size needs less`);
      const next = heapCapMb * 2 > LARGEST_HEAP_CAP_MB ? 0 : heapCapMb * 2;
      if (!options.restartable) {
        throw new Error(
          `${stopped} at its heap cap of ${heapCapMb} MiB (--heap-cap); the batches it committed stay; ` +
            `run it again with --heap-cap ${next}${next === 0 ? " (node's own limit)" : ''}: what is stored is recognised as duplicates`,
        );
      }
      if ((await sizeOf(options.deadLetters)) > deadLettersBefore) await truncate(options.deadLetters, deadLettersBefore);
      logger.warn({ source: options.source, heapCapMb, nextHeapCapMb: next }, 'ingest reached its heap cap: ingesting again with a larger cap (what is stored counts as duplicates)');
      heapCapMb = next;
      continue;
    }
    if (end.signal !== null) process.kill(process.pid, end.signal);
    else process.exitCode = end.code ?? 1;
    return;
  }
}

function runChild(heapCapMb: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const args = [...process.execArgv, ...(heapCapMb > 0 ? [`--max-old-space-size=${heapCapMb}`] : []), process.argv[1]!, ...process.argv.slice(2)];
  const child = spawn(process.execPath, args, { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: { ...process.env, [SUPERVISOR_PID_ENV]: String(process.pid) } });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED_SIGNALS) process.off(s, forward);
      resolve({ code, signal });
    });
  });
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}
