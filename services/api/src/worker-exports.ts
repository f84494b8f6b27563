import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { HttpRefusal } from '@lifecycle/access';
import type { LifecycleConfig } from '@lifecycle/contracts';
import type { SqlDatabase } from '@lifecycle/sql';
import type { Logger } from 'pino';
import type { ExportAnswer, ExportJob } from './export-jobs.js';
import type { FromWorker, ToWorker, WorkerSettings } from './export-protocol.js';
import type { ExportRunner } from './export-runner.js';

// The compiled worker, also from src/*.ts under jest (as page.ts finds the page): a worker
// thread runs JavaScript, so the package must be built.
const WORKER_FILE = fileURLToPath(new URL('../dist/export-worker.js', import.meta.url));

export interface WorkerExportOptions {
  /** The store the API reads: a worker's SQL runs on it, unless `databaseUrl` gives workers their own connection. */
  db: SqlDatabase;
  databaseUrl?: string;
  config: LifecycleConfig;
  /** Workers kept: the most computations that run at once. */
  workers: number;
  /** A computation that has not answered by then is stopped (its worker ended) and refused with 503. */
  deadlineMs: number;
  logger: Logger;
}

/**
 * Export computations in worker threads: the fold of every customer's history (hundreds of ms
 * to seconds of CPU) runs beside the event loop, which only passes SQL (embedded store) and
 * bytes. On PostgreSQL the workers have their own connections and the event loop does nothing.
 */
export function workerExports(options: WorkerExportOptions): ExportRunner {
  const idle: Worker[] = [];
  const all = new Set<Worker>();
  const settings: WorkerSettings = { config: options.config, ...(options.databaseUrl !== undefined ? { databaseUrl: options.databaseUrl } : {}) };

  const start = (): Worker => {
    const worker = new Worker(WORKER_FILE, { workerData: settings });
    all.add(worker);
    worker.on('error', (error) => options.logger.error({ err: error }, 'export worker failed'));
    worker.on('exit', () => retire(worker));
    return worker;
  };
  // A worker that ended, or is being ended, counts no more: its replacement may start at once.
  const retire = (worker: Worker) => {
    all.delete(worker);
    const at = idle.indexOf(worker);
    if (at !== -1) idle.splice(at, 1);
  };

  return {
    run(job) {
      if (all.size - idle.length >= options.workers) return Promise.reject(new Error('more export jobs than workers: the routes take a slot first'));
      const worker = idle.pop() ?? start();
      const { port1, port2 } = new MessageChannel();
      worker.postMessage({ job, port: port2 }, [port2]);
      return converse(worker, port1, options, () => {
        if (all.has(worker)) idle.push(worker);
      }, () => {
        retire(worker);
        void worker.terminate();
      });
    },
    async close() {
      await Promise.all([...all].map((worker) => worker.terminate()));
    },
  };
}

/** One job: serves the worker's SQL, resolves with the answer once it has one, then hands out its body piece by piece. */
function converse(worker: Worker, port: MessagePort, options: WorkerExportOptions, done: () => void, stop: () => void): Promise<ExportAnswer> {
  return new Promise<ExportAnswer>((resolve, reject) => {
    let waiting: { resolve: (piece: IteratorResult<string>) => void; reject: (error: Error) => void } | undefined;
    let state: 'computing' | 'answering' | 'ended' | 'failed' = 'computing';
    let failure: Error | undefined;
    const send = (message: ToWorker) => port.postMessage(message);

    const settle = (outcome: 'ended' | 'failed', error?: Error) => {
      if (state === 'ended' || state === 'failed') return;
      clearTimeout(deadline);
      worker.off('exit', onExit);
      port.close();
      if (outcome === 'failed') {
        failure = error;
        if (state === 'computing') reject(error);
        waiting?.reject(error!);
      } else waiting?.resolve({ value: undefined, done: true });
      waiting = undefined;
      state = outcome;
    };
    const onExit = (code: number) => settle('failed', new Error(`the export worker stopped (exit code ${code})`));
    worker.once('exit', onExit);

    const deadline = setTimeout(() => {
      options.logger.warn({ threadId: worker.threadId, deadlineMs: options.deadlineMs }, 'export computation over its deadline: its worker is stopped');
      settle('failed', new HttpRefusal(503, 'too_slow', `the computation took more than ${options.deadlineMs / 1000} s and was stopped; ask for less (a page, an earlier instant) or retry later`, 'timeout'));
      stop();
    }, options.deadlineMs);

    // The body: each piece asked of the worker when the response wants it. Returning early (the
    // client went away, or the body was never read) tells the worker to stop.
    const body: AsyncIterableIterator<string> = {
      [Symbol.asyncIterator]() {
        return this;
      },
      next() {
        if (state === 'failed') return Promise.reject(failure);
        if (state === 'ended') return Promise.resolve({ value: undefined, done: true });
        return new Promise<IteratorResult<string>>((resolvePiece, rejectPiece) => {
          waiting = { resolve: resolvePiece, reject: rejectPiece };
          send({ type: 'pull' });
        });
      },
      async return() {
        if (state === 'answering') send({ type: 'cancel' });
        return { value: undefined, done: true };
      },
    };

    port.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'query':
          options.db.query(message.sql, message.params).then(
            (rows) => state === 'computing' && send({ type: 'rows', id: message.id, rows }),
            (error: Error) => state === 'computing' && send({ type: 'query-error', id: message.id, message: error.message }),
          );
          return;
        case 'head':
          // The deadline is the computation's: the body then goes as fast as the client reads it.
          clearTimeout(deadline);
          state = 'answering';
          resolve({ contentType: message.contentType, headers: message.headers, body });
          return;
        case 'chunk': {
          const piece = new TextDecoder().decode(message.bytes);
          waiting?.resolve({ value: piece, done: false });
          waiting = undefined;
          return;
        }
        case 'end':
          settle('ended');
          done();
          return;
        case 'error':
          settle('failed', new Error(message.message));
          done();
          return;
      }
    });
  });
}
