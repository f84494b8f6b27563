import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_TOUCHPOINT_BYTES } from '@lifecycle/contracts';
import type { SqlDatabase } from '@lifecycle/sql';
import type { Logger } from 'pino';
import type { SentBatch } from './soak-input.js';
import { lifecycleOk, runProcess, sleep, startLifecycle, stopProcess, killProcess } from './soak-process.js';

/**
 * The soak's verdict: the distributed run (Kafka, projectors, PostgreSQL, under faults) against
 * a from-scratch embedded `lifecycle ingest` of the same lines, through the commands an operator
 * uses (`export`, `sql`, `replay`) and the topics themselves (kcat, read_committed).
 */

/** The exports compared byte for byte: every analyst export (`lifecycle export --help`). */
export const EXPORTS: readonly (readonly string[])[] = [['customers'], ['cohorts'], ['cohorts', '--by', 'channel'], ['channels'], ['churns'], ['stages'], ['referrals']];

/** One check of the verifier; `difference` holds the first differing rows when it failed. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  difference?: unknown;
}

export interface VerifyOptions {
  batches: readonly SentBatch[];
  workDir: string;
  database: string;
  db: SqlDatabase;
  brokers: string;
  topic: string;
  log: Logger;
}

const exportName = (what: readonly string[]) => `export ${what.join(' ')}`;

/** The first rows where two NDJSON texts differ (line numbers from 1), and both line counts. */
export function firstDifferences(expected: string, actual: string, max = 3): { expectedLines: number; actualLines: number; rows: { line: number; expected: string | null; actual: string | null }[] } {
  const e = expected.split('\n').filter((l) => l !== '');
  const a = actual.split('\n').filter((l) => l !== '');
  const rows = [];
  for (let i = 0; i < Math.max(e.length, a.length) && rows.length < max; i += 1) {
    if (e[i] !== a[i]) rows.push({ line: i + 1, expected: e[i]?.slice(0, 2_000) ?? null, actual: a[i]?.slice(0, 2_000) ?? null });
  }
  return { expectedLines: e.length, actualLines: a.length, rows };
}

async function exportsOf(store: string[], asOf?: string): Promise<Map<string, string>> {
  const texts = new Map<string, string>();
  for (const what of EXPORTS) texts.set(exportName(what), await lifecycleOk(['export', ...what, ...store, ...(asOf ? ['--as-of', asOf] : [])], { timeoutMs: 600_000 }));
  return texts;
}

function compareExports(label: string, expected: Map<string, string>, actual: Map<string, string>): Check[] {
  return [...expected].map(([name, text]) => {
    const other = actual.get(name) ?? '';
    const rows = text.split('\n').filter((l) => l !== '').length;
    return text === other
      ? { name: `${label}: ${name}`, ok: true, detail: `${rows} rows, byte for byte` }
      : { name: `${label}: ${name}`, ok: false, detail: 'differs', difference: firstDifferences(text, other) };
  });
}

/**
 * A line as the verifier matches dead letters: the topic keeps an oversized line's first
 * MAX_TOUCHPOINT_BYTES, the embedded ingest's dead-letter file its first 4 096 characters, so
 * both are compared on that much (a generated line's id comes first: no two differ later only).
 */
const asDeadLetter = (line: string) => Buffer.from(line, 'utf8').subarray(0, MAX_TOUCHPOINT_BYTES).toString('utf8').slice(0, DEAD_LETTER_FILE_CHARS);
const DEAD_LETTER_FILE_CHARS = 4_096;

interface TopicMessage {
  partition: number;
  offset: number;
  payload: string;
  headers: Record<string, string>;
}

/** Every message of a topic, read_committed (librdkafka's default), to its end. */
async function readTopic(brokers: string, topic: string): Promise<TopicMessage[]> {
  const run = await runProcess('kcat', ['-C', '-b', brokers, '-t', topic, '-J', '-e', '-q', '-o', 'beginning'], { timeoutMs: 300_000 });
  if (run.code !== 0) throw new Error(`kcat -C ${topic} failed (exit ${run.signal ?? run.code}): ${run.stderr.slice(-1_000)}`);
  return run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      const m = JSON.parse(l) as { partition: number; offset: number; payload: string | null; headers?: string[] };
      const headers: Record<string, string> = {};
      for (let i = 0; i + 1 < (m.headers ?? []).length; i += 2) headers[m.headers![i]!] = m.headers![i + 1]!;
      return { partition: m.partition, offset: m.offset, payload: m.payload ?? '', headers };
    });
}

const count = <T>(items: Iterable<T>): Map<T, number> => {
  const counts = new Map<T, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
};

