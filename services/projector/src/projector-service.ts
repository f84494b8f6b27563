import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { LifecycleConfig, Rejection, Touchpoint } from '@lifecycle/contracts';
import { ConcurrencyError } from '@lifecycle/eventstore';
import { advanceWatermark, conflictRejection, crashBeforeCommit, isolatePoison, KeyedState, projectBatch, storeRejection, type BatchOutcome, type Ownership } from '@lifecycle/projection';
import { assertClaims, FencedError, loadConsumerOffsets, saveConsumerOffsets, takePartitions, type PartitionClaim } from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { byteBounded, createKafka, createProducer, deadLetterMessage, keyPartitioner, parseMessage, visitorKey, type Topics } from '@lifecycle/kafka';
import { RepartitionThread } from './repartition-thread.js';

export interface ProjectorServiceOptions {
  /** Each thread of the instance makes its own client of these brokers (a client cannot cross threads). */
  kafka: { brokers: string[]; clientId: string };
  topics: Topics;
  db: SqlDatabase;
  config: LifecycleConfig;
  logger: Logger;
  /** Stable per instance (host name, pod name): a restarted instance fences its predecessor. */
  instanceId: string;
  /** Default `lifecycle-projector.<input topic>`: projectors of different topics never share a group. */
  groupId?: string;
  /** At most this many touchpoints per read-model transaction (default 5 000); as many waiting start one at once. */
  chunkSize?: number;
  /** Touchpoints consumed wait at most this long for their transaction (default 50 ms): the commit interval. */
  commitIntervalMs?: number;
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
const DEFAULT_CHUNK_SIZE = 5_000;
const DEFAULT_COMMIT_INTERVAL_MS = 50;
/** After a failed commit, the touchpoints are fetched again; this long later, not in a tight loop. */
const RETRY_AFTER_FAILURE_MS = 1_000;
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
 * 1. *Repartition* (`RepartitionStage`, on a thread of its own: `RepartitionThread`): the input
 *    topic, whatever its keys, re-published keyed by customer to the internal `…by-customer`
 *    topic, exactly once.
 * 2. *Project*: reads `…by-customer` and projects each chunk in one PostgreSQL transaction with
 *    its offsets; on assignment it claims its partitions (a new epoch each, which fences their
 *    previous owner) and seeks to the stored offsets, and it skips anything below them (Kafka's
 *    committed offsets are only a hint). It owns the customers of its partitions and keeps them
 *    in memory (`KeyedState`); instances write concurrently, with no lock in common.
 */
export class ProjectorService {
  private readonly groupId: string;
  private readonly repartitionGroupId: string;
  private readonly kafka: Kafka;
  private repartition: RepartitionThread | undefined;
  /** Rejects when the repartition stage's thread fails: the instance must then stop. */
  readonly failed: Promise<never>;
  private fail: (error: unknown) => void = () => undefined;
  private readonly projectConsumer: Consumer;
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
  /**
   * Write-behind: messages of `…by-customer` consumed (their fetch position moved on) and not
   * committed yet, by partition, and the offset each partition has been consumed to. The read
   * models' stored offsets stay the truth: a commit that fails, or a new assignment, drops them
   * and seeks back to the stored offsets.
   */
  private pending = new Map<number, Waiting[]>();
  /** Counts assignments: what was consumed under an earlier one is fetched again from the claim's offsets. */
  private assignment = 0;
  private pendingCount = 0;
  private consumedTo = new Map<number, number>();
  /**
   * Per partition, the offset past the last record fetched, transaction markers included. Several
   * producers write `…by-customer` (one per input partition, per instance), so a partition can
   * end in several markers in a row ([A's data][B's data][A's marker][B's marker]): no consumer
   * ever sees them, and a stored offset past the last data only would look one or more behind
   * the end for ever (`--until-idle` and the wall clock wait for a lag of 0). Once everything
   * before them is committed, the stored offset moves past them too.
   */
  private markersTo = new Map<number, number>();
  private commitTimer: NodeJS.Timeout | undefined;
  /** Where a visitor's impressions (and link) belong: from the partitions of `…by-customer`, read at start. */
  private partitionOfVisitor: (anonymousId: string) => number = () => {
    throw new Error('the projector service has not started');
  };
  private committing: Promise<void> = Promise.resolve();
  private retryAfter = 0;

