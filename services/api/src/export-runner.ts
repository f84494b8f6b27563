import type { LifecycleConfig } from '@lifecycle/contracts';
import type { SqlDatabase } from '@lifecycle/sql';
import { runExportJob, type ExportAnswer, type ExportJob } from './export-jobs.js';

/** Where export computations run: in this thread, or in worker threads (worker-exports.ts). */
export interface ExportRunner {
  run(job: ExportJob): Promise<ExportAnswer>;
  close(): Promise<void>;
}

/** Computations on the event loop: for tests and embedding; the services use workers. */
export function inProcessExports(db: SqlDatabase, config: LifecycleConfig): ExportRunner {
  return { run: (job) => runExportJob(db, config, job), close: async () => undefined };
}

/**
 * At most `capacity` computations at once (SPEC §9: no request can take the server down); the
 * one after is refused at once (503) rather than queued, with a wait in seconds to retry after,
 * from how long recent ones took.
 */
export class ExportSlots {
  #running = 0;
  #averageMs = 1000;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error(`the number of computations at once must be a whole number ≥ 1; got ${capacity}`);
  }

  get running(): number {
    return this.#running;
  }

  /** A slot and the function that gives it back (once, however often it is called); undefined when all are taken. */
  take(): (() => void) | undefined {
    if (this.#running >= this.capacity) return undefined;
    this.#running += 1;
    const started = performance.now();
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#running -= 1;
      // A moving average: recent computations say more about the next wait than old ones.
      this.#averageMs = 0.7 * this.#averageMs + 0.3 * (performance.now() - started);
    };
  }

  /** Seconds to wait before retrying, 1 to 60. */
  get retryAfterSeconds(): number {
    return Math.min(60, Math.max(1, Math.ceil(this.#averageMs / 1000)));
  }
}
