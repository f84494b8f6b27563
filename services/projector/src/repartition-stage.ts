import type { Consumer, EachBatchPayload, Kafka, Message, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Rejection } from '@lifecycle/contracts';
import { byteBounded, createProducer, deadLetterMessage, parseMessage, touchpointMessage, type Topics } from '@lifecycle/kafka';

export interface RepartitionStageOptions {
  kafka: Kafka;
  topics: Topics;
  /** The consumer group of the stage (its committed offsets are part of its transactions). */
  groupId: string;
  /** Stable per instance: a restarted instance's transactional producer fences its predecessor's. */
  instanceId: string;
  logger: Logger;
  /** What was consumed waits at most this long for its transaction. */
  commitIntervalMs: number;
  /** Input arrived (for the projector's idle detection). */
  onInput: () => void;
  /** An input message was dead-lettered, once its transaction committed. */
  onRejected?: (rejection: Rejection) => void;
}

/** A consumed batch of the input topic, sorted out and waiting for its transaction. */
interface Sorted {
  readonly partition: number;
  readonly valid: Message[];
  readonly invalid: Message[];
  readonly rejections: Rejection[];
  /** The offset past the batch. */
  readonly next: number;
}

/** After a failed transaction, the messages are fetched again; this long later, not in a tight loop. */
const RETRY_AFTER_FAILURE_MS = 1_000;
/** Batches waiting that make fetching wait for their transaction. */
const MAX_WAITING_MESSAGES = 20_000;

/**
 * The repartition stage: reads the input topic, whatever its keys, and re-publishes valid
 * touchpoints keyed by customer to `…by-customer` and invalid ones to the dead-letter topic, in a
 * Kafka transaction that also commits the input offsets: each input message is re-published
 * exactly once, also across crashes. Write-behind: the batches of all partitions consumed within
 * `commitIntervalMs` go out in one transaction while fetching goes on; when one fails, what
 * was consumed and not committed is fetched again from the committed offsets. The
 * transactional producer is used by one transaction at a time.
 */
export class RepartitionStage {
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private waiting: Sorted[] = [];
  private waitingMessages = 0;
  private timer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private retryAfter = 0;
  /** The fetch position could not be moved back after a failure: the consumer must start over. */
  private broken: unknown;

  constructor(private readonly options: RepartitionStageOptions) {
    this.producer = createProducer(options.kafka, {
      transactionalId: `${options.groupId}.${options.instanceId}`,
      transactionTimeout: 15_000,
      // The broker answers CONCURRENT_TRANSACTIONS while the previous transaction still
      // completes (a few ms); kafkajs's default first retry waits 300 ms, which was most of the
      // end-to-end latency.
      retry: { initialRetryTime: 20, retries: 10 },
    });
    this.consumer = options.kafka.consumer({ groupId: options.groupId, readUncommitted: false, heartbeatInterval: 1_000 });
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.options.topics.input], fromBeginning: true });
    // A new assignment starts from the committed offsets: what waits was consumed under the old one.
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.committing = this.committing.then(() => this.drop()).catch((error: unknown) => this.breakDown(error));
    });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.consume(payload) });
  }

  /**
   * Stops fetching, commits what was consumed while this instance still holds its partitions
   * (leaving first would let their next owner start from older committed offsets and publish
   * the same messages again), then leaves the group.
   */
  async stop(): Promise<void> {
    this.consumer.pause([{ topic: this.options.topics.input }]);
    await this.commit().catch(() => undefined);
    await this.consumer.disconnect().catch(() => undefined);
    await this.commit().catch(() => undefined); // a batch that was in flight: its partitions may be another's now, the transaction is harmless either way
    await this.producer.disconnect().catch(() => undefined);
  }

  private async consume({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (this.broken !== undefined) {
      // Thrown to kafkajs, which starts the consumer over from the committed offsets.
      const broken = this.broken;
      this.broken = undefined;
      throw broken;
    }
    if (batch.isEmpty() || !isRunning() || isStale()) return;
    this.options.onInput();
    const sorted: Sorted = { partition: batch.partition, valid: [], invalid: [], rejections: [], next: Number(batch.lastOffset()) + 1 };
    for (const message of batch.messages) {
      const parsed = parseMessage(message.value);
      if (parsed.ok) sorted.valid.push(touchpointMessage(parsed.touchpoint, message.value!.toString('utf8')));
      else {
        sorted.invalid.push(deadLetterMessage(message.value, parsed.rejection, { topic: batch.topic, partition: String(batch.partition), offset: message.offset }));
        sorted.rejections.push(parsed.rejection);
      }
    }
    this.waiting.push(sorted);
    this.waitingMessages += batch.messages.length;
    // Only the fetch position: the offsets are committed by the transaction.
    resolveOffset(batch.lastOffset());
    if (this.waitingMessages >= MAX_WAITING_MESSAGES) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, this.retryAfter - Date.now())));
      await this.commit().catch(() => undefined);
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.commit().catch(() => undefined), Math.max(this.options.commitIntervalMs, this.retryAfter - Date.now()));
    }
    await heartbeat();
  }

  /** Forgets what waits and fetches from the committed offsets again. */
  private async drop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const partitions = [...new Set(this.waiting.map((s) => s.partition))];
    this.waiting = [];
    this.waitingMessages = 0;
    if (partitions.length === 0) return;
    const { kafka, topics, groupId } = this.options;
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topics.input] });
      for (const { partition, offset } of committed?.partitions ?? []) {
        // -1: nothing committed yet, the group starts from the beginning.
        if (partitions.includes(partition)) this.consumer.seek({ topic: topics.input, partition, offset: Number(offset) < 0 ? '0' : offset });
      }
    } finally {
      await admin.disconnect();
    }
  }

  private breakDown(error: unknown): void {
    this.options.logger.error({ err: error }, 'could not seek back to the committed offsets: the repartition consumer starts over');
    this.broken = error;
  }

  /** One transaction for every batch waiting; one at a time, in consumption order. */
  private commit(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const run = this.committing.then(async () => {
      if (this.waiting.length === 0) return;
      const batches = this.waiting;
      this.waiting = [];
      this.waitingMessages = 0;
      const { topics, groupId, logger } = this.options;
      const offsets = new Map<number, number>();
      for (const b of batches) offsets.set(b.partition, b.next);
      const transaction = await this.producer.transaction();
      try {
        for (const part of byteBounded(batches.flatMap((b) => b.valid))) await transaction.send({ topic: topics.byCustomer, messages: part });
        for (const part of byteBounded(batches.flatMap((b) => b.invalid))) await transaction.send({ topic: topics.deadLetter, messages: part });
        await transaction.sendOffsets({
          consumerGroupId: groupId,
          topics: [{ topic: topics.input, partitions: [...offsets].map(([partition, next]) => ({ partition, offset: String(next) })) }],
        });
        await transaction.commit();
      } catch (error) {
        await transaction.abort().catch(() => undefined);
        this.retryAfter = Date.now() + RETRY_AFTER_FAILURE_MS;
        logger.error({ err: error, topic: topics.input, partitions: [...offsets.keys()] }, 'repartitioning failed: the consumed input is fetched again from the committed offsets');
        this.waiting.unshift(...batches); // so that drop() seeks back their partitions too
        await this.drop().catch((seeking: unknown) => this.breakDown(seeking));
        throw error;
      }
      for (const b of batches) for (const rejection of b.rejections) this.options.onRejected?.(rejection);
    });
    this.committing = run.catch(() => undefined);
    return run;
  }
}
