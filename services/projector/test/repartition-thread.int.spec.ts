import { randomBytes } from 'node:crypto';
import type { Rejection } from '@lifecycle/contracts';
import { createKafka, createProducer, ensureLifecycleTopics, topicsFor, type Topics } from '@lifecycle/kafka';
import { pino } from 'pino';
import { RepartitionThread, type RepartitionThreadOptions } from '../src/repartition-thread.js';
import { ensureBroker } from '../../../test/support/kafka.js';
import { readMessages, waitFor } from '../../../test/support/distributed.js';

// The repartition stage on a thread of its own (the worker runs from the build: `npm test`
// builds first). What crosses the thread: the input notices, the dead letters' reasons, a start
// that failed, and the stop.

const log = pino({ level: 'silent' });

/** A thread of the stage for a new input topic, its group the projector's. */
function threadFor(topics: Topics, brokers: string[], callbacks: Pick<RepartitionThreadOptions, 'onInput' | 'onRejected'>): RepartitionThread {
  return new RepartitionThread({ brokers, clientId: 'test-repartition-thread', topics, groupId: `${topics.input}.repartition`, instanceId: 'a', commitIntervalMs: 50, logger: log, ...callbacks });
}

describe('repartition stage on a thread of its own', () => {
  let brokers: string;
  beforeAll(() => {
    brokers = ensureBroker();
  });

  test('re-publishes the input keyed by customer, reports input and rejections to its starter, and ends its thread on stop', async () => {
    const kafka = createKafka({ brokers: [brokers], clientId: 'test-repartition-thread', logger: log });
    const topics = topicsFor(`thread-${randomBytes(4).toString('hex')}`);
    await ensureLifecycleTopics(kafka, topics, 2);
    const valid = Array.from({ length: 30 }, (_, i) => JSON.stringify({ id: `t-${i}`, type: 'registration', occurredAt: '2024-01-01T00:00:00Z', customerId: `c-${i}` }));
    const producer = createProducer(kafka);
    await producer.connect();
    await producer.send({ topic: topics.input, acks: -1, messages: [...valid, '{"id":"bad","type":"nope"}'].map((value) => ({ value })) });
    await producer.disconnect();

    let inputs = 0;
    const rejections: Rejection[] = [];
    const thread = threadFor(topics, [brokers], { onInput: () => (inputs += 1), onRejected: (rejection) => rejections.push(rejection) });
    try {
      await thread.start();
      const published = await readMessages(brokers, topics.byCustomer, valid.length);
      expect(published.map((m) => m.value).sort()).toEqual([...valid].sort());
      expect(published.map((m) => m.key).sort()).toEqual(valid.map((_, i) => `customer:c-${i}`).sort());
      await waitFor('the dead letter reported to the starting thread', () => rejections.length > 0);
      expect(rejections.map((r) => r.reason)).toEqual(['unknown_type']);
      expect(inputs).toBeGreaterThan(0);
    } finally {
      await thread.stop();
    }
    // A stop is not a failure: `failed` stays pending.
    expect(await Promise.race([thread.failed.catch(() => 'rejected'), new Promise((resolve) => setTimeout(() => resolve('pending'), 200))])).toBe('pending');
  });

  test('a stage that cannot start rejects start() with the reason, reports the failure, and its thread ends', async () => {
    const topics = topicsFor(`thread-${randomBytes(4).toString('hex')}`);
    const thread = threadFor(topics, ['127.0.0.1:1'], { onInput: () => undefined });
    await expect(thread.start()).rejects.toThrow(/the repartition stage could not start: .*(ECONNREFUSED|Connection)/);
    await expect(thread.failed).rejects.toThrow(/ended unexpectedly/);
    await thread.stop();
  });
});
