import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { cpus } from 'node:os';
import { DEFAULT_CONFIG } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { createKafka, createProducer, ensureLifecycleTopics, ProjectorService, publishLines, topicsFor, type Topics } from '@lifecycle/kafka';
import { openLifecycleStore, type BatchOutcome } from '@lifecycle/projection';
import { createScratchDatabase, openPostgres, type SqlDatabase, type SqlExecutor } from '@lifecycle/sql';
import { pino } from 'pino';
import { logger as cliLogger } from '../logger.js';

/**
 * The `kafka` bench stage: touchpoints/s through the distributed projector (repartition with
 * Kafka transactions, then one PostgreSQL transaction per chunk) next to a no-op kafkajs
 * consumer reading the same topic, and the end-to-end latency produce → read model committed at
 * half the projector's rate.
 *
 * The projector runs in this process (ProjectorService), not as a spawned `lifecycle project`:
 * its `onBatch` callback fires right after each chunk's PostgreSQL commit with the accepted
 * touchpoints, so every touchpoint's commit instant is known exactly, on the same clock as its
 * produce instant, without polling `touchpoint_ids` (polling would load PostgreSQL and round the
 * latencies to its interval); and its store can be wrapped to count the round trips per chunk.
 * The price: during the latency run the paced producer shares the projector's event loop.
 */

/** PostgreSQL server on which the stage creates its scratch database when none is named. */
export const DEFAULT_BENCH_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';
const BENCH_PARTITIONS = 4;

export interface KafkaBenchOptions {
  brokers: string[];
  /** Any database of the server on which `lifecycle_bench_<random>` is created and dropped. */
  serverUrl: string;
  /** Touchpoints of the throughput run. */
  touchpoints: number;
  seed: number;
  /** Length of the latency run; 0 skips it. */
  latencySeconds: number;
  /** Touchpoints/s of the latency run; default half the projector's measured rate. */
  latencyRate?: number | undefined;
  /** The projector's touchpoints per PostgreSQL transaction (its default when absent). */
  chunkSize?: number | undefined;
}

interface Rate {
  seconds: number;
  perSecond: number;
}

interface StoreStats {
  transactions: number;
  /** Wall time inside `db.transaction` (BEGIN … COMMIT included). */
  transactionMs: number;
  /**
   * Statements sent inside transactions, BEGIN and COMMIT not counted (nor the projector's
   * read of its stored offsets before each batch, outside the transaction).
   */
  statements: number;
  /** Wall time waiting for those statements' answers. */
  statementMs: number;
  /** The same by statement (its first words), for the report of what a chunk waits for. */
  byStatement: Map<string, { count: number; ms: number }>;
}

/** `INSERT INTO customers (…) VALUES …` → `INSERT INTO customers`: one key per statement kind. */
const statementKey = (sql: string) => {
  const words = sql.replace(/\s+/g, ' ').trim().split(' ');
  const verb = (words[0] ?? '').toUpperCase();
  const table = words.findIndex((w, i) => i > 0 && /^(FROM|INTO|UPDATE)$/i.test(words[i - 1] ?? ''));
  return table > 0 ? `${verb} ${words[table]!.replace(/[(,]/g, '')}` : words.slice(0, 3).join(' ');
};

interface ChunkFigures {
  chunks: number;
  meanTouchpoints: number;
  /** Mean wall time of a chunk's transaction, and of it the time waiting for PostgreSQL. */
  meanTransactionMs: number;
  meanPostgresWaitMs: number;
  /** Statements per transaction, BEGIN and COMMIT not counted. */
  statementsPerChunk: number;
  /** The statements that took longest in all, with their mean time per chunk. */
  slowest: { statement: string; perChunk: number; meanMsPerChunk: number }[];
}

