import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { LifecycleConfig, Rejection, Touchpoint } from '@lifecycle/contracts';
import { ConcurrencyError } from '@lifecycle/eventstore';
import { advanceWatermark, conflictRejection, crashBeforeCommit, isolatePoison, projectBatch, storeRejection, StreamCache, type BatchOutcome } from '@lifecycle/projection';
import { loadConsumerOffsets, saveConsumerOffsets } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { createProducer, type Topics } from './client.js';
import { byteBounded, deadLetterMessage, parseMessage, touchpointMessage } from './touchpoint-messages.js';

export interface ProjectorServiceOptions {
  kafka: Kafka;
  topics: Topics;
  db: SqlDatabase;
  config: LifecycleConfig;
  logger: Logger;
  /** Stable per instance (host name, pod name): a restarted instance fences its predecessor. */
  instanceId: string;
  /** Default `lifecycle-projector.<input topic>`: projectors of different topics never share a group. */
  groupId?: string;
  /** Touchpoints per read-model transaction. */
  chunkSize?: number;
  /**
   * Churn is a deadline passing with no touchpoint; with no input at all, event time stands
   * still. After this long without input, and with nothing left to consume, T moves to the wall
   * clock so that due churns are recorded (SPEC §3). Off when absent: replays and backfills of
   * old data must stay at their own event time.
   */
  wallClockAfterIdleMs?: number;
  onBatch?: (outcome: BatchOutcome, seconds: number) => void;
  /** An input message was dead-lettered (after its transaction committed, or the store refused it alone). */
  onRejected?: (rejection: Rejection) => void;
  /** A transaction on the store failed for good (after the conflict retries). */
  onStoreError?: (error: unknown) => void;
}

const CONFLICT_RETRIES = 5;

/**
 * The distributed projector: two consumer groups in one process.
 *
 * 1. *Repartition*: reads the input topic, whatever its keys, and re-publishes valid touchpoints
 *    keyed by customer to the internal `…by-customer` topic and invalid ones to the dead-letter
 *    topic, in a Kafka transaction that also commits the input offsets: each input message is
 *    re-published exactly once, also across crashes.
 * 2. *Project*: reads `…by-customer` and projects each chunk in one PostgreSQL transaction with
 *    its offsets; on assignment it seeks to the stored offsets, and it skips anything below them
 *    (Kafka's committed offsets are only a hint).
 */
export class ProjectorService {
  private readonly groupId: string;
  private readonly repartitionGroupId: string;
  private readonly repartitionConsumer: Consumer;
  private readonly projectConsumer: Consumer;
  private readonly producer: Producer;
  private lastInputAt = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private advancing = false;
  /** Streams read by earlier chunks: a chunk reads only what they gained since. */
  private readonly streams = new StreamCache();

  constructor(private readonly options: ProjectorServiceOptions) {
    this.groupId = options.groupId ?? `lifecycle-projector.${options.topics.input}`;
    this.repartitionGroupId = `${this.groupId}.repartition`;
    const { kafka } = options;
    this.producer = createProducer(kafka, {
      transactionalId: `${this.repartitionGroupId}.${options.instanceId}`,
      transactionTimeout: 15_000,
      // The broker answers CONCURRENT_TRANSACTIONS while the previous transaction still
      // completes (a few ms); kafkajs's default first retry waits 300 ms, which was most of the
      // end-to-end latency.
      retry: { initialRetryTime: 20, retries: 10 },
    });
    this.repartitionConsumer = kafka.consumer({ groupId: this.repartitionGroupId, readUncommitted: false });
    this.projectConsumer = kafka.consumer({ groupId: this.groupId, readUncommitted: false, sessionTimeout: 30_000, heartbeatInterval: 3_000 });
  }

