import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULT_CONFIG, parseTouchpoint, type LifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { compareCanonical, CustomerFold, groupByCustomer, projectAsOf, timed, type TimedTouchpoint } from '@lifecycle/domain';
import { sqlEventStore } from '@lifecycle/eventstore';
import { decide, DEFAULT_BATCH_SIZE, openLifecycleStore, touchpointEvent, type CustomerState } from '@lifecycle/projection';
import { countCustomersByStage } from '@lifecycle/readmodel';
import { generateFile, runCli, runFigures, type CliRun } from './bench-process.js';
import { mib, progress, round3, thousands, type BenchRow, type PartResult } from './bench-report.js';

/** Delivery faults of the embedded dataset: redeliveries, invalid lines, late (shuffled) lines. */
export const NOISE = { duplicateRate: 0.05, invalidRate: 0.01, lateRate: 0.05 } as const;

export interface EmbeddedOptions {
  /** Lines of the dataset that ingest and replay work on. */
  touchpoints: number;
  /** Customers the dataset is generated from (the export as of an instant folds them). */
  customers: number;
  seed: number;
  workDir: string;
}

const DAY = 86_400_000;

// `--data-dir` is what is measured: LIFECYCLE_DATABASE_URL in the bench's environment would win over it.
const EMBEDDED_ENV = { LIFECYCLE_DATABASE_URL: undefined };

async function fileLines(file: string): Promise<string[]> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export interface PureFigures {
  stage: 'parse' | 'group' | 'fold' | 'decide';
  items: number;
  seconds: number;
  /** `decide`: the lifecycle events decided. */
  events?: number;
}

/**
 * An ingest's own work with no store, batch by batch as `lifecycle ingest` cuts it: parse and
 * validate, the events' ids, deduplication by id (a set: what the store's unique index
 * answers), and the decider (`decide`) for each customer a batch touches, as of the batch's
 * watermark, every customer held in memory (a late touchpoint folds the customer again from
 * the ones held, as the projector does from its stream). Visitors' impressions are not linked.
 * No embedded store can make an ingest faster than this. Returns the lifecycle events decided.
 */
function decideWithoutStore(lines: readonly string[], config: LifecycleConfig): number {
  type Held = { state: CustomerState; touchpoints: TimedTouchpoint[] };
  const recorded = new Set<string>();
  const customers = new Map<string, Held>();
  let watermark = Number.NEGATIVE_INFINITY;
  let events = 0;
  let batch: Touchpoint[] = [];
  const decideBatch = () => {
    const touched = new Set<Held>();
    for (const touchpoint of batch) {
      const id = touchpointEvent(touchpoint).id;
      if (recorded.has(id)) continue;
      recorded.add(id);
      const t = timed(touchpoint);
      watermark = Math.max(watermark, t.at);
      if (touchpoint.customerId === undefined) continue;
      let customer = customers.get(touchpoint.customerId);
      if (customer === undefined) {
        const state = { customerId: touchpoint.customerId, fold: new CustomerFold(config, true), added: [], lifecycle: [], revision: -1, stored: undefined, linked: [] };
        customers.set(touchpoint.customerId, (customer = { state, touchpoints: [] }));
      }
      customer.state.added.push(t);
      touched.add(customer);
    }
    for (const { state, touchpoints } of touched) {
      const first = state.added.sort(compareCanonical)[0]!;
      touchpoints.push(...state.added);
      if (!state.fold.follows(first)) {
        state.fold = new CustomerFold(config, true);
        state.added = touchpoints.sort(compareCanonical).slice();
      }
      events += decide(state, watermark, [], null).events.length;
    }
    batch = [];
  };
  for (const line of lines) {
    const parsed = parseTouchpoint(line);
    if (parsed.ok) batch.push(parsed.touchpoint);
    if (batch.length >= DEFAULT_BATCH_SIZE) decideBatch();
  }
  decideBatch();
  return events;
}

/**
 * The pure stages over the dataset, run by `bench --pure FILE` in a process of its own (no
 * store): parse+validate every line, group the distinct valid touchpoints by customer, fold them
 * and the cohort table as of the latest instant; then an ingest's work without a store
 * (`decideWithoutStore`).
 */
