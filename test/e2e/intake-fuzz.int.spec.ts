import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAX_TOUCHPOINT_BYTES, parseTouchpoint, REJECTION_REASONS } from '@lifecycle/contracts';
import { openLifecycleStore, recordedTouchpoints } from '@lifecycle/projection';
import { cli } from '../support/cli.js';
import { ensureBroker } from '../support/kafka.js';
import { readMessages, type ReceivedMessage } from '../support/distributed.js';
import { fuzzLines, type FuzzLine, type Verdict } from '../support/touchpoint-fuzz.js';

// One seeded file of valid, mutated, non-JSON, non-UTF-8 and near-64-KiB lines through the three
// intakes (embedded ingest, produce to Kafka, HTTP ingest): each must answer every line, and all
// must answer it alike.
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261129);
const COUNT = 400;
const PROCESS_TIMEOUT = 90_000;

const execFileAsync = promisify(execFile);
const run = (args: string[]) =>
  execFileAsync(process.execPath, [cli, ...args], { timeout: PROCESS_TIMEOUT, maxBuffer: 64 << 20, env: { ...process.env, LOG_LEVEL: 'warn' } });

/** What one path said: a verdict per line (undefined: no answer), its ids, and what went wrong. */
interface PathAnswer {
  verdicts: (Verdict | undefined)[];
  acceptedIds: string[];
  problems: string[];
}

/** The line as the paths parse it: the LF is gone, so is one CR before it. */
const content = (bytes: Buffer) => (bytes.at(-1) === 0x0d ? bytes.subarray(0, -1) : bytes);
/** The contract's answer; a throw is an answer no path can match. */
const oracle = (bytes: Buffer): Verdict | 'the contract threw' => {
  try {
    const parsed = parseTouchpoint(content(bytes));
    return parsed.ok ? 'accepted' : parsed.rejection.reason;
  } catch {
    return 'the contract threw';
  }
};
const idOf = (text: string): string => (JSON.parse(text.replace(/^\uFEFF/, '')) as { id: string }).id;
const failure = (what: string, error: unknown) => {
  const e = error as { killed?: boolean; signal?: string; code?: unknown; stderr?: string; message?: string };
  return `${what}: ${e.killed ? `killed after ${PROCESS_TIMEOUT} ms` : `failed (exit ${String(e.code)}, signal ${String(e.signal)})`}: ${(e.stderr ?? e.message ?? '').slice(-1500)}`;
};
const issuesOk = (issues: unknown) =>
  Array.isArray(issues) && issues.length > 0 && issues.every((i: { path?: unknown; message?: unknown }) => typeof i.path === 'string' && typeof i.message === 'string');

/** Per-line verdicts from rejections keyed by line number: any line not rejected was accepted. */
function fromRejections(what: string, count: number, rejections: { line: number; reason: string }[], problems: string[]): Verdict[] {
  const verdicts: Verdict[] = Array.from({ length: count }, () => 'accepted');
  const seen = new Set<number>();
  for (const { line, reason } of rejections) {
    if (!Number.isInteger(line) || line < 1 || line > count || seen.has(line)) problems.push(`${what}: dead letter for line ${line} out of range or repeated`);
    if (!(REJECTION_REASONS as readonly string[]).includes(reason)) problems.push(`${what}: line ${line} has an unknown reason ${reason}`);
    seen.add(line);
    verdicts[line - 1] = reason as Verdict;
  }
  return verdicts;
}

const rejectedCount = (rejected: Record<string, number>) => Object.values(rejected).reduce((a, b) => a + b, 0);