export interface Verdict {
  checks: Check[];
  embedded: { lines: number; accepted: number; duplicates: number; rejected: Record<string, number> };
  /** Dead letters sent more than once because a producer sent their batch again (at least once by nature). */
  deadLettersFromRetries: number;
  wallClock: { watermark: string | null; churnsAppended: number } | null;
}

/** Everything after the soak's input stopped and the group settled (`project --until-idle`). */
export async function verify(options: VerifyOptions): Promise<Verdict> {
  const { batches, workDir, database, db, brokers, topic, log } = options;
  const checks: Check[] = [];
  const lines = batches.flatMap((b) => b.lines);
  const unionFile = join(workDir, 'union.ndjson');
  await writeFile(unionFile, `${lines.join('\n')}\n`);
  const embeddedDir = join(workDir, 'embedded');
  log.info({ lines: lines.length, unionFile }, 'soak verify: embedded ingest of every line produced');
  const embedded = JSON.parse(await lifecycleOk(['ingest', unionFile, '--data-dir', embeddedDir], { timeoutMs: 1_800_000 })) as Verdict['embedded'];
  const embeddedStore = ['--data-dir', embeddedDir];
  const pgStore = ['--database', database];

  // 1. The read models, byte for byte.
  const expected = await exportsOf(embeddedStore);
  const actual = await exportsOf(pgStore);
  checks.push(...compareExports('PostgreSQL = embedded', expected, actual));

  // 2. Every valid touchpoint in the streams exactly once.
  const recorded = await db.query<{ id: string; n: number }>("SELECT data->>'id' AS id, count(*)::int AS n FROM lifecycle_events WHERE event_type = 'TouchpointRecorded' GROUP BY 1");
  const doubled = recorded.filter((r) => r.n > 1);
  const embeddedIds = new Set(
    (await lifecycleOk(['sql', "SELECT data->>'id' AS id FROM lifecycle_events WHERE event_type = 'TouchpointRecorded'", '--format', 'ndjson', ...embeddedStore], { timeoutMs: 600_000 }))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { id: string }).id),
  );
  const pgIds = new Set(recorded.map((r) => r.id));
  const missing = [...embeddedIds].filter((id) => !pgIds.has(id));
  const extra = [...pgIds].filter((id) => !embeddedIds.has(id));
  checks.push({
    name: 'streams: every valid touchpoint recorded exactly once',
    ok: doubled.length === 0 && missing.length === 0 && extra.length === 0 && embeddedIds.size === embedded.accepted,
    detail: `${pgIds.size} recorded in PostgreSQL, ${embeddedIds.size} by the embedded ingest (${embedded.accepted} accepted); ${doubled.length} recorded twice or more, ${missing.length} missing, ${extra.length} unexpected`,
    ...(doubled.length + missing.length + extra.length > 0 ? { difference: { doubled: doubled.slice(0, 5), missing: missing.slice(0, 5), extra: extra.slice(0, 5) } } : {}),
  });

  // 3. The dead-letter topic: exactly the invalid lines, with the embedded ingest's reasons.
  const deadLetterFile = await readFile(join(embeddedDir, 'dead-letter.ndjson'), 'utf8');
  const reasonOf = new Map<string, string>();
  for (const line of deadLetterFile.split('\n').filter((l) => l.startsWith('{'))) {
    const entry = JSON.parse(line) as { raw: string; reason: string };
    reasonOf.set(asDeadLetter(entry.raw), entry.reason);
  }
  const dlq = await readTopic(brokers, `${topic}.dlq`);
  const input = await readTopic(brokers, topic);
  const viaRepartition = dlq.filter((m) => m.headers['lifecycle-topic'] === topic);
  const viaProducers = dlq.filter((m) => m.headers['lifecycle-topic'] !== topic);
  // (a) The repartition stage (Kafka transactions): each invalid message of the input topic
  // exactly once, whatever the faults; kcat's own retries may have put one there twice.
  const invalidInInput = count(input.map((m) => asDeadLetter(m.payload)).filter((v) => reasonOf.has(v)));
  const repartitioned = count(viaRepartition.map((m) => asDeadLetter(m.payload)));
  const repartitionDiff = [...new Set([...invalidInInput.keys(), ...repartitioned.keys()])]
    .filter((v) => (invalidInInput.get(v) ?? 0) !== (repartitioned.get(v) ?? 0))
    .map((v) => ({ line: v.slice(0, 300), inInputTopic: invalidInInput.get(v) ?? 0, deadLettered: repartitioned.get(v) ?? 0 }));
  checks.push({
    name: 'dead letters of the repartition stage: each invalid message of the input topic exactly once',
    ok: repartitionDiff.length === 0,
    detail: `${viaRepartition.length} dead letters for ${[...invalidInInput.values()].reduce((a, b) => a + b, 0)} invalid messages in ${topic}`,
    ...(repartitionDiff.length > 0 ? { difference: repartitionDiff.slice(0, 5) } : {}),
  });
  // (b) The producers (`produce`, the HTTP ingest) dead-letter directly: each invalid line of a
  // batch once per send of it; a batch sent again after a fault may have been half-sent before.
  const sentOnce = new Map<string, number>();
  const resentAtMost = new Map<string, number>();
  for (const batch of batches) {
    if (batch.path === 'kcat') continue;
    for (const line of batch.lines) {
      const v = asDeadLetter(line);
      if (!reasonOf.has(v)) continue;
      sentOnce.set(v, (sentOnce.get(v) ?? 0) + 1);
      resentAtMost.set(v, (resentAtMost.get(v) ?? 0) + batch.attempts - 1);
    }
  }
  const produced = count(viaProducers.map((m) => asDeadLetter(m.payload)));
  let deadLettersFromRetries = 0;
  const producerDiff = [];
  for (const v of new Set([...sentOnce.keys(), ...produced.keys()])) {
    const least = sentOnce.get(v) ?? 0;
    const most = least + (resentAtMost.get(v) ?? 0);
    const got = produced.get(v) ?? 0;
    deadLettersFromRetries += Math.max(0, got - least);
    if (got < least || got > most) producerDiff.push({ line: v.slice(0, 300), sent: least, resends: most - least, deadLettered: got });
  }
  checks.push({
    name: 'dead letters of produce and the HTTP ingest: each invalid line once per batch, more only for batches a fault made the client send again',
    ok: producerDiff.length === 0,
    detail: `${viaProducers.length} dead letters, ${deadLettersFromRetries} of them from batches sent again`,
    ...(producerDiff.length > 0 ? { difference: producerDiff.slice(0, 5) } : {}),
  });
  const kcatInvalid = batches.filter((b) => b.path === 'kcat').reduce((n, b) => n + b.lines.filter((l) => reasonOf.has(asDeadLetter(l))).length, 0);
  // (c) Reasons: each dead letter has the reason the embedded ingest gave its line; nothing
  // else is in the topic (no valid line, no id conflict: the input has none).
  const wrongReason = dlq.filter((m) => reasonOf.get(asDeadLetter(m.payload)) !== m.headers['lifecycle-reason']);
  const byReason = count(dlq.map((m) => m.headers['lifecycle-reason'] ?? 'none'));
  checks.push({
    name: 'dead letters: each with the reason of the embedded ingest, counts by reason',
    ok: wrongReason.length === 0 && [...reasonOf.keys()].every((v) => (produced.get(v) ?? 0) + (repartitioned.get(v) ?? 0) > 0),
    detail: `topic ${JSON.stringify(Object.fromEntries(byReason))}, embedded ingest ${JSON.stringify(embedded.rejected)} (the topic's extra copies: ${deadLettersFromRetries} from producer retries, ${[...invalidInInput.values()].reduce((a, b) => a + b, 0) - kcatInvalid} from kcat's own retries)`,
    ...(wrongReason.length > 0 ? { difference: wrongReason.slice(0, 5).map((m) => ({ line: m.payload.slice(0, 300), reason: m.headers['lifecycle-reason'], expected: reasonOf.get(asDeadLetter(m.payload)) ?? 'not a dead letter' })) } : {}),
  });

  // 4. replay reproduces the read models.
  await lifecycleOk(['replay', ...pgStore], { timeoutMs: 1_800_000 });
  checks.push(...compareExports('replay', actual, await exportsOf(pgStore)));

  // 5. Churn by the wall clock, exactly once, across a crash inside its transaction and a restart.
  const wallClock = await wallClockChurn(options, embeddedStore, checks);
  return { checks, embedded, deadLettersFromRetries, wallClock };
}