  constructor(private readonly options: ProjectorServiceOptions) {
    this.groupId = options.groupId ?? `lifecycle-projector.${options.topics.input}`;
    this.repartitionGroupId = `${this.groupId}.repartition`;
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
    const kafka = (this.kafka = createKafka({ ...options.kafka, logger: options.logger }));
    this.deadLetters = createProducer(kafka);
    // Heartbeats every second: a member learns of a rebalance (an instance joining) that soon.
    this.projectConsumer = kafka.consumer({ groupId: this.groupId, readUncommitted: false, sessionTimeout: 30_000, heartbeatInterval: 1_000 });
  }

  async start(): Promise<void> {
    const { topics } = this.options;
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const { topics: [metadata] } = await admin.fetchTopicMetadata({ topics: [topics.byCustomer] });
      const partitionOf = keyPartitioner(metadata!.partitions.length);
      this.partitionOfVisitor = (anonymousId) => partitionOf(visitorKey(anonymousId));
    } finally {
      await admin.disconnect();
    }
    await this.deadLetters.connect();
    await this.projectConsumer.connect();
    await this.projectConsumer.subscribe({ topics: [topics.byCustomer], fromBeginning: true });
    this.projectConsumer.on(this.projectConsumer.events.GROUP_JOIN, ({ payload }) => {
      this.assigned = payload.memberAssignment[topics.byCustomer] ?? [];
      this.claims = this.claim(this.assigned);
    });
    // A fetch that held only transaction markers (or aborted records) never reaches eachBatch:
    // kafkajs reports it here, with no message (batchSize 0).
    this.projectConsumer.on(this.projectConsumer.events.END_BATCH_PROCESS, ({ payload }) => {
      // firstOffset null: every record fetched lay below the offset asked for (kafkajs then reports
      // that offset as the last one, which was not fetched): nothing to step over.
      if (payload.topic !== topics.byCustomer || payload.batchSize !== 0 || payload.firstOffset === null) return;
      this.markersFetched(payload.partition, Number(payload.lastOffset) + 1);
    });
    // At once: joining one group must not wait for the other's join (a rebalance of the first,
    // when another instance starts, would hold this instance out of the second meanwhile).
    this.repartition = new RepartitionThread({
      ...this.options.kafka,
      topics,
      groupId: this.repartitionGroupId,
      instanceId: this.options.instanceId,
      logger: this.options.logger,
      commitIntervalMs: this.options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS,
      onInput: () => (this.lastInputAt = Date.now()),
      ...(this.options.onRejected ? { onRejected: this.options.onRejected } : {}),
    });
    this.repartition.failed.catch((error: unknown) => this.fail(error));
    await Promise.all([this.repartition.start(), this.projectConsumer.run({ eachBatchAutoResolve: false, eachBatch: (payload) => this.project(payload) })]);
    const idleMs = this.options.wallClockAfterIdleMs;
    if (idleMs !== undefined) this.idleTimer = setInterval(() => void this.advanceIfIdle(idleMs), Math.min(idleMs, 5_000));
    this.settleTimer = setInterval(() => void this.settleIfIdle(), SETTLE_INTERVAL_MS);
  }

