import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Rejection } from '@lifecycle/contracts';
import type { Topics } from '@lifecycle/kafka';

/** What the worker needs to build its stage: plain data, as a thread cannot share a Kafka client or a logger. */
export interface RepartitionWorkerData {
  brokers: string[];
  clientId: string;
  topics: Topics;
  groupId: string;
  instanceId: string;
  commitIntervalMs: number;
  log: { level: string; bindings: Record<string, unknown> };
}

export type ToRepartition = { kind: 'stop' };
export type FromRepartition =
  | { kind: 'started' }
  | { kind: 'failed'; message: string }
  | { kind: 'input' }
  | { kind: 'rejected'; rejection: Rejection };

// A thread runs JavaScript: tests, which run the TypeScript sources, start the build's worker.
const WORKER = new URL(import.meta.url.endsWith('.ts') ? '../dist/repartition-worker.js' : './repartition-worker.js', import.meta.url);

/** The worker tells of input at most this often. */
export const INPUT_NOTICE_MS = 100;
/** A stop that takes longer (a broker gone) ends the thread instead. */
const STOP_TIMEOUT_MS = 30_000;

export interface RepartitionThreadOptions extends Omit<RepartitionWorkerData, 'log'> {
  logger: Logger;
  onInput: () => void;
  onRejected?: (rejection: Rejection) => void;
}

/**
 * The repartition stage (`RepartitionStage`) on a worker thread of its own: its own event loop,
 * so that the project stage's work (folding a chunk, building its rows, which takes the thread
 * for tens of milliseconds) never holds back its transactions, nor its work the project
 * stage's. Measured with the bench's latency run (4 000/s, three runs each): produce → committed
 * p99 284–326 ms on a thread of its own, against 453–683 ms sharing one.
 *
 * `failed` rejects if the thread ends other than by `stop()` (an error the stage could not
 * handle): the instance then stops with an error, for whatever runs it to start it again.
 */
export class RepartitionThread {
  readonly failed: Promise<never>;
  private readonly worker: Worker;
  private stopping = false;
  private readonly started: Promise<void>;
  private readonly stopped: Promise<void>;

  constructor(options: RepartitionThreadOptions) {
    const { logger, onInput, onRejected, ...rest } = options;
    const data: RepartitionWorkerData = { ...rest, log: { level: logger.level, bindings: logger.bindings() } };
    this.worker = new Worker(WORKER, { workerData: data });
    let fail: (error: Error) => void = () => undefined;
    this.failed = new Promise<never>((_, reject) => (fail = reject));
    this.failed.catch(() => undefined);
    let start: { resolve: () => void; reject: (error: Error) => void } = { resolve: () => undefined, reject: () => undefined };
    this.started = new Promise<void>((resolve, reject) => (start = { resolve, reject }));
    this.started.catch(() => undefined);
    this.stopped = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (message: FromRepartition) => {
      if (message.kind === 'started') start.resolve();
      else if (message.kind === 'failed') start.reject(new Error(`the repartition stage could not start: ${message.message}`));
      else if (message.kind === 'input') onInput();
      else if (message.kind === 'rejected') onRejected?.(message.rejection);
    });
    this.worker.on('error', (error) => {
      logger.error({ err: error }, 'repartition stage: its thread failed');
      start.reject(error);
      fail(error);
    });
    this.worker.on('exit', (code) => {
      if (this.stopping) return;
      const error = new Error(`the repartition stage's thread ended unexpectedly (exit code ${code})`);
      start.reject(error);
      fail(error);
    });
  }

  /** Resolves once the stage consumes (it has joined its group), rejects if it could not start. */
  start(): Promise<void> {
    return this.started;
  }

  /** Stops fetching, commits what was consumed and leaves the group (RepartitionStage.stop), then ends the thread. */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopped;
    this.stopping = true;
    this.worker.postMessage({ kind: 'stop' } satisfies ToRepartition);
    const timeout = setTimeout(() => void this.worker.terminate(), STOP_TIMEOUT_MS);
    await this.stopped;
    clearTimeout(timeout);
  }
}
