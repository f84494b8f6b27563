import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createKafka, createProducer } from '@lifecycle/kafka';
import { ensureBroker } from '../../../test/support/kafka.js';

// The repartition stage's producers (one per input partition) write into the same partitions of
// `…by-customer` and the dead-letter topic, and their transactions abort in any order. A broker
// lists a partition's aborted transactions in the order they were aborted, not by first offset
// (Kafka's consumer sorts them); kafkajs 2.2.4 took them as sorted, and delivered the records of
// an aborted transaction that began before one aborted earlier. patches/kafkajs+2.2.4.patch sorts them.
describe('a kafkajs consumer (read_committed)', () => {
  test('skips the records of aborted transactions whatever order they were aborted in', async () => {
    const kafka = createKafka({ brokers: [ensureBroker()], clientId: 'aborted-transactions-test', logger: pino({ level: 'silent' }) });
    const topic = `aborted-${randomBytes(4).toString('hex')}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const [first, second] = [createProducer(kafka, { transactionalId: `${topic}.a` }), createProducer(kafka, { transactionalId: `${topic}.b` })];
    const consumer = kafka.consumer({ groupId: `${topic}.reader` });
    try {
      await Promise.all([first.connect(), second.connect()]);
      const early = await first.transaction();
      await early.send({ topic, messages: [{ value: 'aborted, began first' }] });
      const late = await second.transaction();
      await late.send({ topic, messages: [{ value: 'aborted, began second' }] });
      await early.send({ topic, messages: [{ value: 'aborted, began first, sent last' }] });
      // The transaction that began second is aborted first.
      await late.abort();
      await early.abort();
      const kept = await first.transaction();
      await kept.send({ topic, messages: [{ value: 'committed' }] });
      await kept.commit();

      const received: string[] = [];
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void received.push(message.value!.toString()) });
      const deadline = Date.now() + 15_000;
      while (!received.includes('committed') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(received).toEqual(['committed']);
    } finally {
      await consumer.disconnect();
      await Promise.all([first.disconnect(), second.disconnect()]);
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  }, 60_000);
});