export interface KafkaStageResult {
  stage: 'kafka';
  /** Of the throughput run. */
  touchpoints: number;
  /** The projector from start to caught up, as for the other stages. */
  seconds: number;
  perSecond: number;
  peakRssMb: number;
  topic: string;
  partitions: number;
  chunkSize: number | null;
  produce: Rate;
  noop: Rate;
  /** Projector rate / no-op consumer rate. Goal ≥ 0.5. */
  ratio: number;
  projector: ChunkFigures & {
    /** When the repartition stage had consumed the whole input topic (sampled every 0.5 s). */
    repartitionSeconds: number | null;
    /** CPU of this process, in cores, and of the whole machine, as a share of all its cores. */
    processCpuCores: number;
    machineCpuBusy: number;
  };
  latency: null | {
    targetRate: number;
    achievedRate: number;
    produced: number;
    committed: number;
    produceSeconds: number;
    p50Ms: number;
    p95Ms: number;
    p99Ms: number;
    maxMs: number;
    /** The same split at the internal topic (percentiles of each part; they do not add up). */
    split: { observed: number; repartitionedP50Ms: number; repartitionedP99Ms: number; projectedP50Ms: number; projectedP99Ms: number };
    chunks: ChunkFigures;
  };
  /** Log messages written more than once (only the first is printed), with their counts. */
  warnings: Record<string, number>;
}

type Kafka = ReturnType<typeof createKafka>;

/**
 * Warnings and errors only, as JSON lines on stderr like the CLI's logger, but a warning that
 * repeats (kafkajs retrying a request) is written once and counted: the counts are reported.
 */
function benchLogger(): { log: pino.Logger; repeated: Map<string, number> } {
  const repeated = new Map<string, number>();
  const stream = {
    write(line: string) {
      let msg = line;
      let level = 0;
      try {
        ({ msg, level } = JSON.parse(line) as { msg: string; level: number });
      } catch {
        // Written as it is.
      }
      const seen = (repeated.get(msg) ?? 0) + 1;
      repeated.set(msg, seen);
      if (seen === 1 || level >= 50) process.stderr.write(line);
    },
  };
  return { log: pino({ base: { service: 'cli', component: 'bench-kafka' }, level: 'warn' }, stream), repeated };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const progress = (text: string) => process.stderr.write(`kafka: ${text}\n`);
const seconds = (fromMs: number, toMs = performance.now()) => (toMs - fromMs) / 1000;

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `done` until it holds; fails with `what` after `timeoutMs`. */
async function until(done: () => boolean | Promise<boolean>, what: string, timeoutMs: number, pollMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await done())) {
    if (performance.now() > deadline) throw new Error(`kafka bench: ${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(pollMs);
  }
}

function tcpAnswers(broker: string, timeoutMs: number): Promise<string | undefined> {
  const colon = broker.lastIndexOf(':');
  const host = broker.slice(0, colon);
  const port = Number(broker.slice(colon + 1));
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const finish = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs / 1000} s`));
    socket.once('connect', () => finish(undefined));
    socket.once('error', (error) => finish(error.message));
  });
}