export async function runPureStages(file: string): Promise<PureFigures[]> {
  const lines = await fileLines(file);
  const measured = <T>(work: () => T): [T, number] => {
    const started = performance.now();
    const result = work();
    return [result, (performance.now() - started) / 1000];
  };
  const [valid, parseSeconds] = measured(() => {
    const touchpoints: Touchpoint[] = [];
    for (const line of lines) {
      const parsed = parseTouchpoint(line);
      if (parsed.ok) touchpoints.push(parsed.touchpoint);
    }
    return touchpoints;
  });
  // A store holds each id once: the fold's input is the set of distinct touchpoints.
  const distinct = [...new Map(valid.map((t) => [t.id, t])).values()];
  const [grouped, groupSeconds] = measured(() => groupByCustomer(distinct));
  const [, foldSeconds] = measured(() => projectAsOf(grouped.inputs, grouped.latest, DEFAULT_CONFIG));
  const [events, decideSeconds] = measured(() => decideWithoutStore(lines, DEFAULT_CONFIG));
  return [
    { stage: 'parse', items: lines.length, seconds: parseSeconds },
    { stage: 'group', items: distinct.length, seconds: groupSeconds },
    { stage: 'fold', items: distinct.length, seconds: foldSeconds },
    { stage: 'decide', items: lines.length, seconds: decideSeconds, events },
  ];
}

/**
 * JSON.parse of every line, nothing kept: the floor any ingest pays, measured in this process
 * so that the ratio does not depend on the machine. Returns the as-of instant of the export too.
 */
async function bareParse(file: string) {
  const lines = await fileLines(file);
  let objects = 0;
  const started = performance.now();
  for (const line of lines) {
    try {
      JSON.parse(line);
      objects += 1;
    } catch {
      // Malformed on purpose (the noise): the ingest pays for it too.
    }
  }
  const seconds = (performance.now() - started) / 1000;
  let latest = Number.NEGATIVE_INFINITY;
  for (const line of lines) {
    const at = /"occurredAt":"([^"]+)"/.exec(line)?.[1];
    const ms = at === undefined ? Number.NaN : Date.parse(at);
    if (ms > latest) latest = ms;
  }
  return { lines: lines.length, objects, seconds: round3(seconds), perSecond: Math.round(lines.length / seconds), latest };
}

async function countLines(stdout: Readable, into: { lines: number }) {
  for await (const chunk of stdout as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) into.lines += 1;
  }
}

interface StoreCounts {
  customers: number;
  events: number;
  touchpointEvents: number;
  /** Rows of cohort_cell_days, which an as-of cohort export reads instead of the customers. */
  cohortDayPieces: number;
}

/** What the store holds once the commands are done (they have released its lock). */
async function storeCounts(dataDir: string): Promise<StoreCounts> {
  const db = await openLifecycleStore({ dataDir });
  try {
    const byStage = await countCustomersByStage(db);
    const [row] = await db.query<{ events: number | string; touchpoints: number | string }>(
      "SELECT count(*) AS events, count(*) FILTER (WHERE event_type = 'TouchpointRecorded') AS touchpoints FROM lifecycle_events",
    );
    const [days] = await db.query<{ pieces: number }>('SELECT count(*)::integer AS pieces FROM cohort_cell_days');
    return { customers: Object.values(byStage).reduce((a, b) => a + b, 0), events: Number(row?.events ?? 0), touchpointEvents: Number(row?.touchpoints ?? 0), cohortDayPieces: days?.pieces ?? 0 };
  } finally {
    await db.close();
  }
}

const STORE_WRITES_PER_TRANSACTION = 100_000;

/**
 * The embedded store's own share of an ingest, measured apart from everything else: the events
 * the ingest recorded in `dataDir`, read back and written again with the projector's own COPY
 * (`SqlEventStore.insert`) into an empty store at `into`, type by type (the store's own read by
 * type), `STORE_WRITES_PER_TRANSACTION` a transaction. An ingest writes each of these rows once,
 * and more besides (customers, stage changes, cohort days): this rate bounds it from above,
 * whatever the JavaScript around it costs.
 */
