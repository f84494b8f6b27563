import type { Consumer, EachBatchPayload, Kafka, Message, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Rejection } from '@lifecycle/contracts';
import { byteBounded, createProducer, deadLetterMessage, parseMessage, touchpointMessage, type Topics } from '@lifecycle/kafka';

export interface RepartitionStageOptions {
  kafka: Kafka;
  topics: Topics;
  /** The consumer group of the stage (its committed offsets are part of its transactions). */
  groupId: string;
  /** This instance's name (logs). */
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
  /** The assignment it was consumed under: a batch of an earlier one is fetched again, never published. */
  readonly assignment: number;
}

/** After a failed transaction, the messages are fetched again; this long later, not in a tight loop. */
const RETRY_AFTER_FAILURE_MS = 1_000;
/** Batches waiting that make fetching wait for their transaction. */
const MAX_WAITING_MESSAGES = 20_000;

/** kafkajs's error when another producer with the same transactional id has taken over. */
const isFenced = (error: unknown) => /INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|fenced/i.test(`${(error as { type?: string }).type ?? ''} ${(error as Error).message ?? ''}`);

/**
 * The repartition stage: reads the input topic, whatever its keys, and re-publishes valid
 * touchpoints keyed by customer to `…by-customer` and invalid ones to the dead-letter topic, in a
 * Kafka transaction that also commits the input offsets: each input message is re-published
 * exactly once, also across crashes and rebalances.
 *
 * One transactional producer per input partition, its transactional id the partition's
 * (`<group>.p<partition>`), not the instance's: kafkajs has no consumer-group fencing of
 * transactions (KIP-447), so with one producer per instance an instance that lost a partition in
 * a rebalance could still commit a transaction of it *after* the new owner had read the
 * committed offsets, and the new owner published the same messages again (the soak saw a dead
 * letter twice after an instance joined). Now the new owner first initialises the partition's
 * producer, which fences the previous owner's and completes or aborts its transaction in
 * flight, and only then reads the committed offset and seeks there; messages consumed before
 * that are never published. Write-behind: what was consumed waits at most `commitIntervalMs`,
 * while fetching goes on; then each partition's batches go out in one transaction of its own.
 * When one fails, what its partition consumed is fetched again from the committed offset.
 */
export class RepartitionStage {
  private readonly consumer: Consumer;
  /** The producers of the partitions this instance holds, each fenced in on assignment. */
  private readonly producers = new Map<number, Producer>();
  /**
   * Per assigned partition, the offset from which consumed messages are new: the committed one
   * read after the fencing, then past each batch consumed. A partition without one is not ready.
   */
  private readonly from = new Map<number, number>();
  private assignment = 0;
  private waiting: Sorted[] = [];
  private waitingMessages = 0;
  private timer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private retryAfter = 0;
  /** Stopping: no partition is taken again. */
  private stopped = false;

  constructor(private readonly options: RepartitionStageOptions) {
    this.consumer = options.kafka.consumer({ groupId: options.groupId, readUncommitted: false, heartbeatInterval: 1_000 });
  }

