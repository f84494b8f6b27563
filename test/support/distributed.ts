import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { MAX_TOUCHPOINT_BYTES, type RejectionReason } from '@lifecycle/contracts';
import { cli } from './cli.js';

const running = new Set<ChildProcess>();

/** SIGKILLs every `projector` still running (a test's `finally`: a failed assertion leaves none behind). */
export async function killProjectors(): Promise<void> {
  await Promise.all([...running].map((child) => new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGKILL');
  })));
}

export function projector(
  instanceId: string,
  topic: string,
  database: string,
  options: readonly string[] = ['--until-idle', '--chunk-size', '40'],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; exit: Promise<number | null>; stderr: () => string } {
  const child = spawn(
    process.execPath,
    [cli, 'project', '--instance-id', instanceId, '--topic', topic, '--database', database, '--metrics-port', '0', ...options],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn', ...env } },
  );
  running.add(child);
  child.on('exit', () => running.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`projector ${instanceId} exited with ${code}:\n${stderr}\n`);
    resolve(code);
  }));
  return { child, exit, stderr: () => stderr };
}

export interface ReceivedMessage {
  key: string | null;
  value: string;
  /** The value as received: `value` decodes it, which repairs bytes that are not UTF-8. */
  bytes: Buffer;
  headers: Record<string, string>;
}

/** Reads a topic from the beginning (read_committed) until `expected` messages came, then a second more. */
export async function readMessages(brokers: string, topic: string, expected: number): Promise<ReceivedMessage[]> {
  const kafka = new Kafka({ brokers: [brokers], clientId: 'test-reader', logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `test-${randomBytes(4).toString('hex')}` });
  const received: ReceivedMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) =>
      void received.push({
        key: message.key?.toString() ?? null,
        value: message.value!.toString(),
        bytes: message.value!,
        headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
      }),
  });
  const deadline = Date.now() + 20_000;
  while (received.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 1_000)); // anything beyond the expected count shows up too
  await consumer.disconnect();
  return received;
}

/** The values of a topic's messages: see `readMessages`. */
export async function readTopic(brokers: string, topic: string, expected: number): Promise<string[]> {
  return (await readMessages(brokers, topic, expected)).map((m) => m.value);
}

/** A line as the dead-letter topic holds it: an oversized one keeps its first MAX_TOUCHPOINT_BYTES. */
export const asDeadLetter = (line: string): string => Buffer.from(line, 'utf8').subarray(0, MAX_TOUCHPOINT_BYTES).toString('utf8');

/**
 * Polls `probe` every `intervalMs` until it returns something other than undefined or false, and
 * returns that; fails naming `what` after `timeoutMs`. For waiting on a condition instead of sleeping.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms in vain for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The exit code of a child process (null: a signal), or 'still running' (then SIGKILLed) after `timeoutMs`. */
export async function exitWithin(run: { child: ChildProcess; exit: Promise<number | null> }, timeoutMs: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), timeoutMs)));
  const outcome = await Promise.race([run.exit, late]);
  clearTimeout(timer);
  if (outcome === 'still running') {
    run.child.kill('SIGKILL');
    await run.exit;
  }
  return outcome;
}

/** What a process killed by LIFECYCLE_TEST_CRASH_BEFORE_COMMIT=<point>:<n> writes on stderr first. */
export const crashLine = (point: 'chunk' | 'advance', n: number): string => `test fault: SIGKILL inside ${point} transaction ${n}, before its COMMIT`;

/** The pino JSON lines of a process's stderr whose msg is `msg` (complete lines only: it may be mid-write). */
export function logLines(stderr: string, msg: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .slice(0, -1)
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry['msg'] === msg);
}

// The faults of packages/generator/src/delivery-noise.ts, by the suffix each gives the id, and the
// reason the contract (SPEC §6.4) gives each: worked out from the fault, not from the parser.
const NOISE_FAULT_REASONS: Readonly<Record<string, RejectionReason>> = {
  type: 'unknown_type', // a type schema version 1 does not know
  offset: 'invalid_field', // occurredAt without an offset
  negative: 'invalid_field',
  currency: 'invalid_field', // lower-case currency code
  customer: 'invalid_field', // no customerId (nor anonymousId)
  oversized: 'payload_too_large',
};

/**
 * The rejection reason of a line of `withDeliveryNoise`, undefined for a valid one: a line cut
 * off is not JSON; any other fault names itself in the id's suffix.
 */
export function noiseFaultReason(line: string): RejectionReason | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'malformed_json';
  }
  const id = (value as { id?: unknown }).id;
  const suffix = typeof id === 'string' ? /-([a-z]+)$/.exec(id)?.[1] : undefined;
  return suffix !== undefined && Object.hasOwn(NOISE_FAULT_REASONS, suffix) ? NOISE_FAULT_REASONS[suffix] : undefined;
}

/** [value, reason] pairs in one order, so that two lists compare as multisets. */
const sortedPairs = (pairs: [string, string | undefined][]) => pairs.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : JSON.stringify(x) > JSON.stringify(y) ? 1 : 0));

/** Dead letters as sorted [value, lifecycle-reason header] pairs; compare with `expectedDeadLetters`. */
export const deadLetterEntries = (messages: readonly ReceivedMessage[]): [string, string | undefined][] =>
  sortedPairs(messages.map((m) => [m.value, m.headers['lifecycle-reason']]));

/** What the DLQ must hold for `lines`, each exactly once, with its reason: see `deadLetterEntries`. */
export const expectedDeadLetters = (lines: readonly string[], reasonOf: (line: string) => string | undefined): [string, string | undefined][] =>
  sortedPairs(lines.map((line) => [asDeadLetter(line), reasonOf(line)]));