/** Why the stage cannot run here (no broker, no PostgreSQL), or undefined when it can. */
export async function kafkaStageUnavailable(options: Pick<KafkaBenchOptions, 'brokers' | 'serverUrl'>): Promise<string | undefined> {
  try {
    await checkServices(options);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

async function checkServices({ brokers, serverUrl }: Pick<KafkaBenchOptions, 'brokers' | 'serverUrl'>): Promise<void> {
  const problems = await Promise.all(brokers.map((b) => tcpAnswers(b, 3_000)));
  if (problems.every((p) => p !== undefined)) {
    throw new Error(
      `no Kafka broker answers at ${brokers.join(',')} (${problems[0]}); start the dev broker with \`npm run kafka:start\` or set --brokers / LIFECYCLE_KAFKA_BROKERS`,
    );
  }
  const kafka = createKafka({ brokers, clientId: 'lifecycle-bench-probe', logger: cliLogger.child({ component: 'bench' }, { level: 'error' }) });
  const admin = kafka.admin();
  try {
    await withTimeout(
      admin.connect().then(() => admin.listTopics()),
      15_000,
      `the Kafka broker at ${brokers.join(',')}`,
    );
  } catch (error) {
    throw new Error(`the Kafka broker at ${brokers.join(',')} does not answer as a broker: ${(error as Error).message}`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  let db: SqlDatabase;
  try {
    db = await openPostgres(serverUrl);
  } catch (error) {
    throw new Error(`${(error as Error).message}; set --database / LIFECYCLE_DATABASE_URL to a PostgreSQL server on which the bench may create a database`);
  }
  await db.close();
}

/** A store that counts the statements of its transactions and the time spent waiting for them. */
function countingStore(db: SqlDatabase): { db: SqlDatabase; stats: StoreStats } {
  const stats: StoreStats = { transactions: 0, transactionMs: 0, statements: 0, statementMs: 0, byStatement: new Map() };
  const timed = async <T>(sql: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      const ms = performance.now() - started;
      stats.statements += 1;
      stats.statementMs += ms;
      const key = statementKey(sql);
      const entry = stats.byStatement.get(key) ?? { count: 0, ms: 0 };
      entry.count += 1;
      entry.ms += ms;
      stats.byStatement.set(key, entry);
    }
  };
  const counted = (executor: SqlExecutor): SqlExecutor => ({
    query: <Row>(sql: string, params?: readonly unknown[]) => timed(sql, () => executor.query<Row>(sql, params)),
    exec: (sql: string) => timed(sql, () => executor.exec(sql)),
  });
  return {
    stats,
    db: {
      query: <Row>(sql: string, params?: readonly unknown[]) => db.query<Row>(sql, params),
      exec: (sql: string) => db.exec(sql),
      description: db.description,
      close: () => db.close(),
      async transaction(work) {
        const started = performance.now();
        try {
          return await db.transaction((tx) => work(counted(tx)));
        } finally {
          stats.transactions += 1;
          stats.transactionMs += performance.now() - started;
        }
      },
    },
  };
}

const snapshot = (stats: StoreStats): StoreStats => ({ ...stats, byStatement: new Map([...stats.byStatement].map(([k, v]) => [k, { ...v }])) });

function chunkFigures(before: StoreStats, after: StoreStats, touchpoints: number): ChunkFigures {
  const chunks = after.transactions - before.transactions;
  const per = (n: number) => (chunks === 0 ? 0 : n / chunks);
  const slowest = [...after.byStatement]
    .map(([statement, { count, ms }]) => ({ statement, count: count - (before.byStatement.get(statement)?.count ?? 0), ms: ms - (before.byStatement.get(statement)?.ms ?? 0) }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 5)
    .map(({ statement, count, ms }) => ({ statement, perChunk: round1(per(count)), meanMsPerChunk: round1(per(ms)) }));
  return {
    slowest,
    chunks,
    meanTouchpoints: Math.round(per(touchpoints)),
    meanTransactionMs: round1(per(after.transactionMs - before.transactionMs)),
    meanPostgresWaitMs: round1(per(after.statementMs - before.statementMs)),
    statementsPerChunk: round1(per(after.statements - before.statements)),
  };
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round3 = (n: number) => Math.round(n * 1000) / 1000;

/**
 * One generated stream (about ten touchpoints per customer, in event-time order) read in two
 * parts: the throughput run's touchpoints, then the latency run's, which continue it in event
 * time (the same customers and new ones, later touchpoints, new ids) as live traffic would.
 * Twice the customers the throughput run needs, so that the rest is as long again.
 */
function generatedStream(throughput: number, seed: number): (count: number) => { ids: string[]; lines: string[] } {
  const stream = generateTouchpoints({ customers: Math.max(1, Math.ceil(throughput / 5)), seed });
  return (count) => {
    const ids: string[] = [];
    const lines: string[] = [];
    while (lines.length < count) {
      const next = stream.next();
      if (next.done === true) break;
      ids.push(next.value.id);
      lines.push(JSON.stringify(next.value));
    }
    return { ids, lines };
  };
}

function machineTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    idle += cpu.times.idle;
    total += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.idle + cpu.times.irq;
  }
  return { idle, total };
}

const describeSlowest = (figures: ChunkFigures) => figures.slowest.map((s) => `${s.statement} ${s.meanMsPerChunk} ms${s.perChunk === 1 ? '' : ` (${s.perChunk}×)`}`).join(', ');

const percentile = (sorted: readonly number[], q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;

/** Reads the whole topic with a fresh group that does nothing with the messages. */
async function noopConsume(kafka: Kafka, topic: string, messages: number): Promise<Rate> {
  const consumer = kafka.consumer({ groupId: `lifecycle-bench-noop.${topic}` });
  let read = 0;
  let lastAt = 0;
  const started = performance.now();
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        read += batch.messages.length;
        lastAt = performance.now();
      },
    });
    await until(() => read >= messages, `the no-op consumer reading ${messages} messages`, 120_000, 5);
  } finally {
    await consumer.disconnect();
  }
  const s = seconds(started, lastAt);
  return { seconds: round3(s), perSecond: Math.round(read / s) };
}

