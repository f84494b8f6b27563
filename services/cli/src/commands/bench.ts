import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_CONFIG, parseTouchpoint, type Touchpoint } from '@lifecycle/contracts';
import { groupByCustomer, projectAsOf } from '@lifecycle/domain';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestInto } from './ingest.js';

export const BENCH_STAGES = ['parse', 'group', 'fold', 'ingest'] as const;
type Stage = (typeof BENCH_STAGES)[number];

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
      case 'ingest':
        await ingestInto({ dataDir }, join(dataDir, 'dead-letter.ndjson'), 'bench', lines, DEFAULT_CONFIG);
        break;
    }
  } finally {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  return { stage, touchpoints: lines.length, seconds, perSecond: Math.round(lines.length / seconds), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) };
}

/**
 * Runs each stage in a process of its own, so that each peak RSS is that stage's alone, and
 * prints touchpoints per second: parse+validate (JSON and zod), group (by customer, linking
 * visitors), fold (every customer's lifecycle and the cohort table, as of the latest instant),
 * and the whole embedded ingest. Goals (issue #2): fold ≥ 1 000 000/s, ingest ≥ 100 000/s.
 */
export async function benchCommand(options: { touchpoints: number; seed: number; stage?: Stage }): Promise<void> {
  if (options.stage !== undefined) {
    process.stdout.write(`${JSON.stringify(await runStage(options.stage, options.touchpoints, options.seed))}\n`);
    return;
  }
  const run = promisify(execFile);
  console.log(`benchmark on ${options.touchpoints} generated touchpoints (seed ${options.seed})`);
  console.log(`${'stage'.padEnd(8)} ${'touchpoints/s'.padStart(14)} ${'seconds'.padStart(9)} ${'peak RSS MB'.padStart(12)}`);
  for (const stage of BENCH_STAGES) {
    const { stdout } = await run(process.execPath, [process.argv[1]!, 'bench', '--stage', stage, '--touchpoints', String(options.touchpoints), '--seed', String(options.seed)], {
      maxBuffer: 1 << 20,
    });
    const result = JSON.parse(stdout) as StageResult;
    console.log(`${stage.padEnd(8)} ${String(result.perSecond).padStart(14)} ${result.seconds.toFixed(2).padStart(9)} ${String(result.peakRssMb).padStart(12)}`);
  }
}