  /** Stops fetching, commits what was consumed while the partitions are still this instance's, then leaves the groups. */
  async stop(): Promise<void> {
    clearInterval(this.idleTimer);
    clearInterval(this.settleTimer);
    this.projectConsumer.pause([{ topic: this.options.topics.byCustomer }]);
    await Promise.allSettled([this.repartition?.stop(), this.commitPending()]);
    await this.projectConsumer.disconnect().catch(() => undefined);
    // A batch in flight when fetching stopped: committed if the partitions are still this
    // instance's, fenced (and fetched again by their next owner) if not.
    await this.commitPending().catch(() => undefined);
    await this.deadLetters.disconnect().catch(() => undefined);
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
      this.dropPending();
      this.assignment += 1;
      const claims = await db.transaction((tx) => takePartitions(tx, this.groupId, topic, partitions));
      const stored = await loadConsumerOffsets(db, this.groupId, topic);
      for (const partition of partitions) {
        const offset = stored.get(partition) ?? 0;
        this.consumedTo.set(partition, offset);
        if (stored.has(partition)) this.projectConsumer.seek({ topic, partition, offset: String(offset) });
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
    const ownership: Ownership = {
      topic: this.options.topics.byCustomer,
      partitions: claims.map((c) => c.partition),
      partitionOfVisitor: this.partitionOfVisitor,
    };
    return this.serially(() =>
      this.keyed.transaction(this.options.db, async (tx) => {
        await assertClaims(tx, this.groupId, ownership.topic!, claims);
        return work(tx, ownership);
      }),
    );
  }

  /**
   * Consumes a batch of `…by-customer`: its messages wait (at most `commitIntervalMs`, or until
   * `chunkSize` are waiting) to be committed together with those of the other partitions, so
   * that fetching goes on while PostgreSQL commits. Messages below the offset a partition has been
   * consumed to (a batch fetched again) are skipped.
   */
  private async project({ batch, heartbeat, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    await this.currentClaims();
    if (!isRunning() || isStale()) return;
    const from = this.consumedTo.get(batch.partition);
    // Not claimed (yet): the claim seeks to the stored offsets and this batch comes again.
    if (from === undefined) return;
    const messages = batch.messages.filter((m) => Number(m.offset) >= from);
    if (messages.length > 0) {
      this.lastInputAt = Date.now();
      const waiting = this.pending.get(batch.partition) ?? [];
      for (const message of messages) waiting.push({ partition: batch.partition, message, assignment: this.assignment });
      this.pending.set(batch.partition, waiting);
      this.pendingCount += messages.length;
      this.consumedTo.set(batch.partition, Number(messages[messages.length - 1]!.offset) + 1);
    }
    resolveOffset(batch.lastOffset());
    // Markers fetched after the batch's last message (its lastOffset counts them).
    const end = Number(batch.lastOffset()) + 1;
    if (end > (this.markersTo.get(batch.partition) ?? 0)) this.markersTo.set(batch.partition, end);
    const chunkSize = this.options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (this.pendingCount >= chunkSize) {
      // Back pressure: with a chunk waiting, fetching waits for its commit (after a failed one,
      // for the pause that follows it). A failure is logged, its touchpoints fetched again (rewind).
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, this.retryAfter - Date.now())));
      await this.commitPending().catch(() => undefined);
    } else this.scheduleCommit();
    await heartbeat();
  }

  /** Markers only were fetched up to `end`: the stored offset moves past them once all before them is committed. */
  private markersFetched(partition: number, end: number): void {
    const consumed = this.consumedTo.get(partition);
    if (consumed === undefined || end <= consumed) return; // not claimed, or nothing new
    if (end > (this.markersTo.get(partition) ?? 0)) this.markersTo.set(partition, end);
    this.scheduleCommit();
  }

  /** Partitions whose stored offset can move past markers: nothing of theirs waits, markers were fetched past what was consumed. */
  private markersToSkip(): Map<number, number> {
    const skip = new Map<number, number>();
    for (const [partition, end] of this.markersTo) {
      if ((this.pending.get(partition)?.length ?? 0) > 0) continue;
      if (end > (this.consumedTo.get(partition) ?? Number.POSITIVE_INFINITY)) skip.set(partition, end);
    }
    return skip;
  }

  private scheduleCommit(): void {
    if (this.commitTimer !== undefined || (this.pendingCount === 0 && this.markersToSkip().size === 0)) return;
    const delay = Math.max(this.options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS, this.retryAfter - Date.now());
    this.commitTimer = setTimeout(() => void this.commitPending().catch(() => undefined), delay);
  }

  /** Forgets what was consumed and not committed: it is fetched again from the stored offsets. */
  private dropPending(): void {
    clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    this.pending = new Map();
    this.pendingCount = 0;
    this.consumedTo = new Map();
    this.markersTo = new Map();
  }

  /**
   * Commits every message waiting, in transactions of at most `chunkSize` touchpoints, each with
   * the offsets past its messages. One commit at a time, in consumption order. When one fails
   * for good, what was waiting is dropped and each partition seeks back to its stored offset.
   */
  private commitPending(): Promise<void> {
    clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    const run = this.committing.then(async () => {
      if (this.pendingCount === 0) {
        // Nothing waits: what was consumed is committed (commits run one at a time), so markers
        // fetched past it can be stepped over.
        const skip = this.markersToSkip();
        if (skip.size === 0) return;
        try {
          await this.withConflictRetries(() => this.owned((tx) => saveConsumerOffsets(tx, this.groupId, this.options.topics.byCustomer, skip)));
          for (const [partition, end] of skip) if (end > (this.consumedTo.get(partition) ?? 0)) this.consumedTo.set(partition, end);
        } catch (error) {
          await this.rewind(error);
          throw error;
        }
        return;
      }
      const waiting = [...this.pending].sort(([a], [b]) => a - b);
      this.pending = new Map();
      this.pendingCount = 0;
      const items = waiting.flatMap(([, messages]) => messages);
      const chunkSize = this.options.chunkSize ?? DEFAULT_CHUNK_SIZE;
      try {
        // In partition and offset order: each part commits a prefix of what is left of every partition.
        for (let i = 0; i < items.length; i += chunkSize) {
          await isolatePoison(items.slice(i, i + chunkSize), (part) => this.commit(part), (item, error) => this.quarantine(item, error));
        }
      } catch (error) {
        await this.rewind(error);
        throw error;
      }
    });
    this.committing = run.catch(() => undefined);
    return run;
  }

  /** After a failed commit: drops what was consumed and not committed, and fetches it again from the stored offsets. */
  private async rewind(error: unknown): Promise<void> {
    const { db, logger } = this.options;
    const topic = this.options.topics.byCustomer;
    this.retryAfter = Date.now() + RETRY_AFTER_FAILURE_MS;
    const partitions = [...this.consumedTo.keys()];
    this.dropPending();
    // Fenced: a new assignment is on its way (another instance claimed partitions of this one).
    logger[error instanceof FencedError ? 'warn' : 'error']({ err: error, topic, partitions }, 'committing the consumed touchpoints failed: they are fetched again from the stored offsets');
    try {
      const stored = await loadConsumerOffsets(db, this.groupId, topic);
      for (const partition of partitions) {
        const offset = stored.get(partition) ?? 0;
        this.consumedTo.set(partition, offset);
        this.projectConsumer.seek({ topic, partition, offset: String(offset) });
      }
    } catch (reading) {
      // The database is away: a failed claim is taken again before the next batch (currentClaims).
      logger.error({ err: reading }, 'could not read the stored offsets to fetch again from');
      this.claims = Promise.reject(reading);
      this.claims.catch(() => undefined);
    }
  }

  private origin(item: Waiting) {
    return { topic: this.options.topics.byCustomer, partition: String(item.partition), offset: item.message.offset };
  }

  /**
   * One transaction: the part's touchpoints, partition by partition, with the offsets past its
   * messages. Messages consumed under an earlier assignment are left out: the claim of the current
   * one seeked back to the stored offsets, they come again.
   */
  private async commit(part: readonly Waiting[]): Promise<void> {
    const { config, logger } = this.options;
    const topic = this.options.topics.byCustomer;
    if (part.every((item) => item.assignment !== this.assignment)) return;
    const parsed = part.map((item) => ({ item, touchpoint: this.touchpointOf(item) }));
    const started = performance.now();
    const outcome = await this.withConflictRetries(() =>
      this.owned(async (tx, ownership) => {
        const touchpoints = new Map<Touchpoint, Waiting>();
        const offsets = new Map<number, number>();
        for (const { item, touchpoint } of parsed) {
          if (item.assignment !== this.assignment) continue;
          offsets.set(item.partition, Number(item.message.offset) + 1);
          if (touchpoint !== undefined) touchpoints.set(touchpoint, item);
        }
        // The last message consumed of a partition, with nothing consumed after it: the markers
        // fetched behind it are stepped over in the same transaction.
        for (const [partition, next] of offsets) {
          const markers = this.markersTo.get(partition) ?? 0;
          if (markers > next && this.consumedTo.get(partition) === next && (this.pending.get(partition)?.length ?? 0) === 0) offsets.set(partition, markers);
        }
        const total = await projectBatch(tx, [...touchpoints.keys()], config, this.keyed, ownership, (t) => touchpoints.get(t)!.partition);
        // Dead-lettered before the COMMIT that moves the offset past them: at least once.
        const conflicts = total.conflicts.map((t) => {
          const item = touchpoints.get(t)!;
          return deadLetterMessage(item.message.value, conflictRejection(t), this.origin(item));
        });
        for (const chunk of byteBounded(conflicts)) await this.deadLetters.send({ topic: this.options.topics.deadLetter, acks: -1, messages: chunk });
        await saveConsumerOffsets(tx, this.groupId, topic, offsets);
        if (offsets.size > 0) crashBeforeCommit('chunk');
        return { total, offsets };
      }),
    );
    // Past the markers it stepped over: those are not fetched again as news.
    for (const [partition, next] of outcome.offsets) if (next > (this.consumedTo.get(partition) ?? Number.POSITIVE_INFINITY)) this.consumedTo.set(partition, next);
    this.options.onBatch?.(outcome.total, (performance.now() - started) / 1000);
    logger.debug({ topic, offsets: Object.fromEntries(outcome.offsets), accepted: outcome.total.accepted.length }, 'chunk projected');
  }

  /** The touchpoint a message of `…by-customer` holds. */
  private touchpointOf(item: Waiting): Touchpoint | undefined {
    const parsed = parseMessage(item.message.value);
    if (parsed.ok) return parsed.touchpoint;
    // The repartition stage only publishes valid touchpoints; anything else was not written by it.
    this.options.logger.warn({ ...this.origin(item), reason: parsed.rejection.reason }, 'skipped an invalid message');
    return undefined;
  }

  /** A touchpoint the store refused alone, twice: dead-lettered, and its offset committed past it. */
  private async quarantine(item: Waiting, error: unknown): Promise<void> {
    const rejection = storeRejection(error);
    const parsed = parseMessage(item.message.value);
    const touchpoint = parsed.ok ? parsed.touchpoint : undefined;
    // Sent before the offset moves past it: a crash in between sends it twice, never not at all.
    await this.deadLetters.send({ topic: this.options.topics.deadLetter, acks: -1, messages: [deadLetterMessage(item.message.value, rejection, this.origin(item))] });
    this.options.logger.error(
      { err: error, ...this.origin(item), touchpointId: touchpoint?.id, customerId: touchpoint?.customerId },
      'the store refused a touchpoint alone, twice: dead-lettered as store_rejected',
    );
    await this.withConflictRetries(() =>
      this.owned(async (tx) => {
        if (item.assignment !== this.assignment) return; // fetched again under the new assignment
        await saveConsumerOffsets(tx, this.groupId, this.options.topics.byCustomer, new Map([[item.partition, Number(item.message.offset) + 1]]));
      }),
    );
    this.options.onRejected?.({ ...rejection, ...(touchpoint ? { type: touchpoint.type } : {}) });
  }

  private async advanceIfIdle(idleMs: number): Promise<void> {
    if (Date.now() - this.lastInputAt < idleMs) return;
    try {
      if (!(await this.caughtUp())) return;
      // An instance that holds no partitions (yet: a restarted one waits for the group to drop
      // its predecessor) owns no customer whose deadline could pass: nothing to advance, and no
      // empty transaction counted as one (LIFECYCLE_TEST_CRASH_BEFORE_COMMIT=advance:N means the
      // Nth advance of owned customers).
      if ((await this.currentClaims()).length === 0) return;
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
    await this.commitPending();
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
    const { topics, db } = this.options;
    const admin = this.kafka.admin();
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

/** A consumed message of `…by-customer` waiting for its commit, and the assignment it was consumed under. */
interface Waiting {
  readonly partition: number;
  readonly message: KafkaMessage;
  readonly assignment: number;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  messages: number;
}
