import { randomBytes } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import { pino } from 'pino';
import { createKafka, createProducer, ensureLifecycleTopics, topicsFor } from '@lifecycle/kafka';
import { RepartitionStage } from '../src/repartition-stage.js';
import { ensureBroker } from '../../../test/support/kafka.js';
import { readMessages, waitFor } from '../../../test/support/distributed.js';

// Regression test of a duplicate the fault soak found (test/soak, a `rebalance` cycle: an instance
// added): an instance that loses a partition in a rebalance while its transaction is in flight
// commits that transaction *after* the partition's new owner read the committed offsets, and
// the new owner publishes the same input again (a dead letter twice). kafkajs has no
// consumer-group fencing of transactions (KIP-447); the stage now has one transactional producer
// per input partition, which the new owner initialises (fencing the old one) before it reads the
// offsets. Here the old owner's commit is held at a gate until the new owner has published.

const log = pino({ level: 'silent' });

/** A Kafka client whose producers are those of `kafka` as `wrap` changes them. */
function wrappingProducers(kafka: Kafka, wrap: (producer: Producer, config: Parameters<Kafka['producer']>[0]) => Producer): Kafka {
  return new Proxy(kafka, {
    get(target, property, receiver) {
      if (property !== 'producer') return Reflect.get(target, property, receiver);
      return (config: Parameters<Kafka['producer']>[0]) => wrap(target.producer(config), config);
    },
  });
}

/** A Kafka client whose transactions' commits wait until `open()`; `held` counts those that waited. */
function gatedKafka(kafka: Kafka): { kafka: Kafka; open: () => void; held: () => number } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  const gated = wrappingProducers(kafka, (producer) => {
    const transaction = producer.transaction.bind(producer);
    return Object.assign(producer, {
      transaction: async () => {
        const t = await transaction();
        const commit = t.commit.bind(t);
        return Object.assign(t, {
          commit: async () => {
            held += 1;
            await gate;
            return commit();
          },
        });
      },
    }) satisfies Producer;
  });
  return { kafka: gated, open: release, held: () => held };
}

/**
 * A Kafka client whose first producer of each transactional id fails its first real
 * transaction's commit (a broker gone mid-commit) and is unusable after that (every later
 * transaction refused), as kafkajs's producers were after a broker restart in the soak.
 */
function failingOnceKafka(kafka: Kafka): { kafka: Kafka; failed: () => number } {
  const seen = new Set<string>();
  let failed = 0;
  const failing = wrappingProducers(kafka, (producer, config) => {
    const id = config?.transactionalId;
    if (id === undefined || seen.has(id)) return producer;
    seen.add(id);
    const transaction = producer.transaction.bind(producer);
    let calls = 0;
    return Object.assign(producer, {
      transaction: async () => {
        calls += 1;
        if (calls > 2) throw new Error('test: this producer is stuck since its failed commit');
        const t = await transaction();
        if (calls === 1) return t; // the fencing on assignment
        return Object.assign(t, {
          commit: async () => {
            failed += 1;
            throw new Error('test: the broker went away during the commit');
          },
        });
      },
    }) satisfies Producer;
  });
  return { kafka: failing, failed: () => failed };
}