/** A read_committed consumer of the new messages of `topic`, reporting each touchpoint id when it arrives. */
async function observe(kafka: Kafka, topic: string, seen: (id: string, at: number) => void): Promise<{ disconnect: () => Promise<void> }> {
  const consumer = kafka.consumer({ groupId: `lifecycle-bench-observer.${topic}`, readUncommitted: false });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: false });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const at = performance.now();
      for (const message of batch.messages) {
        if (message.value !== null) seen((JSON.parse(message.value.toString('utf8')) as { id: string }).id, at);
      }
    },
  });
  await until(() => joined, 'the observer joining its group', 30_000, 20);
  // Its first fetch positions it at the end of the topic; what comes after is observed.
  await sleep(1_000);
  return { disconnect: () => consumer.disconnect() };
}

/** Runs the stage; fails (no skipping) when the broker or PostgreSQL cannot be reached. */
export async function runKafkaStage(options: KafkaBenchOptions): Promise<KafkaStageResult> {
  await checkServices(options).catch((error: unknown) => {
    // Without the cause: the logger would repeat its message.
    throw new Error(`the kafka bench stage cannot run: ${(error as Error).message}`);
  });
  const { log, repeated } = benchLogger();
  const suffix = randomBytes(4).toString('hex');
  const topics: Topics = topicsFor(`lifecycle-bench-${suffix}`);
  const kafka = createKafka({ brokers: options.brokers, clientId: `lifecycle-bench-${suffix}`, logger: log });
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    await ensureLifecycleTopics(kafka, topics, BENCH_PARTITIONS);
    const database = await createScratchDatabase(options.serverUrl, 'lifecycle_bench');
    cleanups.push(() => database.drop());
    const store = countingStore(await openLifecycleStore({ databaseUrl: database.url }));
    cleanups.push(() => store.db.close());
    progress(`topic ${topics.input} (${BENCH_PARTITIONS} partitions), ${store.db.description}`);

    // 1. Throughput: produce N touchpoints, then read them with a no-op consumer, then project them.
    const take = generatedStream(options.touchpoints, options.seed);
    const { lines } = take(options.touchpoints);
    const producer = createProducer(kafka);
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    let started = performance.now();
    const summary = await publishLines(producer, topics, lines, { source: 'bench' });
    const produce = { seconds: round3(seconds(started)), perSecond: Math.round(summary.accepted / seconds(started)) };
    if (summary.accepted !== lines.length) throw new Error(`kafka bench: ${lines.length - summary.accepted} generated touchpoints were rejected: ${JSON.stringify(summary.rejected)}`);
    progress(`produced ${summary.accepted} touchpoints (seed ${options.seed}) in ${produce.seconds.toFixed(2)} s: ${produce.perSecond}/s`);

    const noop = await noopConsume(kafka, topics.input, summary.accepted);
    progress(`no-op consumer read them in ${noop.seconds.toFixed(2)} s: ${noop.perSecond}/s`);

    let processed = 0;
    let lastCommitAt = 0;
    const producedAt = new Map<string, number>();
    const committedAt = new Map<string, number>();
    const onBatch = (outcome: BatchOutcome) => {
      const now = performance.now();
      lastCommitAt = now;
      processed += outcome.accepted.length + outcome.duplicates.length + outcome.conflicts.length;
      for (const t of outcome.accepted) if (producedAt.has(t.id)) committedAt.set(t.id, now);
    };
    const service = new ProjectorService({
      kafka,
      topics,
      db: store.db,
      config: DEFAULT_CONFIG,
      logger: log,
      instanceId: `bench-${suffix}`,
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
      onBatch,
    });
    const statsBefore = snapshot(store.stats);
    const cpuBefore = process.cpuUsage();
    const machineBefore = machineTimes();
    started = performance.now();
    cleanups.push(() => service.stop());
    await service.start();
    let repartitionDoneAt: number | undefined;
    let sampling = true;
    const sampler = (async () => {
      while (sampling && repartitionDoneAt === undefined) {
        const lag = await service.consumerLag().catch(() => undefined);
        if (lag !== undefined && lag.filter((p) => p.topic === topics.input).every((p) => p.messages === 0)) repartitionDoneAt = performance.now();
        await sleep(500);
      }
    })();
    try {
      await until(() => processed >= summary.accepted, `the projector projecting ${summary.accepted} touchpoints`, 600_000);
    } finally {
      sampling = false;
      await sampler;
    }
    const projectorSeconds = seconds(started, lastCommitAt);
    const cpu = process.cpuUsage(cpuBefore);
    const machineAfter = machineTimes();
    const statsAfter = snapshot(store.stats);
    await until(() => service.caughtUp(), 'caughtUp() after the last chunk', 30_000, 200);
    const projected = processed;
    const perSecond = Math.round(projected / projectorSeconds);
    const projector = {
      ...chunkFigures(statsBefore, statsAfter, projected),
      repartitionSeconds: repartitionDoneAt === undefined ? null : round3(seconds(started, repartitionDoneAt)),
      processCpuCores: round1((cpu.user + cpu.system) / 1e6 / projectorSeconds),
      machineCpuBusy: round3(1 - (machineAfter.idle - machineBefore.idle) / (machineAfter.total - machineBefore.total)),
    };
    const ratio = round3(perSecond / noop.perSecond);
    progress(
      `projector caught up in ${projectorSeconds.toFixed(2)} s: ${perSecond}/s, ${ratio} × the no-op consumer (goal ≥ 0.5); ` +
        `repartition done after ${projector.repartitionSeconds ?? '?'} s; ${projector.chunks} chunks of ${projector.meanTouchpoints} touchpoints, ` +
        `${projector.meanTransactionMs} ms each (${projector.meanPostgresWaitMs} ms waiting for ${projector.statementsPerChunk} statements); ` +
        `this process ${projector.processCpuCores} cores, machine ${Math.round(projector.machineCpuBusy * 100)} % busy`,
    );
    progress(`slowest statements per chunk: ${describeSlowest(projector)}`);

    // 2. Latency: paced production at half that rate while the projector runs.
    let latency: KafkaStageResult['latency'] = null;
    const targetRate = options.latencyRate ?? Math.max(1, Math.round(perSecond / 2));
    const count = Math.round(targetRate * options.latencySeconds);
    if (count > 0) {
      const live = take(count);
      if (live.lines.length < count) progress(`the generated stream ends after ${live.lines.length} more touchpoints: the latency run is shorter`);
      const before = snapshot(store.stats);
      const processedBefore = processed;
      // Where the time goes: a read_committed observer of the internal topic sees each
      // touchpoint when the repartition stage's transaction commits.
      const visibleAt = new Map<string, number>();
      const observer = await observe(kafka, topics.byCustomer, (id, at) => {
        if (producedAt.has(id)) visibleAt.set(id, at);
      });
      cleanups.push(() => observer.disconnect());
      progress(`latency run: ${live.lines.length} touchpoints at ${targetRate}/s for ${options.latencySeconds} s`);
      started = performance.now();
      let sent = 0;
      while (sent < live.lines.length) {
        const elapsed = seconds(started);
        const due = Math.min(live.lines.length, Math.floor(elapsed * targetRate) + 1);
        if (due > sent) {
          const at = performance.now();
          for (let i = sent; i < due; i += 1) producedAt.set(live.ids[i]!, at);
          await publishLines(producer, topics, live.lines.slice(sent, due), { source: 'bench-latency' });
          sent = due;
        } else {
          await sleep(Math.max(1, (sent / targetRate - elapsed) * 1000));
        }
      }
      const produceSeconds = seconds(started);
      const committedAll = await until(() => committedAt.size >= live.lines.length, 'the latency run being committed', 60_000, 10).then(
        () => true,
        () => false,
      );
      const sorted = (values: Iterable<number>) => [...values].sort((a, b) => a - b);
      const endToEnd = sorted([...committedAt].map(([id, at]) => at - producedAt.get(id)!));
      const observed = [...committedAt].filter(([id]) => visibleAt.has(id));
      const toVisible = sorted(observed.map(([id]) => visibleAt.get(id)! - producedAt.get(id)!));
      const toCommitted = sorted(observed.map(([id, at]) => at - visibleAt.get(id)!));
      latency = {
        targetRate,
        achievedRate: Math.round(live.lines.length / produceSeconds),
        produced: live.lines.length,
        committed: endToEnd.length,
        produceSeconds: round3(produceSeconds),
        p50Ms: round1(percentile(endToEnd, 0.5)),
        p95Ms: round1(percentile(endToEnd, 0.95)),
        p99Ms: round1(percentile(endToEnd, 0.99)),
        maxMs: round1(endToEnd[endToEnd.length - 1] ?? Number.NaN),
        split: {
          observed: observed.length,
          repartitionedP50Ms: round1(percentile(toVisible, 0.5)),
          repartitionedP99Ms: round1(percentile(toVisible, 0.99)),
          projectedP50Ms: round1(percentile(toCommitted, 0.5)),
          projectedP99Ms: round1(percentile(toCommitted, 0.99)),
        },
        chunks: chunkFigures(before, store.stats, processed - processedBefore),
      };
      progress(
        `latency produce → read model committed at ${latency.achievedRate}/s: p50 ${latency.p50Ms} ms, p95 ${latency.p95Ms} ms, ` +
          `p99 ${latency.p99Ms} ms (goal < 500 ms), max ${latency.maxMs} ms; ${latency.chunks.chunks} chunks of ${latency.chunks.meanTouchpoints} touchpoints, ` +
          `${latency.chunks.meanTransactionMs} ms each` +
          (committedAll ? '' : `; only ${endToEnd.length} of ${live.lines.length} committed within 60 s of the last produce`),
      );
      progress(
        `of which produce → visible in ${topics.byCustomer} (repartition transaction committed): p50 ${latency.split.repartitionedP50Ms} ms, p99 ${latency.split.repartitionedP99Ms} ms; ` +
          `visible → read model committed: p50 ${latency.split.projectedP50Ms} ms, p99 ${latency.split.projectedP99Ms} ms (${observed.length} touchpoints observed)`,
      );
      progress(`slowest statements per chunk: ${describeSlowest(latency.chunks)}`);
      if (!committedAll) throw new Error(`kafka bench: only ${endToEnd.length} of ${live.lines.length} touchpoints of the latency run were committed within 60 s`);
    }
    const warnings = Object.fromEntries([...repeated].filter(([, n]) => n > 1));
    if (Object.keys(warnings).length > 0) progress(`repeated warnings: ${Object.entries(warnings).map(([msg, n]) => `${n}× ${JSON.stringify(msg)}`).join('; ')}`);
    return {
      stage: 'kafka',
      touchpoints: projected,
      seconds: round3(projectorSeconds),
      perSecond,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      topic: topics.input,
      partitions: BENCH_PARTITIONS,
      chunkSize: options.chunkSize ?? null,
      produce,
      noop,
      ratio,
      projector,
      latency,
      warnings,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => log.error({ err: error }, 'kafka bench cleanup failed'));
    }
  }
}

