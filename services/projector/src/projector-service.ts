import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { LifecycleConfig, Rejection, Touchpoint } from '@lifecycle/contracts';
import { ConcurrencyError } from '@lifecycle/eventstore';
import { advanceWatermark, conflictRejection, crashBeforeCommit, isolatePoison, KeyedState, projectBatch, storeRejection, type BatchOutcome, type Ownership } from '@lifecycle/projection';
import { assertClaims, FencedError, loadConsumerOffsets, saveConsumerOffsets, takePartitions, type PartitionClaim } from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { byteBounded, createProducer, deadLetterMessage, parseMessage, touchpointMessage, type Topics } from '@lifecycle/kafka';

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
/** How often an instance without input re-folds what others nudged it to and catches up with their time. */
const SETTLE_INTERVAL_MS = 500;

// Two instances' transactions may wait on each other (a visitor, a cohort cell, an event id both
// write): PostgreSQL aborts one, which is retried like a concurrent append.
const DEADLOCK = '40P01';
const SERIALIZATION_FAILURE = '40001';
const isConflict = (error: unknown) =>
  error instanceof ConcurrencyError || [DEADLOCK, SERIALIZATION_FAILURE].includes((error as { code?: string }).code ?? '');

/**
 * The distributed projector: two consumer groups in one process.
 *
 * 1. *Repartition*: reads the input topic, whatever its keys, and re-publishes valid touchpoints
 *    keyed by customer to the internal `…by-customer` topic and invalid ones to the dead-letter
 *    topic, in a Kafka transaction that also commits the input offsets: each input message is
 *    re-published exactly once, also across crashes.
 * 2. *Project*: reads `…by-customer` and projects each chunk in one PostgreSQL transaction with
 *    its offsets; on assignment it claims its partitions (a new epoch each, which fences their
 *    previous owner) and seeks to the stored offsets, and it skips anything below them (Kafka's
 *    committed offsets are only a hint). It owns the customers of its partitions and keeps them
 *    in memory (`KeyedState`); instances write concurrently, with no lock in common.
 */
