import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafka, ensureLifecycleTopics, topicsFor } from '@lifecycle/kafka';
import { createScratchDatabase, type ScratchDatabase } from '@lifecycle/sql';
import type { Logger } from 'pino';
import { IngestService, LagProbe, OwnBroker, ProjectorGroup, SOAK_APPLICATION, type Offsets, type UnexpectedExit } from './soak-cluster.js';
import { INPUT_PATHS, InputFeed } from './soak-input.js';
import { OwnPostgres } from './soak-postgres.js';
import { killEveryChild, runLifecycle, sleep } from './soak-process.js';
import { verify, type Check, type Verdict } from './soak-verify.js';

/**
 * The fault soak (SPEC §6.2, exactly-once effect on at-least-once delivery): live noisy input
 * through three clients into a 4-partition topic, two to four projector instances in one
 * group, one fault per cycle at a seeded random moment, the group's recovery timed after each;
 * at the end the distributed read models must equal a from-scratch embedded ingest of the same
 * lines, byte for byte, and the streams and the dead-letter topic must hold each line once.
 */

export const FAULT_KINDS = ['kill', 'crash-in-commit', 'rebalance', 'pg-terminate', 'broker-restart', 'ingest-kill', 'postgres-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/**
 * Without --faults: every kind but the restart of PostgreSQL itself (--postgres-restart adds
 * it). With it, the soak runs on a PostgreSQL server of its own (OwnPostgres), which it restarts;
 * the shared server is never restarted.
 */
export const DEFAULT_FAULTS: readonly FaultKind[] = FAULT_KINDS.filter((k) => k !== 'postgres-restart');

export interface SoakOptions {
  cycles: number;
  seed: number;
  /** Length of the fault phase: the cycles are spread over it. */
  minutes?: number | undefined;
  /** Touchpoints per second of live input (over the three clients). */
  rate: number;
  faults: FaultKind[];
  /**
   * Any database of the PostgreSQL server on which the soak creates (and drops)
   * lifecycle_soak_<random>; unused when `faults` has postgres-restart (a server of its own).
   */
  serverUrl: string;
  json: string;
  /** A fault whose recovery takes longer than this fails its cycle. */
  recoveryTimeoutSeconds: number;
  /** Keep the database, the broker and the work directory (for a look after a failure). */
  keep: boolean;
}

/** Shortest cycle: a fault, the group's recovery, and some quiet input before the next one. */
const MIN_CYCLE_SECONDS = 12;
const DEFAULT_CYCLE_SECONDS = 25;
const MIN_INSTANCES = 2;
const MAX_INSTANCES = 4;
const PARTITIONS = 4;

/** mulberry32: a small seeded generator, so that a seed names a run's faults and their moments. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fault of each cycle: the kinds in a seeded order, shuffled again each round, so each comes about as often. */
export function faultSchedule(kinds: readonly FaultKind[], cycles: number, random: () => number): FaultKind[] {
  const schedule: FaultKind[] = [];
  while (schedule.length < cycles) {
    const round = [...kinds];
    for (let i = round.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    schedule.push(...round);
  }
  return schedule.slice(0, cycles);
}

export interface FaultRecord {
  cycle: number;
  kind: FaultKind;
  detail: string;
  at: string;
  /**
   * From the moment the fault struck (a crash inside a commit: the death) until the group was
   * whole again (partitions reassigned, after a kill or a rebalance) and had consumed and
   * committed everything produced before that.
   */
  recoverySeconds: number | null;
  survived: boolean;
  error?: string;
  unexpectedExits: UnexpectedExit[];
}

export interface SoakReport {
  startedAt: string;
  finishedAt: string;
  options: Omit<SoakOptions, 'serverUrl'>;
  machine: { cores: number; loadAverage: { start: number[]; end: number[] } };
  cycles: { run: number; survived: number };
  faultsByKind: Record<string, number>;
  recoverySeconds: { p50: number | null; max: number | null; byKind: Record<string, { p50: number | null; max: number | null }> };
  input: { lines: number; touchpointsPerSecond: number; byPath: Record<string, { batches: number; lines: number; resent: number }>; seconds: number };
  faults: FaultRecord[];
  verification: (Omit<Verdict, 'checks'> & { ok: boolean; checks: Check[] }) | { ok: false; error: string };
  ok: boolean;
}

const percentile = (values: number[], p: number): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const round2 = (n: number) => Math.round(n * 100) / 100;

interface Soak {
  broker: OwnBroker;
  topic: string;
  database: ScratchDatabase;
  group: ProjectorGroup;
  ingest: IngestService;
  probe: LagProbe;
  feed: InputFeed;
  random: () => number;
  log: Logger;
  restartPostgres: () => Promise<void>;
}

export async function runSoak(options: SoakOptions, log: Logger): Promise<SoakReport> {
  const startedAt = new Date();
  const loadStart = loadavg().map(round2);
  const random = seededRandom(options.seed);
  const schedule = faultSchedule(options.faults, options.cycles, random);
  const cycleSeconds = options.minutes === undefined ? DEFAULT_CYCLE_SECONDS : Math.max(MIN_CYCLE_SECONDS, (options.minutes * 60) / options.cycles);
  const workDir = await mkdtemp(join(tmpdir(), 'lifecycle-soak-'));
  log.info({ workDir, schedule, cycleSeconds }, 'soak: starting a broker of its own');
  const broker = await OwnBroker.start(join(workDir, 'kafka'));
  const topic = `soak-${randomBytes(4).toString('hex')}`;
  const kafka = createKafka({ brokers: [broker.address], clientId: 'lifecycle-soak', logger: log.child({ component: 'soak-kafka' }, { level: 'error' }) });
  await ensureLifecycleTopics(kafka, topicsFor(topic), PARTITIONS);
  const ownPostgres = options.faults.includes('postgres-restart') ? await OwnPostgres.start() : undefined;
  const database = await createScratchDatabase(ownPostgres?.url ?? options.serverUrl, 'lifecycle_soak');
  // Ctrl-C or a SIGTERM: what the soak started must not outlive it (a broker, a server, projectors).
  const interrupted = (signal: NodeJS.Signals) => {
    process.stderr.write(`soak: ${signal}: stopping everything it started\n`);
    killEveryChild();
    void (async () => {
      await database.drop().catch(() => undefined);
      await ownPostgres?.stop();
      await broker.stop().catch(() => undefined);
      await rm(workDir, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const faults: FaultRecord[] = [];
  let soak: Soak | undefined;
  const restartPostgres = ownPostgres ? () => ownPostgres.restart() : () => Promise.reject(new Error('no PostgreSQL server of its own'));
  let verification: SoakReport['verification'] = { ok: false, error: 'not run' };
  let inputSeconds = 0;
  try {
    const group = new ProjectorGroup({ brokers: broker.address, topic, database: database.url, log });
    group.start('a');
    group.start('b');
    const ingest = await IngestService.start({ brokers: broker.address, topic, log });
    const probe = await LagProbe.open(broker.address, topic, database.url, log);
    const feed = new InputFeed({ brokers: broker.address, topic, rate: options.rate, seed: options.seed, log, ingestUrl: ingest.url });
    soak = { broker, topic, database, group, ingest, probe, feed, random, log, restartPostgres };
    await feed.start();
    const inputStarted = Date.now();
    // The group settles in before the first fault.
    await probe.caughtUpWith(await probe.endOffsets(topic), options.recoveryTimeoutSeconds * 1000);

    for (const [index, kind] of schedule.entries()) {
      const cycle = index + 1;
      const cycleStart = Date.now();
      // A seeded moment in the first half of the cycle; the recovery and quiet input follow.
      await sleep((0.1 + 0.4 * random()) * cycleSeconds * 1000);
      const record = await runCycle(soak, cycle, kind, options);
      faults.push(record);
      log.info({ cycle, kind: record.kind, detail: record.detail, recoverySeconds: record.recoverySeconds, survived: record.survived, error: record.error }, 'soak: cycle done');
      process.stderr.write(`soak: cycle ${cycle}/${options.cycles} ${record.kind} (${record.detail}): ${record.survived ? `recovered in ${record.recoverySeconds} s` : `FAILED: ${record.error ?? 'unexpected exits'}`}\n`);
      if (feed.failed) break;
      await sleep(Math.max(0, cycleStart + cycleSeconds * 1000 - Date.now()));
    }

    process.stderr.write('soak: stopping the input, letting the group catch up and settle\n');
    await feed.stop();
    inputSeconds = (Date.now() - inputStarted) / 1000;
    await ingest.stop();
    await probe.caughtUpWith(await probe.endOffsets(topic), options.recoveryTimeoutSeconds * 1000);
    await group.stopAll();
    // Settled as a batch run settles (`--until-idle`: nudges taken, deadlines up to the group's T).
    const settle = await Promise.all(['a', 'b'].map((id) => runLifecycle(['project', '--brokers', broker.address, '--topic', topic, '--database', database.url, '--instance-id', id, '--metrics-port', '0', '--until-idle'], { env: { LOG_LEVEL: 'warn' }, timeoutMs: 600_000 })));
    const unsettled = settle.filter((run) => run.code !== 0);
    if (unsettled.length > 0) throw new Error(`project --until-idle did not finish: ${unsettled.map((r) => `${r.signal ?? `exit ${r.code}`} ${r.stderr.slice(-1_000)}`).join('; ')}`);

    process.stderr.write(`soak: verifying ${feed.lines} lines against an embedded ingest of the same lines\n`);
    const verdict = await verify({ batches: feed.batches, workDir, database: database.url, db: probe.database, brokers: broker.address, topic, log });
    verification = { ...verdict, ok: verdict.checks.every((c) => c.ok) };
  } catch (error) {
    log.error({ err: error }, 'soak: the run stopped');
    verification = { ok: false, error: (error as Error).message };
  } finally {
    if (soak) {
      await soak.feed.stop().catch(() => undefined);
      await soak.group.killAll();
      await soak.ingest.stop().catch(() => undefined);
      await soak.probe.close().catch(() => undefined);
    }
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    if (options.keep) {
      process.stderr.write(`soak: kept ${workDir}, database ${database.url}, broker ${broker.address} (stop it: LIFECYCLE_KAFKA_STATE=${join(workDir, 'kafka')} KAFKA_PORT=${broker.port} bash infra/kafka/kafka.sh stop)\n`);
      if (ownPostgres) process.stderr.write(`soak: kept its PostgreSQL server on port ${ownPostgres.port} (stop it: pg_ctl -D ${ownPostgres.dataDir} -m fast stop, as the postgres user)\n`);
    }
    else {
      await database.drop().catch((error: unknown) => log.warn({ err: error }, 'soak: could not drop its database'));
      await ownPostgres?.stop();
      await broker.stop().catch((error: unknown) => log.warn({ err: error }, 'soak: could not stop its broker'));
      await rm(workDir, { recursive: true, force: true });
    }
  }

  const recoveries = faults.map((f) => f.recoverySeconds).filter((s): s is number => s !== null);
  const byKind: SoakReport['recoverySeconds']['byKind'] = {};
  const faultsByKind: Record<string, number> = {};
  for (const kind of new Set(faults.map((f) => f.kind))) {
    const of = faults.filter((f) => f.kind === kind);
    faultsByKind[kind] = of.length;
    const seconds = of.map((f) => f.recoverySeconds).filter((s): s is number => s !== null);
    byKind[kind] = { p50: percentile(seconds, 50), max: percentile(seconds, 100) };
  }
  const byPath: SoakReport['input']['byPath'] = {};
  for (const path of INPUT_PATHS) {
    const batches = soak?.feed.batches.filter((b) => b.path === path) ?? [];
    byPath[path] = { batches: batches.length, lines: batches.reduce((n, b) => n + b.lines.length, 0), resent: batches.filter((b) => b.attempts > 1).length };
  }
  const lines = soak?.feed.lines ?? 0;
  const survived = faults.filter((f) => f.survived).length;
  const report: SoakReport = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options: { ...options, serverUrl: undefined } as Omit<SoakOptions, 'serverUrl'>,
    machine: { cores: cpus().length, loadAverage: { start: loadStart, end: loadavg().map(round2) } },
    cycles: { run: faults.length, survived },
    faultsByKind,
    recoverySeconds: { p50: percentile(recoveries, 50), max: percentile(recoveries, 100), byKind },
    input: { lines, touchpointsPerSecond: inputSeconds > 0 ? round2(lines / inputSeconds) : 0, byPath, seconds: round2(inputSeconds) },
    faults,
    verification,
    ok: faults.length === options.cycles && survived === options.cycles && verification.ok,
  };
  await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

/** Faults after which the group reassigns partitions (a claim of each, in the store) before it is whole again. */
const REASSIGNING: ReadonlySet<FaultKind> = new Set(['kill', 'crash-in-commit', 'rebalance']);

/** One cycle: the fault, then the wait for the group to catch up with everything produced before it ended. */
async function runCycle(soak: Soak, cycle: number, kind: FaultKind, options: SoakOptions): Promise<FaultRecord> {
  const exitsBefore = soak.group.unexpected.length + soak.ingest.unexpected.length;
  const injected = Date.now();
  let faultAt = injected;
  const record: FaultRecord = { cycle, kind, detail: '', at: new Date(injected).toISOString(), recoverySeconds: null, survived: false, unexpectedExits: [] };
  try {
    let claimsBefore = await soak.probe.claims();
    // A crash inside a commit comes some time after its fault is set up: recovery counts from the death.
    record.detail = await inject(soak, kind, async () => {
      faultAt = Date.now();
      record.at = new Date(faultAt).toISOString();
      claimsBefore = await soak.probe.claims();
    });
    if (REASSIGNING.has(kind)) {
      // An instance killed, joining or leaving: the group is whole again once
      // it reassigned the partitions (the new assignment's claims); until then the partitions of
      // a dead instance wait, and the input end measured before that could be reached without
      // them in a quiet moment.
      await waitUntil(async () => (await soak.probe.claims()) > claimsBefore, options.recoveryTimeoutSeconds * 1000 - (Date.now() - injected), 'the group did not reassign its partitions');
    }
    const inputEnd: Offsets = await retry(() => soak.probe.endOffsets(soak.topic), options.recoveryTimeoutSeconds * 1000);
    await soak.probe.caughtUpWith(inputEnd, options.recoveryTimeoutSeconds * 1000 - (Date.now() - injected));
    record.recoverySeconds = round2((Date.now() - faultAt) / 1000);
  } catch (error) {
    record.error = (error as Error).message;
  }
  record.unexpectedExits = [...soak.group.unexpected, ...soak.ingest.unexpected].slice(exitsBefore);
  const failed = soak.feed.failed;
  if (failed) record.error ??= `input: ${failed.message}`;
  record.survived = record.recoverySeconds !== null && record.unexpectedExits.length === 0 && failed === undefined;
  return record;
}

async function waitUntil(done: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

async function retry<T>(work: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}

const pick = <T>(items: readonly T[], random: () => number): T => items[Math.floor(random() * items.length)]!;

/** Injects one fault; resolves with what was done once the fault is over (what it broke is back). */
async function inject(soak: Soak, kind: FaultKind, markClaims: () => Promise<void>): Promise<string> {
  const { group, random } = soak;
  switch (kind) {
    case 'kill': {
      const id = pick(group.ids, random);
      const downMs = Math.round(random() * 3_000);
      await group.kill(id);
      await sleep(downMs);
      group.start(id);
      return `SIGKILL projector ${id}, restarted ${downMs} ms later`;
    }
    case 'crash-in-commit': {
      // Started again to die inside its nth chunk transaction, after its writes, before COMMIT.
      const id = pick(group.ids, random);
      const nth = 2 + Math.floor(random() * 6);
      await group.stop(id);
      const inside = await group.crashInCommit(id, nth, 60_000);
      await markClaims(); // the recovery is from this death, not from the stop before it
      group.start(id);
      return inside ? `projector ${id} SIGKILLed itself inside chunk transaction ${nth}, before its COMMIT; restarted` : `projector ${id} did not reach chunk ${nth} within 60 s: SIGKILLed instead; restarted`;
    }
    case 'rebalance': {
      const n = group.ids.length;
      if (n < MAX_INSTANCES && (n <= MIN_INSTANCES || random() < 0.5)) {
        const id = group.nextId();
        group.start(id);
        return `instance ${id} added (${n} → ${n + 1})`;
      }
      const id = pick(group.ids, random);
      const exit = await group.stop(id);
      return `instance ${id} removed (SIGTERM, exit ${exit.signal ?? exit.code}; ${n} → ${n - 1})`;
    }
    case 'pg-terminate': {
      // The projectors' connections to the soak's database only (not the soak's own probe).
      let terminated = 0;
      for (let i = 0; i < 3; i += 1) {
        const [row] = await soak.probe.database.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> $1) t',
          [SOAK_APPLICATION],
        );
        terminated += row?.n ?? 0;
        await sleep(300);
      }
      return `pg_terminate_backend on ${terminated} connections of the projectors (3 rounds, 300 ms apart)`;
    }
    case 'broker-restart': {
      const started = Date.now();
      await soak.broker.restart();
      return `broker stopped and started on its data (down ${round2((Date.now() - started) / 1000)} s)`;
    }
    case 'ingest-kill': {
      const delayMs = Math.round(random() * 40);
      const done = new Promise<void>((resolve, reject) => {
        soak.feed.armHttpFault(async () => {
          await sleep(delayMs);
          await soak.ingest.killAndRestart().then(resolve, reject);
        });
      });
      await withTimeout(done, 60_000, 'the HTTP client did not send a request to kill the ingest service under');
      return `ingest service SIGKILLed ${delayMs} ms into a ${3_000}-line request, restarted; the client sent the request again`;
    }
    case 'postgres-restart': {
      const started = Date.now();
      await soak.restartPostgres();
      return `PostgreSQL server restarted (pg_ctl restart -m fast, as pg_ctlcluster restart; ${round2((Date.now() - started) / 1000)} s)`;
    }
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The report as a few lines for a terminal. */
export function formatReport(report: SoakReport): string {
  const out = [
    `lifecycle soak ${report.startedAt} → ${report.finishedAt}: seed ${report.options.seed}, ${report.machine.cores} cores, load ${report.machine.loadAverage.start.join(' ')} → ${report.machine.loadAverage.end.join(' ')}`,
    `cycles: ${report.cycles.survived}/${report.cycles.run} survived (of ${report.options.cycles})`,
    `faults: ${Object.entries(report.faultsByKind).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `recovery: p50 ${report.recoverySeconds.p50} s, max ${report.recoverySeconds.max} s; by kind: ${Object.entries(report.recoverySeconds.byKind).map(([k, r]) => `${k} ${r.p50}/${r.max} s`).join(', ')}`,
    `input: ${report.input.lines} lines in ${report.input.seconds} s (${report.input.touchpointsPerSecond}/s); ${Object.entries(report.input.byPath).map(([p, b]) => `${p} ${b.lines} in ${b.batches} batches (${b.resent} sent again)`).join(', ')}`,
  ];
  for (const f of report.faults.filter((f) => !f.survived)) out.push(`  cycle ${f.cycle} ${f.kind} FAILED: ${f.error ?? ''} ${f.unexpectedExits.map((e) => `${e.process} exited ${e.signal ?? e.code}`).join('; ')}`);
  const v = report.verification;
  if ('checks' in v) {
    for (const c of v.checks) {
      out.push(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
      if (!c.ok && c.difference !== undefined) out.push(`     first differences: ${JSON.stringify(c.difference).slice(0, 3_000)}`);
    }
  } else out.push(`verification not done: ${v.error}`);
  out.push(report.ok ? 'soak passed' : 'soak FAILED');
  return out.join('\n');
}
