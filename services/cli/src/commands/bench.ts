import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_CONFIG, parseTouchpoint, type Touchpoint } from '@lifecycle/contracts';
import { groupByCustomer, projectAsOf } from '@lifecycle/domain';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestInto } from './ingest.js';
import { openLifecycleStore } from '@lifecycle/projection';
import { formatKafkaStage, kafkaStageUnavailable, runKafkaStage, type KafkaBenchOptions, type KafkaStageResult } from './bench-kafka.js';

/** Stages on generated data in this process alone. */
const LOCAL_STAGES = ['parse', 'group', 'fold', 'ingest'] as const;
type Stage = (typeof LOCAL_STAGES)[number];
/** `kafka` needs a broker and PostgreSQL: skipped without them, unless asked for alone. */
export const BENCH_STAGES = [...LOCAL_STAGES, 'kafka'] as const;
export type BenchStage = (typeof BENCH_STAGES)[number];

export interface BenchOptions {
  touchpoints: number;
  seed: number;
  stage?: BenchStage;
  kafka: Omit<KafkaBenchOptions, 'seed'>;
}

interface StageResult {
  stage: Stage;
  touchpoints: number;
  seconds: number;
  perSecond: number;
  peakRssMb: number;
}

// The generator makes about ten touchpoints per customer; generation is not timed.
function generatedLines(touchpoints: number, seed: number): string[] {
  const lines: string[] = [];
  for (const t of generateTouchpoints({ customers: Math.max(1, Math.ceil(touchpoints / 10)), seed })) {
    if (lines.length >= touchpoints) break;
    lines.push(JSON.stringify(t));
  }
  return lines;
}

async function runStage(stage: Stage, touchpoints: number, seed: number): Promise<StageResult> {
  const lines = generatedLines(touchpoints, seed);
  const parsed: Touchpoint[] = stage === 'group' || stage === 'fold' ? lines.map((l) => JSON.parse(l) as Touchpoint) : [];
  const grouped = stage === 'fold' ? groupByCustomer(parsed) : undefined;
  const dataDir = stage === 'ingest' ? await mkdtemp(join(tmpdir(), 'lifecycle-bench-')) : '';
  const started = performance.now();
  try {
    switch (stage) {
      case 'parse':
        for (const line of lines) if (!parseTouchpoint(line).ok) throw new Error(`generated line rejected: ${line}`);
        break;
      case 'group':
        groupByCustomer(parsed);
        break;
      case 'fold':
        projectAsOf(grouped!.inputs, grouped!.latest, DEFAULT_CONFIG);
        break;
      case 'ingest': {
        const db = await openLifecycleStore({ dataDir });
        try {
          await ingestInto(db, join(dataDir, 'dead-letter.ndjson'), 'bench', lines, DEFAULT_CONFIG);
        } finally {
          await db.close();
        }
        break;
      }
    }
  } finally {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  return { stage, touchpoints: lines.length, seconds, perSecond: Math.round(lines.length / seconds), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) };
}

/** The options of `bench --stage kafka` that reproduce `options.kafka`. */
function kafkaArguments(kafka: BenchOptions['kafka']): string[] {
  return [
    '--brokers',
    kafka.brokers.join(','),
    '--database',
    kafka.serverUrl,
    '--kafka-touchpoints',
    String(kafka.touchpoints),
    '--kafka-seconds',
    String(kafka.latencySeconds),
    ...(kafka.latencyRate !== undefined ? ['--kafka-rate', String(kafka.latencyRate)] : []),
    ...(kafka.chunkSize !== undefined ? ['--kafka-chunk-size', String(kafka.chunkSize)] : []),
  ];
}

/**
 * Runs each stage in a process of its own, so that each peak RSS is that stage's alone, and
 * prints touchpoints per second: parse+validate (JSON and zod), group (by customer, linking
 * visitors), fold (every customer's lifecycle and the cohort table, as of the latest instant),
 * and the whole embedded ingest. Goals (issue #2): fold ≥ 1 000 000/s, ingest ≥ 100 000/s.
 *
 * Then the `kafka` stage (bench-kafka.ts) when a broker and PostgreSQL answer: the distributed
 * projector next to a no-op consumer, and its end-to-end latency at half its rate. Goals:
 * projector ≥ 0.5 × the no-op consumer, p99 < 500 ms. `--stage kafka` runs it alone and fails
 * when it cannot run; a whole run prints why it skipped it.
 *
 * `--stage X` prints that stage's result as one JSON line (the kafka stage also reports its
 * progress on stderr).
 */
export async function benchCommand(options: BenchOptions): Promise<void> {
  if (options.stage === 'kafka') {
    process.stdout.write(`${JSON.stringify(await runKafkaStage({ ...options.kafka, seed: options.seed }))}\n`);
    return;
  }
  if (options.stage !== undefined) {
    process.stdout.write(`${JSON.stringify(await runStage(options.stage, options.touchpoints, options.seed))}\n`);
    return;
  }
  const run = promisify(execFile);
  console.log(`benchmark on ${options.touchpoints} generated touchpoints (seed ${options.seed})`);
  console.log(`${'stage'.padEnd(8)} ${'touchpoints/s'.padStart(14)} ${'seconds'.padStart(9)} ${'peak RSS MB'.padStart(12)}`);
  for (const stage of LOCAL_STAGES) {
    const { stdout } = await run(process.execPath, [process.argv[1]!, 'bench', '--stage', stage, '--touchpoints', String(options.touchpoints), '--seed', String(options.seed)], {
      maxBuffer: 1 << 20,
    });
    const result = JSON.parse(stdout) as StageResult;
    console.log(`${stage.padEnd(8)} ${String(result.perSecond).padStart(14)} ${result.seconds.toFixed(2).padStart(9)} ${String(result.peakRssMb).padStart(12)}`);
  }
  const unavailable = await kafkaStageUnavailable(options.kafka);
  if (unavailable !== undefined) {
    console.log(`${'kafka'.padEnd(8)} skipped: ${unavailable}`);
    return;
  }
  // Its progress lines on stderr are kept (shown if it fails), so the table stays a table.
  const { stdout } = await run(process.execPath, [process.argv[1]!, 'bench', '--stage', 'kafka', '--seed', String(options.seed), ...kafkaArguments(options.kafka)], {
    maxBuffer: 16 << 20,
  }).catch((error: unknown) => {
    const { stderr } = error as { stderr?: string };
    if (stderr !== undefined && stderr !== '') process.stderr.write(stderr);
    throw new Error(`the kafka bench stage failed${stderr ? ' (its output is above)' : `: ${(error as Error).message}`}`);
  });
  for (const line of formatKafkaStage(JSON.parse(stdout) as KafkaStageResult)) console.log(line);
}