describe('repartition stage: a partition taken over in a rebalance', () => {
  let brokers: string;
  beforeAll(() => {
    brokers = ensureBroker();
  });

  test("the old owner's transaction in flight cannot land after the new owner read the offsets: each input message is published once", async () => {
    const kafka = createKafka({ brokers: [brokers], clientId: 'test-repartition', logger: log });
    const topics = topicsFor(`rebalance-${randomBytes(4).toString('hex')}`);
    await ensureLifecycleTopics(kafka, topics, 2);
    const valid = (i: number) => JSON.stringify({ id: `t-${i}`, type: 'registration', occurredAt: '2024-01-01T00:00:00Z', customerId: `c-${i}` });
    const invalid = (i: number) => JSON.stringify({ id: `bad-${i}`, type: 'nope', occurredAt: '2024-01-01T00:00:00Z' });
    const producer = createProducer(kafka);
    await producer.connect();
    const lines = { valid: [] as string[], invalid: [] as string[] };
    for (const partition of [0, 1]) {
      const messages = [];
      for (let i = partition * 100; i < partition * 100 + 20; i += 1) {
        lines.valid.push(valid(i));
        lines.invalid.push(invalid(i));
        messages.push({ value: valid(i), partition }, { value: invalid(i), partition });
      }
      await producer.send({ topic: topics.input, acks: -1, messages });
    }
    await producer.disconnect();

    const groupId = `${topics.input}.repartition`;
    const options = { topics, groupId, logger: log, commitIntervalMs: 50, onInput: () => undefined };
    const gated = gatedKafka(createKafka({ brokers: [brokers], clientId: 'test-repartition-a', logger: log }));
    const a = new RepartitionStage({ ...options, kafka: gated.kafka, instanceId: 'a' });
    const b = new RepartitionStage({ ...options, kafka: createKafka({ brokers: [brokers], clientId: 'test-repartition-b', logger: log }), instanceId: 'b' });
    try {
      await a.start();
      // `a` consumed both partitions and its commit is in flight, held at the gate.
      await waitFor('a to hold a commit', () => gated.held() > 0, 30_000);
      await b.start();
      // `b` takes a partition of `a` and publishes what it finds there: its transaction commits
      // the partition's offset (`a`'s is held). Quickly: `a`'s transaction must not time out
      // (15 s) meanwhile, or the broker aborts it and there is nothing left to land late.
      const admin = kafka.admin();
      await admin.connect();
      try {
        await waitFor('b to commit its partition', async () => {
          const [committed] = await admin.fetchOffsets({ groupId, topics: [topics.input] });
          return (committed?.partitions ?? []).some((p) => Number(p.offset) > 0);
        }, 12_000, 100);
      } finally {
        await admin.disconnect();
      }
      gated.open(); // `a`'s transaction goes on now
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await waitFor('everything published', async () => (await readMessages(brokers, topics.deadLetter, 40)).length >= 40, 60_000, 500);
    } finally {
      gated.open();
      await Promise.all([a.stop(), b.stop()]);
    }
    const dead = await readMessages(brokers, topics.deadLetter, lines.invalid.length);
    const published = await readMessages(brokers, topics.byCustomer, lines.valid.length);
    expect(dead.map((m) => m.value).sort()).toEqual([...lines.invalid].sort());
    expect(published.map((m) => m.value).sort()).toEqual([...lines.valid].sort());
  }, 180_000);

  test('a transaction that failed (the broker away mid-commit) does not stall its partition: it is taken again with a new producer, each message published once', async () => {
    const kafka = createKafka({ brokers: [brokers], clientId: 'test-repartition-retake', logger: log });
    const topics = topicsFor(`retake-${randomBytes(4).toString('hex')}`);
    await ensureLifecycleTopics(kafka, topics, 2);
    const lines: string[] = [];
    const producer = createProducer(kafka);
    await producer.connect();
    for (const partition of [0, 1]) {
      const messages = [];
      for (let i = 0; i < 10; i += 1) {
        const line = JSON.stringify({ id: `bad-${partition}-${i}`, type: 'nope', occurredAt: '2024-01-01T00:00:00Z' });
        lines.push(line);
        messages.push({ value: line, partition });
      }
      await producer.send({ topic: topics.input, acks: -1, messages });
    }
    await producer.disconnect();
    const failing = failingOnceKafka(createKafka({ brokers: [brokers], clientId: 'test-repartition-retake-a', logger: log }));
    const stage = new RepartitionStage({ topics, groupId: `${topics.input}.repartition`, logger: log, commitIntervalMs: 50, onInput: () => undefined, kafka: failing.kafka, instanceId: 'a' });
    try {
      await stage.start();
      await waitFor('a failed commit', () => failing.failed() > 0, 30_000);
      const admin = kafka.admin();
      await admin.connect();
      try {
        await waitFor('both partitions committed', async () => {
          const [committed] = await admin.fetchOffsets({ groupId: `${topics.input}.repartition`, topics: [topics.input] });
          return (committed?.partitions ?? []).every((p) => Number(p.offset) === 10);
        }, 30_000, 200);
      } finally {
        await admin.disconnect();
      }
    } finally {
      await stage.stop();
    }
    const dead = await readMessages(brokers, topics.deadLetter, lines.length);
    expect(dead.map((m) => m.value).sort()).toEqual([...lines].sort());
  }, 120_000);
});