/**
 * After the comparison (an embedded ingest has no wall clock): a projector with
 * `--wall-clock-after-idle 1` dies inside its first advance (nothing of it may stay), a second
 * one appends the due churns, a third (a restart) must append none of them again. Then the
 * read models equal the embedded store's exports as of the wall-clock T, and the appended
 * `CustomerChurned` events are exactly the churns due between the event-time T and it.
 */
async function wallClockChurn(options: VerifyOptions, embeddedStore: string[], checks: Check[]): Promise<Verdict['wallClock']> {
  const { db, database, brokers, topic, log } = options;
  const project = (id: string, env: Record<string, string> = {}) =>
    startLifecycle(`wall-clock projector ${id}`, ['project', '--brokers', brokers, '--topic', topic, '--database', database, '--instance-id', id, '--metrics-port', '0', '--wall-clock-after-idle', '1'], { LOG_LEVEL: 'info', ...env });
  const maxPosition = async () => Number((await db.query<{ p: string | null }>('SELECT max(position) AS p FROM lifecycle_events'))[0]?.p ?? 0);
  const churnsAfter = (position: number) =>
    db.query<{ stream_id: string; at: string }>("SELECT stream_id, data->>'at' AS at FROM lifecycle_events WHERE event_type = 'CustomerChurned' AND position > $1", [position]);
  const totalChurns = async (asOf?: string) =>
    (await lifecycleOk(['export', 'churns', ...embeddedStore, ...(asOf ? ['--as-of', asOf] : [])]))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .reduce((n, l) => n + (JSON.parse(l) as { churns: number }).churns, 0);

  const before = await maxPosition();
  const crashed = project('w', { LIFECYCLE_TEST_CRASH_BEFORE_COMMIT: 'advance:1' });
  const crashedExit = await Promise.race([crashed.exit, sleep(120_000).then(() => undefined)]);
  if (crashedExit === undefined) await killProcess(crashed);
  // Its first advance of owned customers: the projector advances only once it holds partitions.
  const diedInside = crashed.stderr().includes('SIGKILL inside advance transaction 1') && logEntries(crashed.stderr()).some((e) => e['msg'] === 'partitions claimed');
  const afterCrash = await churnsAfter(before);
  checks.push({
    name: 'wall clock: a projector killed inside its advance left none of it',
    ok: diedInside && afterCrash.length === 0,
    detail: diedInside ? `${afterCrash.length} churns appended by the killed advance` : `the projector did not die inside its advance: ${crashed.stderr().slice(-500)}`,
  });

  const advanced = await advanceOnce(project('w'), log);
  await advanceOnce(project('w'), log); // a restart: the same churns must not come again
  // T as the read models hold it now (the restart moved it on to its own wall clock).
  const stored = await db.query<{ value: unknown }>("SELECT value FROM projection_state WHERE key = 'watermark' OR key LIKE 'watermark:%'");
  const latest = Math.max(...stored.map((r) => Number(r.value)));
  const watermark = advanced.watermark === null || !Number.isFinite(latest) ? null : new Date(latest).toISOString();
  const appended = await churnsAfter(before);
  const doubled = [...count(appended.map((c) => `${c.stream_id} ${c.at}`))].filter(([, n]) => n > 1);
  const due = watermark === null ? NaN : (await totalChurns(watermark)) - (await totalChurns());
  checks.push({
    name: 'wall clock: the due churns appended exactly once (across a crash and a restart)',
    ok: watermark !== null && doubled.length === 0 && appended.length === due,
    detail: `${appended.length} CustomerChurned appended up to ${watermark}; the embedded store has ${due} churns due between its event time and then; ${doubled.length} appended twice`,
    ...(doubled.length > 0 ? { difference: doubled.slice(0, 5) } : {}),
  });
  if (watermark !== null) {
    const expected = await exportsOf(embeddedStore, watermark);
    const actual = await exportsOf(['--database', database], watermark);
    checks.push(...compareExports(`wall clock: PostgreSQL = embedded as of ${watermark}`, expected, actual));
  }
  return { watermark, churnsAppended: appended.length };
}