export class ProjectorService {
  private readonly groupId: string;
  private readonly repartitionGroupId: string;
  private readonly repartitionConsumer: Consumer;
  private readonly projectConsumer: Consumer;
  private readonly producer: Producer;
  /** Dead letters of the project stage: never the repartition stage's transactional producer, which one send at a time may use. */
  private readonly deadLetters: Producer;
  private lastInputAt = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** The customers of the claimed partitions. */
  private readonly keyed = new KeyedState();
  /** The partitions claimed at the last assignment; chunks wait for it. */
  private claims: Promise<PartitionClaim[]> = Promise.resolve([]);
  private assigned: number[] = [];
  /** One transaction at a time: chunks, settling and the wall clock share the keyed state. */
  private exclusive: Promise<unknown> = Promise.resolve();

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
    this.deadLetters = createProducer(kafka);
    this.repartitionConsumer = kafka.consumer({ groupId: this.repartitionGroupId, readUncommitted: false });
    this.projectConsumer = kafka.consumer({ groupId: this.groupId, readUncommitted: false, sessionTimeout: 30_000, heartbeatInterval: 3_000 });
  }

  async start(): Promise<void> {
    const { topics } = this.options;
    await this.producer.connect();
    await this.deadLetters.connect();
    await this.repartitionConsumer.connect();
    await this.projectConsumer.connect();
    await this.repartitionConsumer.subscribe({ topics: [topics.input], fromBeginning: true });
    await this.projectConsumer.subscribe({ topics: [topics.byCustomer], fromBeginning: true });
    this.projectConsumer.on(this.projectConsumer.events.GROUP_JOIN, ({ payload }) => {
      this.assigned = payload.memberAssignment[topics.byCustomer] ?? [];
      this.claims = this.claim(this.assigned);
    });
    await this.repartitionConsumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.repartition(payload) });
    await this.projectConsumer.run({ eachBatchAutoResolve: false, eachBatch: (payload) => this.project(payload) });
    const idleMs = this.options.wallClockAfterIdleMs;
    if (idleMs !== undefined) this.idleTimer = setInterval(() => void this.advanceIfIdle(idleMs), Math.min(idleMs, 5_000));
    this.settleTimer = setInterval(() => void this.settleIfIdle(), SETTLE_INTERVAL_MS);
  }

  /** Finishes the batches in flight, then leaves the groups. */
  async stop(): Promise<void> {
    clearInterval(this.idleTimer);
    clearInterval(this.settleTimer);
    await Promise.allSettled([this.repartitionConsumer.disconnect(), this.projectConsumer.disconnect()]);
    await Promise.allSettled([this.producer.disconnect(), this.deadLetters.disconnect()]);
  }

  /**
   * Claims the assigned partitions (fencing their previous owner, after its transaction in
   * flight), forgets the customers held so far (their partitions may have had another owner
   * meanwhile), and seeks to the stored offsets: only a shortcut, project() skips whatever lies
   * below them anyway.
   */
  private claim(partitions: number[]): Promise<PartitionClaim[]> {
    const { db, logger } = this.options;
    const topic = this.options.topics.byCustomer;
    const claimed = this.serially(async () => {
      this.keyed.clear();
      const claims = await db.transaction((tx) => takePartitions(tx, this.groupId, topic, partitions));
      const stored = await loadConsumerOffsets(db, this.groupId, topic);
      for (const partition of partitions) {
        const offset = stored.get(partition);
        if (offset !== undefined) this.projectConsumer.seek({ topic, partition, offset: String(offset) });
      }
      logger.info({ topic, partitions, epochs: Object.fromEntries(claims.map((c) => [c.partition, c.epoch])), stored: Object.fromEntries(stored) }, 'partitions claimed');
      return claims;
    });
    claimed.catch((error: unknown) => logger.error({ err: error }, 'could not claim the assigned partitions'));
    return claimed;
  }

  /** The claims of the current assignment, claimed again if that failed (the database was away). */
  private currentClaims(): Promise<PartitionClaim[]> {
    return this.claims.catch(() => (this.claims = this.claim(this.assigned)));
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.exclusive.then(work, work);
    this.exclusive = run.catch(() => undefined);
    return run;
  }

  /**
   * A transaction of this instance's: it first checks (and locks) its claims, so an instance
   * that lost its partitions writes nothing; the customers held are dropped if it fails.
   */
  private async owned<T>(work: (tx: SqlExecutor, ownership: Ownership) => Promise<T>): Promise<T> {
    const claims = await this.currentClaims();
    const ownership: Ownership = { topic: this.options.topics.byCustomer, partitions: claims.map((c) => c.partition) };
    return this.serially(() =>
      this.keyed.transaction(this.options.db, async (tx) => {
        await assertClaims(tx, this.groupId, ownership.topic!, claims);
        return work(tx, ownership);
      }),
    );
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
    await this.currentClaims();
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
        this.owned(async (tx, ownership) => {
          const result = await projectBatch(tx, [...touchpoints.keys()], config, this.keyed, ownership, batch.partition);
          await saveConsumerOffsets(tx, this.groupId, batch.topic, new Map([[batch.partition, Number(last) + 1]]));
          // Dead-lettered before the COMMIT that moves the offset past them: at least once.
          const conflicts = result.conflicts.map((t) => deadLetterMessage(touchpoints.get(t)!.value, conflictRejection(t), origin(touchpoints.get(t)!)));
          for (const part of byteBounded(conflicts)) await this.deadLetters.send({ topic: this.options.topics.deadLetter, acks: -1, messages: part });
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
      await this.deadLetters.send({
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
    if (Date.now() - this.lastInputAt < idleMs) return;
    try {
      if (!(await this.caughtUp())) return;
      await this.advance(Date.now());
    } catch (error) {
      // The next tick tries again.
      this.options.logger.error({ err: error }, 'advancing the watermark to the wall clock failed');
    }
  }

  /**
   * Without input, the customers this instance owns still change: another instance's time
   * passes their deadlines, or its touchpoints (a visitor's impressions) nudge them.
   */
  private async settleIfIdle(): Promise<void> {
    if (Date.now() - this.lastInputAt < SETTLE_INTERVAL_MS) return;
    await this.settle().catch((error: unknown) => this.options.logger.warn({ err: error }, 'settling the owned customers failed'));
  }

  /**
   * Re-folds the owned customers that other instances nudged or whose deadlines the group's
   * time passed. Once the whole group has caught up, a settle leaves this instance's customers
   * final (`--until-idle` settles before it stops).
   */
  async settle(): Promise<void> {
    if ((await this.currentClaims()).length > 0) await this.advance();
  }

  /** Re-folds the owned customers as of `to` (the wall clock) or, without one, as of the group's T. */
  private async advance(wallClock?: number): Promise<void> {
    const { config, logger } = this.options;
    const started = performance.now();
    const outcome = await this.withConflictRetries(() =>
      this.owned(async (tx, ownership) => {
        const result = await advanceWatermark(tx, wallClock ?? Number.NEGATIVE_INFINITY, config, this.keyed, ownership);
        if (wallClock !== undefined) crashBeforeCommit('advance');
        return result;
      }),
    );
    if (outcome.stageChanges.length === 0 && outcome.corrections === 0) return;
    this.options.onBatch?.({ accepted: [], duplicates: [], conflicts: [], ...outcome }, (performance.now() - started) / 1000);
    if (wallClock !== undefined) logger.info({ watermark: new Date(wallClock).toISOString(), stageChanges: outcome.stageChanges.length }, 'wall clock passed deadlines');
    else logger.info({ stageChanges: outcome.stageChanges.length }, "owned customers settled (other instances' nudges and time)");
  }

  private async withConflictRetries<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await work();
      } catch (error) {
        if (error instanceof FencedError) {
          // Not a fault of the store: the partitions are another instance's now; the group's
          // rebalance gives this one its new assignment.
          this.options.logger.warn({ err: error }, 'fenced: this instance lost its partitions, its transaction was rolled back');
          throw error;
        }
        if (!isConflict(error) || attempt >= CONFLICT_RETRIES) {
          this.options.onStoreError?.(error);
          throw error;
        }
        this.options.logger.warn({ err: error, attempt }, 'concurrent write, retrying the chunk');
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
