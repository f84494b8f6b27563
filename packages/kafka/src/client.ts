import { Kafka, Partitioners, logLevel, type Admin, type ITopicConfig, type logCreator, type ProducerConfig, type Producer } from 'kafkajs';
import type { Logger } from 'pino';

/** Topic names of the distributed mode. */
export interface Topics {
  /** Where producers write touchpoints, keyed by anything or nothing. */
  input: string;
  /** Internal: valid touchpoints re-keyed by customer, so one customer is on one partition. */
  byCustomer: string;
  /** Rejected messages, with the reason in headers. */
  deadLetter: string;
}

export const topicsFor = (input: string): Topics => ({ input, byCustomer: `${input}.by-customer`, deadLetter: `${input}.dlq` });

// kafkajs logs retriable protocol errors (a coordinator still loading, …) as errors; what
// really fails reaches our code as an exception and is logged there once.
const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'warn',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** kafkajs logs through pino, as JSON lines like everything else. */
const pinoLogCreator =
  (logger: Logger): logCreator =>
  () =>
  ({ level, log }) => {
    const { message, ...extra } = log;
    logger[levels[level] ?? 'info']({ kafkajs: extra }, message);
  };

export function createKafka(options: { brokers: string[]; clientId: string; logger: Logger }): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator(options.logger.child({ component: 'kafkajs' })),
  });
}

/** Creates the topics that do not exist yet (auto-creation is off on our brokers). */
export async function ensureTopics(admin: Admin, topics: readonly ITopicConfig[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t.topic));
  if (missing.length > 0) await admin.createTopics({ topics: [...missing], waitForLeaders: true });
}

/** Creates the three topics for `input` with `partitions` partitions each. */
export async function ensureLifecycleTopics(kafka: Kafka, topics: Topics, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [topics.input, topics.byCustomer, topics.deadLetter].map((topic) => ({ topic, numPartitions: partitions })));
  } finally {
    await admin.disconnect();
  }
}

/** For a topic of `partitions` partitions: the partition that createProducer's producers give a message keyed `key`. */
export function keyPartitioner(partitions: number): (key: string) => number {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
  return (key) => partitioner({ topic: '', partitionMetadata, message: { key, value: null } });
}

/**
 * A producer that partitions by key like the Java client (murmur2), so that every client puts
 * one customer on one partition; idempotent, acks=all on every send.
 */
export function createProducer(kafka: Kafka, config: Omit<ProducerConfig, 'createPartitioner' | 'idempotent' | 'maxInFlightRequests'> = {}): Producer {
  return kafka.producer({ ...config, createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
}
