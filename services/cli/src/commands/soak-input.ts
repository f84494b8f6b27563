import type { Logger } from 'pino';
import { lifecycleOk, runLifecycle, runProcess, sleep } from './soak-process.js';

/**
 * The soak's live input: a noisy generated stream (duplicates, late and invalid lines, several
 * currencies, linked visitors) written for the whole run through three clients at once —
 * `lifecycle produce`, the HTTP ingest (`POST /v1/touchpoints`) and kcat (unkeyed, a client that
 * is not ours) — each retrying a batch until it is acknowledged, as a producer does.
 */

export const INPUT_PATHS = ['produce', 'http', 'kcat'] as const;
export type InputPath = (typeof INPUT_PATHS)[number];

/** Seconds of each path's share of the rate per batch: a `produce` process costs a node start, an HTTP request nearly nothing. */
const BATCH_SECONDS: Record<InputPath, number> = { produce: 3, http: 1, kcat: 2 };
/** Customers per generated segment (about 11 lines each). */
const SEGMENT_CUSTOMERS = 1_500;
/** A batch that no retry delivered within this long fails the soak. */
const DELIVERY_DEADLINE_MS = 5 * 60_000;
/** Lines of the HTTP request that a fault kills the ingest service under: large enough to be in flight for a while. */
const ARMED_REQUEST_LINES = 3_000;

export interface SentBatch {
  path: InputPath;
  lines: string[];
  /** Sends until one was acknowledged: > 1 when a fault (or a refusal) made the client send it again. */
  attempts: number;
  /** The HTTP request a fault killed the ingest service under (its first attempt failed on it). */
  interruptedByFault?: boolean;
}

export interface InputOptions {
  brokers: string;
  topic: string;
  /** Touchpoints per second over the three paths. */
  rate: number;
  seed: number;
  log: Logger;
  /** Base URL of the HTTP ingest, e.g. http://127.0.0.1:8080. */
  ingestUrl: string;
}

export class InputFeed {
  /** Every batch handed to a client, in order: their lines are the union of what was produced. */
  readonly batches: SentBatch[] = [];
  private buffer: string[] = [];
  private segment = 0;
  private refilling: Promise<void> | undefined;
  private running = false;
  private loops: Promise<void>[] = [];
  private armed: ((request: Promise<unknown>) => Promise<void>) | undefined;
  private readonly startedAt = Date.now();
  private failure: Error | undefined;

  constructor(private readonly options: InputOptions) {}

  /** Generates the first segment, then starts the three clients. */
  async start(): Promise<void> {
    await this.refill();
    this.running = true;
    this.loops = INPUT_PATHS.map((path) => this.loop(path));
  }

  /** Stops taking lines; resolves once every batch handed out was acknowledged. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    if (this.failure) throw this.failure;
  }

  /** A delivery that failed for good (the soak cannot vouch for its input any more). */
  get failed(): Error | undefined {
    return this.failure;
  }

  /**
   * The next HTTP request is a large one, and `fault` runs as soon as it is sent (it kills the
   * ingest service while the request is in flight; the client retries it).
   */
  armHttpFault(fault: (request: Promise<unknown>) => Promise<void>): void {
    this.armed = fault;
  }

  get lines(): number {
    return this.batches.reduce((n, b) => n + b.lines.length, 0);
  }

  /** Lines per second handed out since the start. */
  rate(): number {
    return this.lines / ((Date.now() - this.startedAt) / 1000);
  }

  private async refill(): Promise<void> {
    this.refilling ??= (async () => {
      const seed = this.options.seed * 1000 + this.segment++;
      // Each seed names its own touchpoints, customers and visitors (tp-<seed>-…), so segments never
      // collide; each covers the same year, so later segments also arrive late against T.
      const text = await lifecycleOk(
        ['generate', '--customers', String(SEGMENT_CUSTOMERS), '--seed', String(seed), '--months', '12', '--duplicate-rate', '0.05', '--invalid-rate', '0.02', '--late-rate', '0.05'],
        { timeoutMs: 120_000 },
      );
      // kcat drops empty lines (a line-oriented producer would): they are not touchpoints anywhere.
      this.buffer.push(...text.split('\n').filter((line) => line.trim() !== ''));
      this.options.log.info({ seed, buffered: this.buffer.length }, 'soak input: segment generated');
    })().finally(() => (this.refilling = undefined));
    return this.refilling;
  }

