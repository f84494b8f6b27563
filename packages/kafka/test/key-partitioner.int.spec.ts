import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createKafka, createProducer, keyPartitioner, visitorKey } from '@lifecycle/kafka';
import { ensureBroker } from '../../../test/support/kafka.js';

// The projector tells from keyPartitioner which instance owns a visitor (its link requests go
// there): it must be where the producers put the visitor's impressions.
describe('keyPartitioner', () => {
  test('gives the partition the broker received each keyed message on', async () => {
    const kafka = createKafka({ brokers: [ensureBroker()], clientId: 'partition-of-key-test', logger: pino({ level: 'silent' }) });
    const topic = `partition-of-key-${randomBytes(4).toString('hex')}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 5 }], waitForLeaders: true });
    const producer = createProducer(kafka);
    await producer.connect();
    const partitionOfKey = keyPartitioner(5);
    try {
      const seen = new Set<number>();
      for (let i = 0; i < 40; i += 1) {
        const key = visitorKey(`v-${i}`);
        const [sent] = await producer.send({ topic, acks: -1, messages: [{ key, value: 'x' }] });
        expect([key, sent!.partition]).toEqual([key, partitionOfKey(key)]);
        seen.add(sent!.partition);
      }
      expect(seen.size).toBe(5);
    } finally {
      await producer.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