async function embeddedIngest(file: string, dataDir: string, lines: Buffer[]): Promise<PathAnswer> {
  const problems: string[] = [];
  let stdout: string;
  try {
    ({ stdout } = await run(['ingest', file, '--data-dir', dataDir]));
  } catch (error) {
    return { verdicts: [], acceptedIds: [], problems: [failure('ingest', error)] };
  }
  const summary = JSON.parse(stdout) as { lines: number; accepted: number; duplicates: number; rejected: Record<string, number> };
  const letters = (await readFile(join(dataDir, 'dead-letter.ndjson'), 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { source: string; line: number; reason: string; issues: unknown; raw: string });
  if (summary.lines !== lines.length || summary.accepted + rejectedCount(summary.rejected) !== lines.length || summary.duplicates !== 0) {
    problems.push(`ingest: summary does not add up to ${lines.length} lines: ${stdout}`);
  }
  if (letters.length !== rejectedCount(summary.rejected)) problems.push(`ingest: ${letters.length} dead letters for ${rejectedCount(summary.rejected)} rejections`);
  for (const letter of letters) {
    if (!issuesOk(letter.issues)) problems.push(`ingest: line ${letter.line} has no issues: ${JSON.stringify(letter.issues)}`);
    const line = lines[letter.line - 1];
    // `raw` is the line's start, cut at 4 KiB (maybe inside a character, hence the U+FFFD dropped).
    if (line && isUtf8(line) && !content(line).toString('utf8').startsWith(letter.raw.replace(/\uFFFD$/, ''))) problems.push(`ingest: line ${letter.line}'s raw text is not the line`);
  }
  const db = await openLifecycleStore({ dataDir });
  let acceptedIds: string[];
  try {
    acceptedIds = (await recordedTouchpoints(db)).map((t) => t.id);
  } finally {
    await db.close(); // before anything else opens the directory: the store holds a lock on it
  }
  if (acceptedIds.length !== summary.accepted) problems.push(`ingest: ${acceptedIds.length} touchpoints recorded, ${summary.accepted} accepted`);
  return { verdicts: fromRejections('ingest', lines.length, letters, problems), acceptedIds, problems };
}

/** The valid lines a topic got, and its dead letters as (line, reason), checked against the lines. */
async function kafkaAnswer(what: string, brokers: string, topic: string, lines: Buffer[], expectedAccepted: number, expectedRejected: number, problems: string[]) {
  const [input, dead] = await Promise.all([readMessages(brokers, topic, expectedAccepted), readMessages(brokers, `${topic}.dlq`, expectedRejected)]);
  const rejections = dead.map((m: ReceivedMessage) => {
    const line = Number(m.headers['lifecycle-line']);
    let issues: unknown;
    try {
      issues = JSON.parse(m.headers['lifecycle-issues'] ?? '');
    } catch {
      issues = undefined;
    }
    if (!issuesOk(issues)) problems.push(`${what}: dead letter of line ${line} has no readable issues: ${m.headers['lifecycle-issues']}`);
    const original = lines[line - 1];
    // An oversized line keeps its first MAX_TOUCHPOINT_BYTES and says how long it was.
    const truncatedFrom = m.headers['lifecycle-truncated-from'];
    const kept = original && truncatedFrom !== undefined ? content(original).subarray(0, MAX_TOUCHPOINT_BYTES) : original && content(original);
    if (original && truncatedFrom !== undefined && Number(truncatedFrom) !== content(original).length) problems.push(`${what}: dead letter of line ${line} says it was ${truncatedFrom} bytes`);
    if (kept && !m.bytes.equals(kept)) problems.push(`${what}: dead letter of line ${line} is not the line as received`);
    return { line, reason: m.headers['lifecycle-reason'] ?? 'none' };
  });
  return { rejections, acceptedIds: input.map((m) => idOf(m.value)) };
}

async function produce(file: string, brokers: string, topic: string, lines: Buffer[]): Promise<PathAnswer> {
  const problems: string[] = [];
  let stdout: string;
  try {
    ({ stdout } = await run(['produce', file, '--brokers', brokers, '--topic', topic, '--partitions', '1']));
  } catch (error) {
    return { verdicts: [], acceptedIds: [], problems: [failure('produce', error)] };
  }
  const summary = JSON.parse(stdout) as { lines: number; accepted: number; rejected: Record<string, number> };
  if (summary.lines !== lines.length || summary.accepted + rejectedCount(summary.rejected) !== lines.length) problems.push(`produce: summary does not add up to ${lines.length} lines: ${stdout}`);
  const { rejections, acceptedIds } = await kafkaAnswer('produce', brokers, topic, lines, summary.accepted, rejectedCount(summary.rejected), problems);
  if (rejections.length !== rejectedCount(summary.rejected) || acceptedIds.length !== summary.accepted) {
    problems.push(`produce: ${acceptedIds.length} messages and ${rejections.length} dead letters for the summary ${stdout}`);
  }
  return { verdicts: fromRejections('produce', lines.length, rejections, problems), acceptedIds, problems };
}

/** `lifecycle ingest-server` on a free port; its address from its "ingest serving" log line. */
async function ingestServer(brokers: string, topic: string) {
  const child = spawn(process.execPath, [cli, 'ingest-server', '--brokers', brokers, '--topic', topic, '--partitions', '1', '--port', '0', '--metrics-port', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ingest-server did not start:\n${stderr}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      for (const line of stderr.split('\n')) {
        const log = (() => { try { return JSON.parse(line) as { msg?: string; address?: string }; } catch { return {}; } })();
        if (log.msg === 'ingest serving' && log.address) {
          clearTimeout(timer);
          resolve(log.address);
        }
      }
    });
    void exit.then((code) => { clearTimeout(timer); reject(new Error(`ingest-server exited with ${code}:\n${stderr}`)); });
  });
  return {
    address,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: async () => {
      child.kill('SIGTERM');
      return { code: await exit, stderr };
    },
  };
}

