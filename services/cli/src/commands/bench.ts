import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchPart } from './bench-options.js';
import { runEmbedded, runPureStages } from './bench-embedded.js';
import { kafkaSkipped, kafkaStageUnavailable, runKafka, type KafkaBenchOptions } from './bench-kafka.js';
import { formatTable, load, machine, progress, type PartResult } from './bench-report.js';

export interface BenchOptions {
  touchpoints: number;
  customers: number;
  seed: number;
  /** One part only; `kafka` alone fails instead of skipping when no broker or PostgreSQL answers. */
  stage?: BenchPart;
  /** Where the results go as JSON, besides the table on stdout. */
  json?: string;
  kafka: Omit<KafkaBenchOptions, 'seed' | 'workDir'>;
}

/** `bench --pure FILE`: the pure stages in this process, their figures as a JSON line. */
export async function benchPureCommand(file: string): Promise<void> {
  process.stdout.write(`${JSON.stringify(await runPureStages(file))}\n`);
}

/**
 * Every figure of the performance goals (issue 8) in one run, each measured through the real
 * CLI in child processes: embedded ingest, replay and as-of export on one noisy dataset (its
 * peak RSS above that of the same command on an empty file), then, when a broker and PostgreSQL
 * answer, the Kafka projector against a no-op consumer, its latency at half its rate and its
 * throughput with several instances. Prints a table with each goal and whether it is met, and
 * writes the same as JSON with `--json FILE`.
 */
export async function benchCommand(options: BenchOptions): Promise<void> {
  const startedAt = new Date();
  const workDir = await mkdtemp(join(tmpdir(), 'lifecycle-bench-'));
  try {
    const host = machine();
    const loadBefore = load();
    progress(`on ${host.cores} cores (${host.cpu}), ${host.memoryMiB} MiB, Node.js ${host.node}, load average ${loadBefore}; work files in ${workDir}`);
    const embedded = options.stage === 'kafka' ? undefined : await runEmbedded({ touchpoints: options.touchpoints, customers: options.customers, seed: options.seed, workDir });
    const kafka = options.stage === 'embedded' ? undefined : await kafkaPart(options, workDir);
    const parts = [embedded, kafka].filter((p): p is PartResult => p !== undefined);
    const loadAfter = load();
    const lines = [
      `lifecycle bench, ${startedAt.toISOString()}: ${host.cores} cores, ${host.memoryMiB} MiB, Node.js ${host.node}, seed ${options.seed}; ` +
        `load average ${loadBefore} at the start, ${loadAfter} at the end`,
      ...formatTable([
        { title: 'goals', rows: parts.flatMap((p) => p.goals) },
        { title: 'context', rows: parts.flatMap((p) => p.context) },
      ]),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (options.json !== undefined) {
      const report = {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine: { ...host, loadAverage: { start: loadBefore, end: loadAfter } },
        options: { touchpoints: options.touchpoints, customers: options.customers, seed: options.seed, stage: options.stage ?? null, kafka: { ...options.kafka, serverUrl: undefined } },
        goals: parts.flatMap((p) => p.goals),
        context: parts.flatMap((p) => p.context),
        details: { embedded: embedded?.details ?? null, kafka: kafka?.details ?? null },
      };
      await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
      progress(`results written to ${options.json}`);
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function kafkaPart(options: BenchOptions, workDir: string): Promise<PartResult> {
  const kafkaOptions = { ...options.kafka, seed: options.seed, workDir };
  if (options.stage !== 'kafka') {
    const unavailable = await kafkaStageUnavailable(kafkaOptions);
    if (unavailable !== undefined) {
      progress(`kafka rows skipped: ${unavailable}`);
      return kafkaSkipped(unavailable);
    }
  }
  return runKafka(kafkaOptions);
}