  async start(): Promise<void> {
    const input = this.options.topics.input;
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [input], fromBeginning: true });
    // A new assignment is taken between two transactions: none of this instance's is in flight
    // while the partitions are fenced in and their committed offsets read.
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      const partitions = payload.memberAssignment[input] ?? [];
      this.assignment += 1;
      const assignment = this.assignment;
      this.dropWaiting();
      this.from.clear();
      this.committing = this.committing
        .then(() => this.assign(partitions, assignment))
        .catch((error: unknown) => {
          this.options.logger.error({ err: error, topic: input, partitions }, 'repartition: taking the assigned partitions failed; trying again');
          for (const partition of partitions) this.retake(partition, assignment);
        });
    });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.consume(payload) });
  }

  /**
   * Stops fetching, commits what was consumed while this instance still holds its partitions
   * (leaving first would let their next owner start from older committed offsets), then leaves
   * the group. A transaction after that is fenced if the partition's next owner has started.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.consumer.pause([{ topic: this.options.topics.input }]);
    await this.commit().catch(() => undefined);
    await this.consumer.disconnect().catch(() => undefined);
    await this.commit().catch(() => undefined);
    await Promise.all([...this.producers.values()].map((p) => p.disconnect().catch(() => undefined)));
    this.producers.clear();
  }

  /**
   * Takes the partitions of a new assignment: releases the producers of the partitions gone and
   * takes each assigned one (a kept partition keeps its producer: nobody else had it).
   */
  private async assign(partitions: number[], assignment: number): Promise<void> {
    const { topics, logger } = this.options;
    for (const [partition, producer] of this.producers) {
      if (partitions.includes(partition)) continue;
      this.producers.delete(partition);
      await producer.disconnect().catch(() => undefined);
    }
    await Promise.all(partitions.map((partition) => this.take(partition, assignment)));
    logger.info({ topic: topics.input, partitions, from: Object.fromEntries(this.from) }, 'repartition: partitions taken');
  }

  /**
   * Takes a partition: a producer that fences its previous owner's (unless this instance has a
   * working one for it), then the committed offset, read after the fencing, where the partition
   * is fetched from. Until then its messages are ignored.
   */
  private async take(partition: number, assignment: number): Promise<void> {
    const { kafka, topics, groupId } = this.options;
    if (!this.producers.has(partition)) {
      const producer = createProducer(kafka, {
        transactionalId: `${groupId}.p${partition}`,
        transactionTimeout: 15_000,
        // The broker answers CONCURRENT_TRANSACTIONS while the previous transaction still
        // completes (a few ms); kafkajs's default first retry waits 300 ms, which was most of
        // the end-to-end latency.
        retry: { initialRetryTime: 20, retries: 10 },
      });
      try {
        await producer.connect();
        // InitProducerId: the previous owner's producer is fenced, its transaction in flight
        // completed or aborted by the coordinator before this returns. No request is sent for
        // the empty transaction.
        await (await producer.transaction()).abort();
      } catch (error) {
        await producer.disconnect().catch(() => undefined);
        throw error;
      }
      if (assignment !== this.assignment) {
        await producer.disconnect().catch(() => undefined);
        return; // a newer assignment takes over
      }
      this.producers.set(partition, producer);
    }
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topics.input] });
      // -1: nothing committed yet, the group starts from the beginning.
      const offset = Math.max(0, Number(committed?.partitions.find((p) => p.partition === partition)?.offset ?? 0));
      if (assignment !== this.assignment) return;
      this.consumer.seek({ topic: topics.input, partition, offset: String(offset) });
      this.from.set(partition, offset);
    } finally {
      await admin.disconnect();
    }
  }

  private async consume({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (batch.isEmpty() || !isRunning() || isStale()) return;
    const from = this.from.get(batch.partition);
    // Not taken yet (its fencing and offset come first): the seek brings these messages again.
    if (from === undefined) return;
    const messages = batch.messages.filter((m) => Number(m.offset) >= from);
    resolveOffset(batch.lastOffset());
    if (messages.length === 0) return;
    this.options.onInput();
    const sorted: Sorted = { partition: batch.partition, valid: [], invalid: [], rejections: [], next: Number(messages[messages.length - 1]!.offset) + 1, assignment: this.assignment };
    for (const message of messages) {
      const parsed = parseMessage(message.value);
      if (parsed.ok) sorted.valid.push(touchpointMessage(parsed.touchpoint, message.value!.toString('utf8')));
      else {
        sorted.invalid.push(deadLetterMessage(message.value, parsed.rejection, { topic: batch.topic, partition: String(batch.partition), offset: message.offset }));
        sorted.rejections.push(parsed.rejection);
      }
    }
    this.from.set(batch.partition, sorted.next);
    this.waiting.push(sorted);
    this.waitingMessages += messages.length;
    if (this.waitingMessages >= MAX_WAITING_MESSAGES) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, this.retryAfter - Date.now())));
      await this.commit().catch(() => undefined);
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.commit().catch(() => undefined), Math.max(this.options.commitIntervalMs, this.retryAfter - Date.now()));
    }
    await heartbeat();
  }

  /** Forgets what waits (a new assignment fetches it again from the committed offsets). */
  private dropWaiting(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting = [];
    this.waitingMessages = 0;
  }

  /** One transaction per partition with batches waiting; one round of them at a time, in consumption order. */
  private commit(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const run = this.committing.then(async () => {
      if (this.waiting.length === 0) return;
      const batches = this.waiting.filter((b) => b.assignment === this.assignment);
      this.waiting = [];
      this.waitingMessages = 0;
      const byPartition = new Map<number, Sorted[]>();
      for (const b of batches) byPartition.set(b.partition, [...(byPartition.get(b.partition) ?? []), b]);
      // The partitions' transactions are independent (a producer each): at once, not in turn.
      const results = await Promise.allSettled([...byPartition].map(([partition, sorted]) => this.commitPartition(partition, sorted)));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure !== undefined) throw failure.reason;
    });
    this.committing = run.catch(() => undefined);
    return run;
  }

  private async commitPartition(partition: number, batches: readonly Sorted[]): Promise<void> {
    const { topics, groupId, logger } = this.options;
    const producer = this.producers.get(partition);
    if (producer === undefined) return; // released: the partition is another instance's now
    const next = batches[batches.length - 1]!.next;
    let transaction: Awaited<ReturnType<Producer['transaction']>> | undefined;
    try {
      transaction = await producer.transaction();
      for (const part of byteBounded(batches.flatMap((b) => b.valid))) await transaction.send({ topic: topics.byCustomer, messages: part });
      for (const part of byteBounded(batches.flatMap((b) => b.invalid))) await transaction.send({ topic: topics.deadLetter, messages: part });
      await transaction.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: topics.input, partitions: [{ partition, offset: String(next) }] }] });
      await transaction.commit();
    } catch (error) {
      await transaction?.abort().catch(() => undefined);
      this.retryAfter = Date.now() + RETRY_AFTER_FAILURE_MS;
      // The producer is not used again: after a failed transaction (a broker away, a timeout) its
      // state may be stuck. The partition is taken again with a new one, which fences the old.
      this.producers.delete(partition);
      this.from.delete(partition);
      await producer.disconnect().catch(() => undefined);
      if (isFenced(error)) {
        // Another instance owns the partition now: its producer took over. Nothing of this
        // transaction counts; the group's next assignment reaches this instance soon.
        logger.warn({ err: error, topic: topics.input, partition }, 'repartition: fenced, the partition is another instance\'s now');
        throw error;
      }
      logger.error({ err: error, topic: topics.input, partition }, 'repartitioning failed: the consumed input is fetched again from the committed offset');
      this.retake(partition, this.assignment);
      throw error;
    }
    for (const b of batches) for (const rejection of b.rejections) this.options.onRejected?.(rejection);
  }

  /**
   * After a failed transaction: the partition is taken again (a new producer, the committed
   * offset), after the pause, and again until it works or a new assignment comes.
   */
  private retake(partition: number, assignment: number): void {
    setTimeout(() => {
      if (this.stopped || assignment !== this.assignment || this.from.has(partition)) return;
      this.committing = this.committing
        .then(() => (assignment === this.assignment && !this.from.has(partition) ? this.take(partition, assignment) : undefined))
        .catch((error: unknown) => {
          // The broker is still away: its messages are ignored meanwhile.
          this.options.logger.error({ err: error, topic: this.options.topics.input, partition }, 'repartition: could not take the partition again; trying again');
          this.retake(partition, assignment);
        });
    }, RETRY_AFTER_FAILURE_MS);
  }
}