async function http(body: Buffer, brokers: string, topic: string, lines: Buffer[]): Promise<PathAnswer> {
  const problems: string[] = [];
  const server = await ingestServer(brokers, topic);
  let results: { line: number; status: string; id?: string; reason?: string; issues?: unknown }[] = [];
  let summary: { lines: number; accepted: number; rejected: Record<string, number> } | undefined;
  try {
    const response = await fetch(`${server.address}/v1/touchpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: body,
      signal: AbortSignal.timeout(PROCESS_TIMEOUT),
    });
    const text = await response.text();
    if (response.status !== 202) problems.push(`http: ${response.status} ${text.slice(0, 1000)}`);
    else ({ results, ...summary } = JSON.parse(text) as typeof summary & { results: typeof results });
  } catch (error) {
    problems.push(`http: ${(error as Error).message}`);
  }
  if (server.exited()) problems.push('http: the ingest server died during the request');
  const { code, stderr } = await server.stop();
  if (code !== 0) problems.push(`http: the ingest server exited with ${code}: ${stderr.slice(-1500)}`);
  if (!summary) return { verdicts: [], acceptedIds: [], problems };

  if (summary.lines !== lines.length || summary.accepted + rejectedCount(summary.rejected) !== lines.length || results.length !== lines.length) {
    problems.push(`http: ${results.length} results and the summary ${JSON.stringify(summary)} for ${lines.length} lines`);
  }
  const verdicts: (Verdict | undefined)[] = Array.from({ length: lines.length }, () => undefined);
  for (const [i, r] of results.entries()) {
    if (r.line !== i + 1) problems.push(`http: result ${i} is for line ${r.line}`);
    if (r.status === 'rejected' && !issuesOk(r.issues)) problems.push(`http: line ${r.line} has no issues`);
    verdicts[r.line - 1] = r.status === 'accepted' ? 'accepted' : (r.reason as Verdict);
  }
  // What the answer says is what Kafka got.
  const kafka = await kafkaAnswer('http', brokers, topic, lines, summary.accepted, rejectedCount(summary.rejected), problems);
  const fromKafka = fromRejections('http', lines.length, kafka.rejections, problems);
  if (fromKafka.some((v, i) => v !== verdicts[i])) problems.push('http: the dead-letter topic disagrees with the response');
  const acceptedIds = results.flatMap((r) => (r.status === 'accepted' ? [r.id!] : []));
  if (JSON.stringify([...kafka.acceptedIds].sort()) !== JSON.stringify([...acceptedIds].sort())) problems.push('http: the input topic disagrees with the response');
  return { verdicts, acceptedIds, problems };
}

const preview = (bytes: Buffer) => {
  const text = JSON.stringify(bytes.toString('utf8'));
  return `${bytes.length} bytes ${text.length > 160 ? `${text.slice(0, 160)}…` : text}`;
};

/** Feeds `lines` through the three paths (at once: they share nothing) and checks each against the contract and the others. */
async function throughAllPaths(dir: string, brokers: string, name: string, lines: FuzzLine[]) {
  const bytes = lines.map((l) => l.bytes);
  const body = Buffer.concat(bytes.flatMap((b) => [b, Buffer.from('\n')]));
  const file = join(dir, `${name}.ndjson`);
  await writeFile(file, body);
  const topic = `fuzz-${name}-${randomBytes(4).toString('hex')}`;
  const [ingest, produced, posted] = await Promise.all([
    embeddedIngest(file, join(dir, `${name}-data`), bytes),
    produce(file, brokers, topic, bytes),
    http(body, brokers, `${topic}-http`, bytes),
  ]);

  const expected = bytes.map(oracle);
  const paths = { ingest, produce: produced, http: posted };
  const differences = lines.flatMap((line, i) => {
    const answers = Object.fromEntries(Object.entries(paths).map(([p, a]) => [p, a.verdicts[i] ?? 'no answer']));
    return Object.values(answers).every((v) => v === expected[i]) ? [] : [{ line: i + 1, kind: line.kind, contract: expected[i], ...answers, text: preview(line.bytes) }];
  });
  const expectedIds = bytes.flatMap((b, i) => (expected[i] === 'accepted' ? [idOf(content(b).toString('utf8'))] : [])).sort();
  const idProblems = Object.entries(paths).flatMap(([p, a]) => {
    const ids = [...a.acceptedIds].sort();
    if (JSON.stringify(ids) === JSON.stringify(expectedIds)) return [];
    const missing = expectedIds.filter((id) => !ids.includes(id));
    const extra = ids.filter((id) => !expectedIds.includes(id));
    return [`${p}: accepted ids differ: missing ${JSON.stringify(missing.slice(0, 10))}, extra ${JSON.stringify(extra.slice(0, 10))}`];
  });
  return { expected, problems: [...ingest.problems, ...produced.problems, ...posted.problems, ...idProblems], differences };
}

describe('intake fuzzing: every line answered, and alike, by ingest, produce and the HTTP ingest', () => {
  let brokers: string;
  let dir: string;
  const lines = fuzzLines(SEED, COUNT);

  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-fuzz-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('the generated lines mix every kind of answer, and the contract gives the targeted ones their intended answer', () => {
    const verdicts = lines.map((l) => oracle(l.bytes));
    const reasons = new Set(verdicts);
    for (const reason of ['accepted', 'malformed_json', 'payload_too_large', 'not_an_object', 'unknown_type', 'invalid_field'] as const) expect(reasons).toContain(reason);
    const types = new Set(lines.flatMap((l, i) => (verdicts[i] === 'accepted' ? [JSON.parse(content(l.bytes).toString('utf8').replace(/^\uFEFF/, '')).type] : [])));
    expect(types.size).toBe(6);
    const misjudged = lines.flatMap((l, i) => (l.intent !== undefined && l.intent !== verdicts[i] ? [{ line: i + 1, kind: l.kind, intent: l.intent, contract: verdicts[i], text: preview(l.bytes) }] : []));
    expect(misjudged).toEqual([]);
    expect(lines.filter((l) => l.intent !== undefined).length).toBeGreaterThan(COUNT / 2);
  });

  test(`${COUNT} lines of seed ${SEED}`, async () => {
    const { problems, differences } = await throughAllPaths(dir, brokers, 'seeded', lines);
    expect(problems).toEqual([]);
    expect(differences).toEqual([]);
  }, 180_000);

  // Regressions: product bugs the fuzzing found, each fixed at its cause.
  const valid = (id: string, pad = 0): FuzzLine => ({
    kind: 'valid',
    bytes: Buffer.from(JSON.stringify({ id, type: 'registration', occurredAt: '2025-03-01T10:00:00Z', customerId: 'alice', x_pad: 'a'.repeat(pad) })),
  });
  const line = (text: string): FuzzLine => ({ kind: 'bug', bytes: Buffer.from(text) });

  test('a type nested 20 000 levels deep (40 KB) is unknown_type, not a crash of ingest and produce and a 500', async () => {
    const deep = line(`{"type":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
    const { problems, differences } = await throughAllPaths(dir, brokers, 'deep-type', [valid('d1'), deep, valid('d2')]);
    expect(problems).toEqual([]);
    expect(differences).toEqual([]);
  }, 120_000);

  test('17 valid touchpoints of 64 000 bytes (1.1 MB, over the broker’s 1 MiB batch limit) are accepted, not a crash of produce and a 500', async () => {
    const big = Array.from({ length: 17 }, (_, i) => valid(`big${i}`, 63_900));
    const { problems, differences } = await throughAllPaths(dir, brokers, 'big', big);
    expect(problems).toEqual([]);
    expect(differences).toEqual([]);
  }, 120_000);

  test('an NDJSON body whose first line is a JSON array is answered line by line over HTTP too, not as one JSON array', async () => {
    const { problems, differences } = await throughAllPaths(dir, brokers, 'array-first', [line(JSON.stringify([JSON.parse(valid('a1').bytes.toString())])), valid('a2')]);
    expect(problems).toEqual([]);
    expect(differences).toEqual([]);
  }, 120_000);
});