async function storeWrites(dataDir: string, into: string): Promise<{ rows: number; seconds: number }> {
  const from = await openLifecycleStore({ dataDir });
  let rows = 0;
  let seconds = 0;
  try {
    const to = await openLifecycleStore({ dataDir: into });
    try {
      const types = await from.query<{ event_type: string }>('SELECT DISTINCT event_type FROM lifecycle_events ORDER BY event_type');
      for (const { event_type: type } of types) {
        for await (const page of sqlEventStore(from).readAllOfType(type, STORE_WRITES_PER_TRANSACTION)) {
          const started = performance.now();
          await to.transaction((tx) => sqlEventStore(tx).insert(page));
          seconds += (performance.now() - started) / 1000;
          rows += page.length;
        }
      }
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
  return { rows, seconds: round3(seconds) };
}

const perSecond = (items: number, run: Pick<CliRun, 'seconds'>) => Math.round(items / run.seconds);

/** The heap cap of the bench's second ingest, for the figures of README "Known limits". */
const CAPPED_HEAP_MB = 600;

/**
 * The embedded rows, each through the real CLI in a child process: `generate` with delivery
 * noise into a file, `ingest --data-dir` (and the same on an empty file: the base of the peak
 * RSS; and both again with `--heap-cap`), `replay --data-dir`, `export cohorts --as-of`.
 */
export async function runEmbedded(options: EmbeddedOptions): Promise<PartResult> {
  const { workDir } = options;
  const file = join(workDir, 'touchpoints.ndjson');
  const noise = ['--duplicate-rate', String(NOISE.duplicateRate), '--invalid-rate', String(NOISE.invalidRate), '--late-rate', String(NOISE.lateRate)];
  progress(`embedded: generating ${thousands(options.customers)} customers (seed ${options.seed}, noise ${JSON.stringify(NOISE)}), keeping the first ${thousands(options.touchpoints)} lines`);
  const lines = await generateFile(['--customers', String(options.customers), '--seed', String(options.seed), ...noise], file, options.touchpoints);

  const parse = await bareParse(file);
  progress(`embedded: bare JSON.parse of the ${thousands(lines)} lines: ${thousands(parse.perSecond)}/s`);

  const pureRun = await runCli(['bench', '--pure', file], { stdout: 'text' });
  const pure = (JSON.parse(pureRun.stdout) as PureFigures[]).map((p) => ({ ...p, seconds: round3(p.seconds), perSecond: Math.round(p.items / p.seconds) }));
  progress(`embedded: ${pure.map((p) => `${p.stage} ${thousands(p.perSecond)}/s`).join(', ')}`);

  const emptyFile = join(workDir, 'empty.ndjson');
  await writeFile(emptyFile, '');
  const empty = await runCli(['ingest', emptyFile, '--data-dir', join(workDir, 'empty-store')], { env: EMBEDDED_ENV });
  progress(`embedded: ingest of an empty file: ${empty.seconds.toFixed(1)} s, peak RSS ${mib(empty.peakRssKiB ?? 0)} MiB`);

  const store = join(workDir, 'store');
  progress(`embedded: ingest of ${thousands(lines)} lines into ${store}`);
  const ingest = await runCli(['ingest', file, '--data-dir', store], { env: EMBEDDED_ENV, stdout: 'text' });
  const summary = JSON.parse(ingest.stdout) as { lines: number; accepted: number; duplicates: number; rejected: Record<string, number> };
  progress(`embedded: ingest: ${ingest.seconds.toFixed(1)} s, ${thousands(perSecond(lines, ingest))}/s, peak RSS ${mib(ingest.peakRssKiB ?? 0)} MiB`);

  // The same under a heap cap (README "Known limits"): what the cap buys in memory, and costs.
  const cappedArgs = ['--heap-cap', String(CAPPED_HEAP_MB)];
  const cappedEmpty = await runCli(['ingest', emptyFile, '--data-dir', join(workDir, 'empty-capped-store'), ...cappedArgs], { env: EMBEDDED_ENV });
  progress(`embedded: ingest --heap-cap ${CAPPED_HEAP_MB} of ${thousands(lines)} lines`);
  const capped = await runCli(['ingest', file, '--data-dir', join(workDir, 'capped-store'), ...cappedArgs], { env: EMBEDDED_ENV });
  progress(`embedded: ingest --heap-cap ${CAPPED_HEAP_MB}: ${capped.seconds.toFixed(1)} s, ${thousands(perSecond(lines, capped))}/s, peak RSS ${mib(capped.peakRssKiB ?? 0)} MiB`);

  progress('embedded: replay');
  const replay = await runCli(['replay', '--data-dir', store], { env: EMBEDDED_ENV, stdout: 'text' });
  progress(`embedded: replay: ${replay.seconds.toFixed(1)} s`);

  const asOf = new Date(parse.latest - 30 * DAY).toISOString();
  const cohortRows = { lines: 0 };
  progress(`embedded: export cohorts --as-of ${asOf}`);
  const exported = await runCli(['export', 'cohorts', '--as-of', asOf, '--data-dir', store], { env: EMBEDDED_ENV, stdout: (stdout) => countLines(stdout, cohortRows) });
  progress(`embedded: export: ${exported.seconds.toFixed(1)} s`);

  const counts = await storeCounts(store);
  progress('embedded: the store alone: writing the recorded events again');
  const writes = await storeWrites(store, join(workDir, 'store-writes'));
  const writeRate = writes.rows > 0 ? perSecond(writes.rows, writes) : null;
  const eventsPerTouchpoint = counts.touchpointEvents > 0 ? counts.events / counts.touchpointEvents : 1;
  const ingestRate = perSecond(lines, ingest);
  const ratio = ingestRate / parse.perSecond;
  const replayRate = perSecond(counts.events, replay);
  const rssAbove = (run: CliRun, base: CliRun) => (run.peakRssKiB !== null && base.peakRssKiB !== null && counts.customers > 0 ? (run.peakRssKiB - base.peakRssKiB) / counts.customers : null);
  const rssPerCustomer = rssAbove(ingest, empty);
  const cappedRssPerCustomer = rssAbove(capped, cappedEmpty);
  const runNote = (run: CliRun) => `${run.seconds.toFixed(1)} s from spawn to exit, peak RSS ${run.peakRssKiB === null ? '?' : `${mib(run.peakRssKiB)} MiB`}, CPU ${run.cpuSeconds?.toFixed(1) ?? '?'} s`;

  const goals: BenchRow[] = [
    {
      id: 'ingest',
      measure: `embedded ingest, ${thousands(lines)} noisy lines`,
      value: ingestRate,
      unit: 'touchpoints/s',
      shown: `${thousands(ingestRate)}/s`,
      goal: '≥ 100,000/s',
      met: ingestRate >= 100_000,
      notes: [
        `lifecycle ingest FILE --data-dir DIR: ${runNote(ingest)}`,
        `${thousands(summary.accepted)} accepted, ${thousands(summary.duplicates)} duplicates, rejected ${JSON.stringify(summary.rejected)}`,
      ],
    },
    {
      id: 'ingest_vs_parse',
      measure: '  ÷ bare JSON.parse of the same lines',
      value: round3(ratio),
      unit: '×',
      shown: `${ratio.toFixed(3)} ×`,
      goal: '≥ 0.1 ×',
      met: ratio >= 0.1,
      notes: [`JSON.parse in the bench process: ${thousands(parse.perSecond)} lines/s`],
    },
    {
      id: 'replay',
      measure: `replay, ${thousands(counts.events)} events`,
      value: replayRate,
      unit: 'events/s',
      shown: `${thousands(replayRate)}/s`,
      goal: '≥ 200,000/s',
      met: replayRate >= 200_000,
      notes: [
        `lifecycle replay --data-dir DIR: ${runNote(replay)}`,
        `events in the streams: ${thousands(counts.touchpointEvents)} touchpoints + ${thousands(counts.events - counts.touchpointEvents)} lifecycle events`,
      ],
    },
    {
      id: 'ingest_rss_per_customer',
      measure: 'ingest peak RSS above base, per customer',
      value: rssPerCustomer === null ? null : round3(rssPerCustomer),
      unit: 'KiB',
      shown: rssPerCustomer === null ? 'unknown' : `${rssPerCustomer.toFixed(2)} KiB`,
      goal: '≤ 1 KiB',
      met: rssPerCustomer === null ? null : rssPerCustomer <= 1,
      notes: [
        `peak ${mib(ingest.peakRssKiB ?? 0)} MiB − ${mib(empty.peakRssKiB ?? 0)} MiB (the same command on an empty file: ${empty.seconds.toFixed(1)} s) over ${thousands(counts.customers)} customers in the read model`,
        `with --heap-cap ${CAPPED_HEAP_MB}: ${cappedRssPerCustomer === null ? '?' : cappedRssPerCustomer.toFixed(2)} KiB per customer (peak ${mib(capped.peakRssKiB ?? 0)} − ${mib(cappedEmpty.peakRssKiB ?? 0)} MiB), ${thousands(perSecond(lines, capped))}/s: ${runNote(capped)}${Object.keys(capped.warnings).length > 0 ? `; its warnings: ${JSON.stringify(capped.warnings)}` : ''}`,
      ],
    },
    {
      id: 'export_as_of',
      measure: `export cohorts --as-of, ${thousands(counts.customers)} customers`,
      value: round3(exported.seconds),
      unit: 's',
      shown: `${exported.seconds.toFixed(2)} s`,
      goal: '< 1 s',
      met: exported.seconds < 1,
      notes: [
        `--as-of ${asOf} (30 days before the latest occurredAt): ${runNote(exported)}, ${cohortRows.lines} cohort rows`,
        `read from ${thousands(counts.cohortDayPieces)} pieces of cohort_cell_days, not from the customers: the time does not grow with their number`,
      ],
    },
  ];
  const context: BenchRow[] = pure.map((p) => ({
    id: p.stage === 'decide' ? 'ingest_without_store' : p.stage,
    measure: {
      parse: 'parse + validate (contract)',
      group: 'group by customer',
      fold: 'fold + cohort table',
      decide: `an ingest's work without a store, batches of ${thousands(DEFAULT_BATCH_SIZE)}`,
    }[p.stage],
    value: p.perSecond,
    unit: p.stage === 'parse' || p.stage === 'decide' ? 'lines/s' : 'touchpoints/s',
    shown: `${thousands(p.perSecond)}/s`,
    goal: p.stage === 'fold' ? '≥ 1,000,000/s' : null,
    met: p.stage === 'fold' ? p.perSecond >= 1_000_000 : null,
    notes:
      p.stage === 'decide'
        ? [
            `${thousands(p.items)} lines in ${p.seconds.toFixed(2)} s: parse, event ids, deduplication in memory, the decider for each customer a batch touches (every customer held, ${thousands(p.events ?? 0)} lifecycle events)`,
            `${(p.perSecond / parse.perSecond).toFixed(3)} × bare JSON.parse: no embedded store can make an ingest faster than this`,
          ]
        : [`${thousands(p.items)} ${p.stage === 'parse' ? 'lines' : 'distinct valid touchpoints'} in ${p.seconds.toFixed(2)} s`],
  }));
  context[context.length - 1]?.notes.push(`the four in one process of their own (no store): peak RSS ${mib(pureRun.peakRssKiB ?? 0)} MiB`);
  context.push({
    id: 'store_event_writes',
    measure: 'the store alone: the recorded events written again',
    value: writeRate,
    unit: 'events/s',
    shown: writeRate === null ? 'no events' : `${thousands(writeRate)}/s`,
    goal: null,
    met: null,
    notes: [
      `${thousands(writes.rows)} events with the projector's COPY into an empty embedded store, ${thousands(STORE_WRITES_PER_TRANSACTION)} a transaction: ${writes.seconds.toFixed(1)} s`,
      ...(writeRate === null
        ? []
        : [`at ${eventsPerTouchpoint.toFixed(2)} events per touchpoint, an ingest that did nothing else would record at most ${thousands(Math.round(writeRate / eventsPerTouchpoint))} touchpoints/s`]),
    ],
  });
  return {
    goals,
    context,
    details: {
      dataset: { customers: options.customers, lines, seed: options.seed, noise: NOISE },
      bareParse: { lines: parse.lines, objects: parse.objects, seconds: parse.seconds, perSecond: parse.perSecond },
      pure: { stages: pure, ...runFigures(pureRun) },
      emptyIngest: runFigures(empty),
      ingest: { ...runFigures(ingest), perSecond: ingestRate, ratioToParse: round3(ratio), summary },
      replay: { ...runFigures(replay), perSecond: replayRate, summary: JSON.parse(replay.stdout) as unknown },
      store: counts,
      storeWrites: { ...writes, perSecond: writeRate },
      rssPerCustomerKiB: rssPerCustomer === null ? null : round3(rssPerCustomer),
      capped: { heapCapMb: CAPPED_HEAP_MB, empty: runFigures(cappedEmpty), ingest: { ...runFigures(capped), perSecond: perSecond(lines, capped) }, rssPerCustomerKiB: cappedRssPerCustomer === null ? null : round3(cappedRssPerCustomer) },
      export: { ...runFigures(exported), asOf, cohortRows: cohortRows.lines },
    },
  };
}