/**
 * Runs a wall-clock projector until it advanced, or until it held partitions for a few seconds
 * without finding anything due, then stops it. A restarted instance may wait up to the session
 * timeout for its partitions (its killed predecessor is still a member until then).
 */
async function advanceOnce(run: ReturnType<typeof startLifecycle>, log: Logger): Promise<{ watermark: string | null }> {
  const deadline = Date.now() + 180_000;
  let claimedAt: number | undefined;
  let watermark: string | null = null;
  while (Date.now() < deadline && !run.exited) {
    const entries = logEntries(run.stderr());
    const advanced = entries.filter((e) => e['msg'] === 'wall clock passed deadlines');
    if (advanced.length > 0) {
      watermark = advanced[advanced.length - 1]!['watermark'] as string;
      break;
    }
    if (entries.some((e) => e['msg'] === 'partitions claimed' && (e['partitions'] as unknown[]).length > 0)) claimedAt ??= Date.now();
    // Idle (1 s), caught up and owning partitions, with nothing due: no line is logged.
    if (claimedAt !== undefined && Date.now() - claimedAt > 8_000) break;
    await sleep(250);
  }
  const exit = await stopProcess(run);
  if (exit.code !== 0) log.warn({ code: exit.code, signal: exit.signal, stderr: run.stderr().slice(-2_000) }, 'soak verify: the wall-clock projector did not stop cleanly');
  return { watermark };
}

/** The complete pino lines of a stderr tail. */
function logEntries(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').flatMap((line) => {
    if (!line.startsWith('{')) return [];
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return []; // cut by the tail, or still being written
    }
  });
}