/** The stage's lines under the other stages' table. */
export function formatKafkaStage(r: KafkaStageResult): string[] {
  const lines = [
    `${'kafka'.padEnd(8)} ${String(r.perSecond).padStart(14)} ${r.seconds.toFixed(2).padStart(9)} ${String(r.peakRssMb).padStart(12)}  ` +
      `projector Kafka → PostgreSQL, ${r.touchpoints} touchpoints, ${r.partitions} partitions`,
    `${''.padEnd(8)} no-op consumer ${r.noop.perSecond}/s (${r.noop.seconds.toFixed(2)} s) · projector/no-op ${r.ratio.toFixed(3)} (goal ≥ 0.5) · ` +
      `${r.projector.chunks} chunks of ${r.projector.meanTouchpoints}, ${r.projector.meanTransactionMs} ms each`,
  ];
  if (r.latency !== null) {
    const l = r.latency;
    lines.push(
      `${''.padEnd(8)} produce → read model committed at ${l.achievedRate}/s for ${l.produceSeconds.toFixed(0)} s: ` +
        `p50 ${l.p50Ms} ms · p95 ${l.p95Ms} ms · p99 ${l.p99Ms} ms (goal < 500 ms) · max ${l.maxMs} ms ` +
        `(p99 to the repartitioned topic ${l.split.repartitionedP99Ms} ms, from it to PostgreSQL ${l.split.projectedP99Ms} ms)`,
    );
  }
  return lines;
}