  private async take(n: number): Promise<string[]> {
    while (this.buffer.length < n) await this.refill();
    const lines = this.buffer.splice(0, n);
    // The next segment is generated ahead, so that no client waits for it.
    if (this.buffer.length < this.options.rate * 30) void this.refill().catch((error: unknown) => this.options.log.warn({ err: error }, 'soak input: generating a segment failed'));
    return lines;
  }

  private async loop(path: InputPath): Promise<void> {
    const share = this.options.rate / INPUT_PATHS.length;
    let handed = 0;
    const t0 = Date.now();
    while (this.running) {
      await sleep(BATCH_SECONDS[path] * 1000);
      if (!this.running) break;
      const fault = path === 'http' ? this.armed : undefined;
      if (fault) this.armed = undefined;
      const due = fault ? ARMED_REQUEST_LINES : Math.min(Math.floor(share * ((Date.now() - t0) / 1000)) - handed, 20_000);
      if (due <= 0) continue;
      handed += due;
      const batch: SentBatch = { path, lines: await this.take(due), attempts: 0 };
      this.batches.push(batch);
      try {
        await this.deliver(batch, fault);
      } catch (error) {
        this.failure ??= error as Error;
        this.options.log.error({ err: error, path }, 'soak input: a batch could not be delivered');
        return;
      }
    }
  }

  private async deliver(batch: SentBatch, fault: ((request: Promise<unknown>) => Promise<void>) | undefined): Promise<void> {
    const deadline = Date.now() + DELIVERY_DEADLINE_MS;
    for (;;) {
      batch.attempts += 1;
      let problem: string | undefined;
      if (batch.path === 'http' && fault !== undefined && batch.attempts === 1) {
        const request = this.post(batch.lines);
        await fault(request.catch(() => undefined));
        problem = await request;
        batch.interruptedByFault = problem !== undefined;
      } else problem = await this.send(batch);
      if (problem === undefined) return;
      if (Date.now() > deadline) throw new Error(`${batch.path}: ${batch.lines.length} lines not delivered within ${DELIVERY_DEADLINE_MS / 1000} s; last problem: ${problem}`);
      this.options.log.warn({ path: batch.path, attempt: batch.attempts, lines: batch.lines.length, problem: problem.slice(0, 500) }, 'soak input: batch not acknowledged, sending it again');
      await sleep(batch.path === 'http' ? 300 : 1_000);
    }
  }

  /** One send of a batch; undefined when acknowledged, else what went wrong. */
  private async send(batch: SentBatch): Promise<string | undefined> {
    const { brokers, topic } = this.options;
    const input = `${batch.lines.join('\n')}\n`;
    switch (batch.path) {
      case 'produce': {
        const run = await runLifecycle(['produce', '-', '--topic', topic, '--brokers', brokers], { input, timeoutMs: 180_000 });
        if (run.code !== 0) return `exit ${run.signal ?? run.code}: ${run.stderr.trim().slice(-500)}`;
        const summary = JSON.parse(run.stdout) as { lines: number };
        return summary.lines === batch.lines.length ? undefined : `produce summed ${summary.lines} lines of ${batch.lines.length}`;
      }
      case 'kcat': {
        // Unkeyed, one message per line; librdkafka retries on its own while the broker is away.
        const run = await runProcess('kcat', ['-P', '-b', brokers, '-t', topic, '-X', 'message.timeout.ms=120000'], { input, timeoutMs: 180_000 });
        if (run.code !== 0 || /delivery failed|ERROR/i.test(run.stderr)) return `kcat exit ${run.signal ?? run.code}: ${run.stderr.trim().slice(-500)}`;
        return undefined;
      }
      case 'http':
        return this.post(batch.lines);
    }
  }

  private async post(lines: readonly string[]): Promise<string | undefined> {
    try {
      const response = await fetch(`${this.options.ingestUrl}/v1/touchpoints`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: `${lines.join('\n')}\n`,
        signal: AbortSignal.timeout(120_000),
      });
      const text = await response.text();
      if (response.status !== 202) return `HTTP ${response.status}: ${text.slice(0, 300)}`;
      const summary = JSON.parse(text) as { lines: number };
      return summary.lines === lines.length ? undefined : `the ingest summed ${summary.lines} lines of ${lines.length}`;
    } catch (error) {
      return `HTTP request failed: ${(error as Error).message}${(error as { cause?: Error }).cause ? ` (${(error as { cause: Error }).cause.message})` : ''}`;
    }
  }
}
