import { createKafka, createProducer, ensureLifecycleTopics, publishLines, topicsFor } from '@lifecycle/kafka';
import { readLines } from '../lines.js';
import { logger } from '../logger.js';
import { progress } from '../progress.js';

export interface KafkaOptions {
  brokers: string[];
  topic: string;
  partitions: number;
}

/** Validates a file and publishes it to Kafka (valid → topic, invalid → topic.dlq). */
export async function produceCommand(source: string, options: KafkaOptions): Promise<void> {
  const kafka = createKafka({ brokers: options.brokers, clientId: 'lifecycle-produce', logger });
  const topics = topicsFor(options.topic);
  await ensureLifecycleTopics(kafka, topics, options.partitions);
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    const bar = progress(`produce ${source}`, 'lines');
    let lines = 0;
    const summary = await publishLines(producer, topics, await readLines(source), { source, onResult: () => bar.update(++lines) }).finally(() => bar.done());
    logger.info({ source, topic: topics.input, ...summary }, 'produce finished');
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await producer.disconnect();
  }
}