  async start(): Promise<void> {
    const { topics } = this.options;
    await this.producer.connect();
    await this.repartitionConsumer.connect();
    await this.projectConsumer.connect();
    await this.repartitionConsumer.subscribe({ topics: [topics.input], fromBeginning: true });
    await this.projectConsumer.subscribe({ topics: [topics.byCustomer], fromBeginning: true });
    this.projectConsumer.on(this.projectConsumer.events.GROUP_JOIN, ({ payload }) => {
      // Only a shortcut: project() skips whatever lies below the stored offsets anyway.
      this.seekToStoredOffsets(payload.memberAssignment[topics.byCustomer] ?? []).catch((error: unknown) =>
        this.options.logger.warn({ err: error }, 'could not seek to the stored offsets'),
      );
    });
    await this.repartitionConsumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.repartition(payload) });
    await this.projectConsumer.run({ eachBatchAutoResolve: false, eachBatch: (payload) => this.project(payload) });
    const idleMs = this.options.wallClockAfterIdleMs;
    if (idleMs !== undefined) this.idleTimer = setInterval(() => void this.advanceIfIdle(idleMs), Math.min(idleMs, 5_000));
  }

  /** Finishes the batches in flight, then leaves the groups. */
  async stop(): Promise<void> {
    clearInterval(this.idleTimer);
    await Promise.allSettled([this.repartitionConsumer.disconnect(), this.projectConsumer.disconnect()]);
    await this.producer.disconnect();
  }

  private async seekToStoredOffsets(partitions: number[]): Promise<void> {
    const topic = this.options.topics.byCustomer;
    const stored = await loadConsumerOffsets(this.options.db, this.groupId, topic);
    for (const partition of partitions) {
      const offset = stored.get(partition);
      if (offset !== undefined) this.projectConsumer.seek({ topic, partition, offset: String(offset) });
    }
    this.options.logger.info({ topic, partitions, stored: Object.fromEntries(stored) }, 'partitions assigned');
  }

  private async repartition({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (batch.isEmpty() || !isRunning() || isStale()) return;
    this.lastInputAt = Date.now();
    const { topics } = this.options;
    const valid = [];
    const invalid = [];
    const rejections: Rejection[] = [];
    for (const message of batch.messages) {
      const parsed = parseMessage(message.value);
      if (parsed.ok) valid.push(touchpointMessage(parsed.touchpoint, message.value!.toString('utf8')));
      else {
        invalid.push(deadLetterMessage(message.value, parsed.rejection, { topic: batch.topic, partition: String(batch.partition), offset: message.offset }));
        rejections.push(parsed.rejection);
      }
    }
    const transaction = await this.producer.transaction();
    try {
      for (const part of byteBounded(valid)) await transaction.send({ topic: topics.byCustomer, messages: part });
      for (const part of byteBounded(invalid)) await transaction.send({ topic: topics.deadLetter, messages: part });
      await transaction.sendOffsets({
        consumerGroupId: this.repartitionGroupId,
        topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }] }],
      });
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw error;
    }
    // The offsets went out with the transaction; this only moves the fetch position, without
    // which kafkajs would fetch (and re-publish) the same batch again.
    resolveOffset(batch.lastOffset());
    for (const rejection of rejections) this.options.onRejected?.(rejection);
    await heartbeat();
  }

  private async project({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { db, config, logger } = this.options;
    const chunkSize = this.options.chunkSize ?? 5_000;
    const stored = (await loadConsumerOffsets(db, this.groupId, batch.topic)).get(batch.partition) ?? 0;
    const messages = batch.messages.filter((m) => Number(m.offset) >= stored);
    if (messages.length > 0) this.lastInputAt = Date.now();
    // Each part commits its touchpoints with the offset past its last message; a touchpoint the
    // store refuses alone is dead-lettered and its offset committed, so the partition moves on.
    let heartbeatFailure: unknown;
    const origin = (message: KafkaMessage) => ({ topic: batch.topic, partition: String(batch.partition), offset: message.offset });
    const commit = async (part: readonly KafkaMessage[], touchpoints: ReadonlyMap<Touchpoint, KafkaMessage>) => {
      const last = part[part.length - 1]!.offset;
      const started = performance.now();
      const outcome = await this.withConflictRetries(() =>
        db.transaction(async (tx) => {
          const result = await projectBatch(tx, [...touchpoints.keys()], config, this.streams);
          await saveConsumerOffsets(tx, this.groupId, batch.topic, new Map([[batch.partition, Number(last) + 1]]));
          // Dead-lettered before the COMMIT that moves the offset past them: at least once.
          const conflicts = result.conflicts.map((t) => deadLetterMessage(touchpoints.get(t)!.value, conflictRejection(t), origin(touchpoints.get(t)!)));
          for (const part of byteBounded(conflicts)) await this.producer.send({ topic: this.options.topics.deadLetter, acks: -1, messages: part });
          crashBeforeCommit('chunk');
          return result;
        }),
      );
      resolveOffset(last);
      this.options.onBatch?.(outcome, (performance.now() - started) / 1000);
      // A failed heartbeat (a rebalance) is no fault of this part, which is committed: it must not
      // reach isolatePoison. Thrown once the chunk is done.
      await heartbeat().catch((error: unknown) => (heartbeatFailure ??= error));
      logger.debug({ topic: batch.topic, partition: batch.partition, offset: last, accepted: outcome.accepted.length }, 'chunk projected');
    };
    const attempt = (part: readonly KafkaMessage[]) => {
      const touchpoints = new Map<Touchpoint, KafkaMessage>();
      for (const message of part) {
        const parsed = parseMessage(message.value);
        // The repartition stage only publishes valid touchpoints; anything else was not written by it.
        if (parsed.ok) touchpoints.set(parsed.touchpoint, message);
        else logger.warn({ topic: batch.topic, partition: batch.partition, offset: message.offset, reason: parsed.rejection.reason }, 'skipped an invalid message');
      }
      return commit(part, touchpoints);
    };
    const quarantine = async (message: KafkaMessage, error: unknown) => {
      const rejection = storeRejection(error);
      const parsed = parseMessage(message.value);
      const touchpoint = parsed.ok ? parsed.touchpoint : undefined;
      // Sent before the offset moves past it: a crash in between sends it twice, never not at all.
      await this.producer.send({
        topic: this.options.topics.deadLetter,
        acks: -1,
        messages: [deadLetterMessage(message.value, rejection, origin(message))],
      });
      logger.error(
        { err: error, topic: batch.topic, partition: batch.partition, offset: message.offset, touchpointId: touchpoint?.id, customerId: touchpoint?.customerId },
        'the store refused a touchpoint alone, twice: dead-lettered as store_rejected',
      );
      await commit([message], new Map());
      this.options.onRejected?.({ ...rejection, ...(touchpoint ? { type: touchpoint.type } : {}) });
    };
    for (let i = 0; i < messages.length; i += chunkSize) {
      if (!isRunning() || isStale()) return;
      await isolatePoison(messages.slice(i, i + chunkSize), attempt, quarantine);
      if (heartbeatFailure !== undefined) throw heartbeatFailure;
    }
  }

  private async advanceIfIdle(idleMs: number): Promise<void> {
    if (this.advancing || Date.now() - this.lastInputAt < idleMs) return;
    this.advancing = true;
    try {
      if (!(await this.caughtUp())) return;
      const { db, config, logger } = this.options;
      const started = performance.now();
      const now = Date.now();
      const outcome = await this.withConflictRetries(() =>
        db.transaction(async (tx) => {
          const result = await advanceWatermark(tx, now, config, this.streams);
          crashBeforeCommit('advance');
          return result;
        }),
      );
      this.options.onBatch?.({ accepted: [], duplicates: [], conflicts: [], ...outcome }, (performance.now() - started) / 1000);
      if (outcome.stageChanges.length > 0) logger.info({ watermark: new Date(now).toISOString(), stageChanges: outcome.stageChanges.length }, 'wall clock passed deadlines');
    } catch (error) {
      // The next tick tries again.
      this.options.logger.error({ err: error }, 'advancing the watermark to the wall clock failed');
    } finally {
      this.advancing = false;
    }
  }

  private async withConflictRetries<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await work();
      } catch (error) {
        if (!(error instanceof ConcurrencyError) || attempt >= CONFLICT_RETRIES) {
          this.options.onStoreError?.(error);
          throw error;
        }
        this.options.logger.warn({ err: error, attempt }, 'concurrent append, retrying the chunk');
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt * (0.5 + Math.random())));
      }
    }
  }

  /**
   * Messages not consumed yet, per partition: of the input topic by the repartition group
   * (its committed offsets), of `…by-customer` by the projector (the offsets stored with the
   * read models). The internal topic is written in transactions, so its end offset lies one past
   * a commit marker no consumer sees: that one is not counted.
   */
  async consumerLag(): Promise<PartitionLag[]> {
    const { kafka, topics, db } = this.options;
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId: this.repartitionGroupId, topics: [topics.input] });
      const committedBy = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
      const stored = await loadConsumerOffsets(db, this.groupId, topics.byCustomer);
      const lag: PartitionLag[] = [];
      for (const p of await admin.fetchTopicOffsets(topics.input)) {
        const position = Math.max(committedBy.get(p.partition) ?? 0, Number(p.low));
        lag.push({ topic: topics.input, partition: p.partition, messages: Math.max(0, Number(p.high) - position) });
      }
      for (const p of await admin.fetchTopicOffsets(topics.byCustomer)) {
        const position = Math.max(stored.get(p.partition) ?? 0, Number(p.low));
        lag.push({ topic: topics.byCustomer, partition: p.partition, messages: Math.max(0, Number(p.high) - 1 - position) });
      }
      return lag;
    } finally {
      await admin.disconnect();
    }
  }

  /** True when both groups have consumed everything. */
  async caughtUp(): Promise<boolean> {
    return (await this.consumerLag()).every((p) => p.messages === 0);
  }
}

export interface PartitionLag {
  topic: string;
  partition: number;
  messages: number;
}
