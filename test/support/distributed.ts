import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { MAX_TOUCHPOINT_BYTES } from '@lifecycle/contracts';
import { cli } from './cli.js';

export function projector(
  instanceId: string,
  topic: string,
  database: string,
  options: readonly string[] = ['--until-idle', '--chunk-size', '40'],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [cli, 'project', '--instance-id', instanceId, '--topic', topic, '--database', database, '--metrics-port', '0', ...options],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn', ...env } },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`projector ${instanceId} exited with ${code}:\n${stderr}\n`);
    resolve(code);
  }));
  return { child, exit };
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
