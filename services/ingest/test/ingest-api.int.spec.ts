import { randomBytes } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { createKafka, createProducer, ensureLifecycleTopics, topicsFor, type LineResult, type Topics } from '@lifecycle/kafka';
import { buildIngestApi } from '@lifecycle/ingest';
import { pino } from 'pino';
import { ensureBroker } from '../../../test/support/kafka.js';
import { readMessages } from '../../../test/support/distributed.js';

const registration = (id: string, customerId: string) =>
  JSON.stringify({ id, type: 'registration', occurredAt: '2025-03-01T10:00:00Z', customerId, properties: {} });

describe('POST /v1/touchpoints against the real broker', () => {
  let brokers: string;
  let producer: Producer;
  let topics: Topics;
  const seen: LineResult[] = [];
  let app: Awaited<ReturnType<typeof buildIngestApi>>;
  let url: string;
  // Over real HTTP: fastify's inject() needs an ESM-only dependency jest cannot load on Node 20.
  const post = async (contentType: string, body: string) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
    return { statusCode: response.status, body: (await response.json()) as Record<string, any> };
  };

  beforeAll(async () => {
    brokers = ensureBroker();
    const kafka = createKafka({ brokers: [brokers], clientId: 'ingest-test', logger: pino({ level: 'warn' }) });
    topics = topicsFor(`ingest-${randomBytes(4).toString('hex')}`);
    await ensureLifecycleTopics(kafka, topics, 3);
    producer = createProducer(kafka);
    await producer.connect();
    app = await buildIngestApi({ producer, topics, bodyLimit: 64 * 1024, onResult: (r) => seen.push(r) });
    url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/v1/touchpoints`;
  });
  afterAll(async () => {
    await app.close();
    await producer.disconnect();
  });

  test('NDJSON and JSON arrays: per-line results, valid lines keyed by customer, invalid ones dead-lettered with the reason', async () => {
    const ndjson = [registration('t1', 'alice'), '{"id": broken', registration('t2', 'bob'), ''].join('\n');
    const first = await post('application/x-ndjson', ndjson);
    expect(first.statusCode).toBe(202);
    expect(first.body).toMatchObject({
      lines: 3, // the LF ends the last line; nothing follows it
      accepted: 2,
      rejected: { malformed_json: 1 },
      results: [
        { line: 1, status: 'accepted', id: 't1' },
        { line: 2, status: 'rejected', reason: 'malformed_json' },
        { line: 3, status: 'accepted', id: 't2' },
      ],
    });

    const array = JSON.stringify([JSON.parse(registration('t3', 'alice')), { id: 't4', type: 'teleport', occurredAt: '2025-03-01T10:00:00Z' }]);
    const second = await post('application/json', array);
    expect(second.statusCode).toBe(202);
    expect(second.body['results'].map((r: LineResult) => r.status)).toEqual(['accepted', 'rejected']);
    expect(seen.filter((r) => r.status === 'rejected').map((r) => (r.status === 'rejected' ? r.reason : ''))).toEqual(['malformed_json', 'unknown_type']);

    const input = await readMessages(brokers, topics.input, 3);
    expect(input.map((m) => [m.key, JSON.parse(m.value).id]).sort()).toEqual([
      ['customer:alice', 't1'],
      ['customer:alice', 't3'],
      ['customer:bob', 't2'],
    ]);
    const dead = await readMessages(brokers, topics.deadLetter, 2);
    expect(dead.map((m) => [m.headers['lifecycle-reason'], m.headers['lifecycle-line']]).sort()).toEqual([
      ['malformed_json', '2'],
      ['unknown_type', '2'],
    ]);
    expect(dead.find((m) => m.headers['lifecycle-reason'] === 'malformed_json')!.value).toBe('{"id": broken');
  }, 60_000);

  test('an unusable body is a 400 that says why, an oversized one a 413', async () => {
    const bad = await post('application/json', '[{"id": ');
    expect(bad.statusCode).toBe(400);
    expect(bad.body['message']).toMatch(/not valid JSON/);
    const big = await post('application/x-ndjson', 'x'.repeat(65 * 1024));
    expect(big.statusCode).toBe(413);
  });
});
