import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { TOUCHPOINT_RECORDED, type LifecycleConfig, type LifecycleEvent, type Touchpoint, type TouchpointOf } from '@lifecycle/contracts';
import { CustomerFold, compareCanonical, linksEarlier, timed } from '@lifecycle/domain';
import { sqlEventStore, type RecordedEvent, type SqlEventStore } from '@lifecycle/eventstore';
import {
  READ_MODEL_TABLES,
  READ_MODELS,
  assertNoProjectors,
  customersDueBy,
  linksOfCustomers,
  loadCustomers,
  loadProjectionState,
  loadVisitorLinks,
  nudgeCustomers,
  ownerPartitions,
  requestVisitorLinks,
  saveConfig,
  saveGeneration,
  savePeriods,
  saveVisitorLinks,
  saveWatermark,
  takeNudges,
  takeVisitorLinkRequests,
  type CustomerChange,
  type VisitorLink,
} from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { decide } from './decider.js';
import { KeyedState, type CustomerState } from './keyed-state.js';
import { injectStoreFault } from './test-faults.js';
import { customerStream, readCustomerStream, streamOf, touchpointEvent, visitorStream } from './streams.js';

export interface BatchOutcome {
  /** Touchpoints recorded for the first time. */
  accepted: Touchpoint[];
  /** Redeliveries of touchpoints already recorded (same id, same content): no effect. */
  duplicates: Touchpoint[];
  /** Same id as a recorded touchpoint but other content: rejected as `id_conflict`. */
  conflicts: Touchpoint[];
  /** Lifecycle events appended to the streams: the stage changes of this batch. */
  stageChanges: LifecycleEvent[];
  /** Customers whose recorded history a late touchpoint changed. */
  corrections: number;
}

/** Why a touchpoint of `BatchOutcome.conflicts` is a dead letter. */
export const conflictRejection = (touchpoint: Touchpoint) => ({
  reason: 'id_conflict' as const,
  issues: [{ path: 'id', message: `touchpoint ${touchpoint.id} was already recorded with other content` }],
});

/** The store was projected with other settings: its read models would mix two definitions. */
export class ConfigMismatchError extends Error {
  override readonly name = 'ConfigMismatchError';
}

/**
 * Refuses, before any work, to project into a store whose read models were projected with other
 * settings (each transaction checks it again: another process may have replayed meanwhile).
 */
export async function assertStoreConfig(sql: SqlExecutor, config: LifecycleConfig): Promise<void> {
  assertSameConfig((await loadProjectionState(sql)).config, config);
}

function assertSameConfig(stored: LifecycleConfig | null, config: LifecycleConfig): void {
  if (stored !== null && !isDeepStrictEqual(stored, config)) {
    throw new ConfigMismatchError(
      `the read models were projected with the settings ${JSON.stringify(stored)}, not ${JSON.stringify(config)}; ` +
        'run `lifecycle replay` with the new settings to re-project them from the event streams',
    );
  }
}

/**
 * Splits a batch into new touchpoints, redeliveries and id conflicts, by the events'
 * deterministic ids (one index probe per touchpoint). The first copy to arrive wins: each copy is
 * compared with the recorded one, or, for an id new to the store, with the batch's first copy.
 */
async function sortOutKnown(store: SqlEventStore, batch: readonly Touchpoint[]) {
  // Kept for recording the fresh ones: an event id is a hash, computed once per touchpoint.
  const events = new Map(batch.map((t) => [t, touchpointEvent(t)]));
  const recorded = await store.findById([...new Set([...events.values()].map((e) => e.id))]);
  // As stored (a JSON round trip): only computed for the ids that come again.
  const asStored = (t: Touchpoint) => JSON.parse(JSON.stringify(t)) as unknown;
  const firstInBatch = new Map<string, Touchpoint>();
  const fresh: Touchpoint[] = [];
  const duplicates: Touchpoint[] = [];
  const conflicts: Touchpoint[] = [];
  for (const touchpoint of batch) {
    const known = recorded.get(events.get(touchpoint)!.id);
    const first = firstInBatch.get(touchpoint.id);
    if (known === undefined && first === undefined) {
      firstInBatch.set(touchpoint.id, touchpoint);
      fresh.push(touchpoint);
      continue;
    }
    (isDeepStrictEqual(asStored(touchpoint), known ?? asStored(first!)) ? duplicates : conflicts).push(touchpoint);
  }
  return { fresh, duplicates, conflicts, events };
}

/**
 * Which customers a transaction may write. The embedded store's one process owns them all; a
 * Kafka projector instance owns those of the partitions it claimed (`takePartitions`, checked
 * by `assertClaims` at the start of each of its transactions).
 */
export interface Ownership {
  /** The by-customer topic; null for the embedded store. */
  readonly topic: string | null;
  /** The claimed partitions; ignored for the embedded store. */
  readonly partitions: readonly number[];
  /** The partition of the by-customer topic that holds a visitor's impressions; ignored for the embedded store. */
  readonly partitionOfVisitor: (anonymousId: string) => number;
}

export const EMBEDDED: Ownership = { topic: null, partitions: [], partitionOfVisitor: () => 0 };

const owned = (ownership: Ownership) => (ownership.topic === null ? null : ownership.partitions);
const watermarkScope = (ownership: Ownership, partition: number) => (ownership.topic === null ? undefined : `${ownership.topic}:${partition}`);

const isVisitorImpression = (t: Touchpoint) => t.type === 'ad_impression' && t.customerId === undefined;
const isLinkingRegistration = (t: Touchpoint): t is TouchpointOf<'registration'> & { anonymousId: string } =>
  t.type === 'registration' && t.anonymousId !== undefined;

/**
 * The states of `ids`, read from the store for those not held (empty for a new customer). A state
 * read has its stream's touchpoints still to fold, with the transaction's own (`decide` folds them).
 */
async function statesOf(sql: SqlExecutor, store: SqlEventStore, keyed: KeyedState, ids: Iterable<string>, config: LifecycleConfig): Promise<Map<string, CustomerState>> {
  const states = new Map<string, CustomerState>();
  const missing: string[] = [];
  for (const id of ids) {
    const state = keyed.get(id);
    if (state === undefined) missing.push(id);
    else states.set(id, state);
  }
  if (missing.length === 0) return states;
  const rows = await loadCustomers(sql, missing);
  const streams = await store.readStreams(missing.map(customerStream));
  for (const customerId of missing) {
    const events = streams.get(customerStream(customerId)) ?? [];
    const { touchpoints, lifecycle } = readCustomerStream(events);
    const state: CustomerState = {
      customerId,
      fold: new CustomerFold(config, true),
      added: touchpoints.map(timed),
      lifecycle,
      revision: events.length - 1,
      stored: rows.get(customerId),
      linked: undefined,
    };
    keyed.set(state);
    states.set(customerId, state);
  }
  return states;
}

/**
 * Starts again the folds of the customers that this transaction recorded a late touchpoint of
 * (one before a touchpoint already folded): their streams, read once it is recorded, hold all the
 * touchpoints to fold.
 */
async function refoldLate(store: SqlEventStore, states: Iterable<CustomerState>, config: LifecycleConfig): Promise<void> {
  const late = new Map<string, CustomerState>();
  for (const state of states) {
    const first = state.added.sort(compareCanonical)[0];
    if (first !== undefined && !state.fold.follows(first)) late.set(customerStream(state.customerId), state);
  }
  if (late.size === 0) return;
  const streams = await store.readStreams([...late.keys()]);
  for (const [streamId, state] of late) {
    state.fold = new CustomerFold(config, true);
    state.added = readCustomerStream(streams.get(streamId) ?? []).touchpoints.map(timed);
  }
}

/** Reads the impressions of the visitors that the given customers own, for those whose are not held. */
async function readLinkedImpressions(sql: SqlExecutor, store: SqlEventStore, states: Iterable<CustomerState>): Promise<void> {
  const needed = new Map<string, CustomerState>();
  for (const state of states) if (state.linked === undefined) needed.set(state.customerId, state);
  if (needed.size === 0) return;
  const links = await linksOfCustomers(sql, [...needed.keys()]);
  const streams = links.length === 0 ? new Map<string, RecordedEvent[]>() : await store.readStreams(links.map((l) => visitorStream(l.anonymousId)));
  for (const state of needed.values()) state.linked = [];
  for (const link of links) {
    const linked = needed.get(link.customerId)!.linked!;
    for (const event of streams.get(visitorStream(link.anonymousId)) ?? []) {
      if (event.type === TOUCHPOINT_RECORDED) linked.push({ impression: timed(event.data as Touchpoint), linkAt: link.linkAt });
    }
  }
}

/**
 * Projects a batch of valid touchpoints in one transaction: records the new ones in their
 * streams, re-folds every customer they (or the passing of churn deadlines, or another
 * instance's nudge) affect, appends the lifecycle events that changed, and writes what changed
 * of the read models: one row per changed customer and per changed cohort cell. The result
 * depends only on the set of touchpoints ever projected, not on batching or order (SPEC §6.1).
 *
 * `keyed` holds the customers between transactions (run them through `keyed.transaction`); the
 * batch's touchpoints come from the partitions of `ownership` that `partitionOf` tells (one per
 * customer: the by-customer topic is keyed by customer), whose customers this process owns.
 */
export async function projectBatch(
  sql: SqlExecutor,
  batch: readonly Touchpoint[],
  config: LifecycleConfig,
  keyed = new KeyedState(),
  ownership: Ownership = EMBEDDED,
  partitionOf: (t: Touchpoint) => number = () => 0,
): Promise<BatchOutcome> {
  if (ownership.topic === null) await assertNoProjectors(sql);
  const state = await loadProjectionState(sql);
  assertSameConfig(state.config, config);
  keyed.follow(state.generation);
  const store = sqlEventStore(sql);
  const { fresh, duplicates, conflicts, events } = await sortOutKnown(store, batch);
  const outcome: BatchOutcome = { accepted: fresh, duplicates, conflicts, stageChanges: [], corrections: 0 };
  if (fresh.length === 0) return outcome;
  await injectStoreFault(sql, fresh);
  let watermark = state.watermark ?? Number.NEGATIVE_INFINITY;
  let earliest = Number.POSITIVE_INFINITY;
  for (const t of fresh) {
    const at = Date.parse(t.occurredAt);
    watermark = Math.max(watermark, at);
    earliest = Math.min(earliest, at);
  }

  const affected = new Set<string>();
  const causedBy = new Map<string, string[]>();
  const partitions = new Map<string, number>();
  for (const t of fresh) {
    if (t.customerId === undefined) continue;
    affected.add(t.customerId);
    partitions.set(t.customerId, partitionOf(t));
    const causes = causedBy.get(t.customerId);
    if (causes) causes.push(t.id);
    else causedBy.set(t.customerId, [t.id]);
  }

  const impressions = fresh.filter(isVisitorImpression);
  await linkVisitors(sql, ownership, keyed, fresh, affected);
  // Churn happens when nothing happens: customers whose deadline the watermark passed.
  for (const id of await customersDueBy(sql, watermark, owned(ownership))) affected.add(id);

  const states = await statesOf(sql, store, keyed, affected, config);
  const visitorRevisions = await store.lastRevisions([...new Set(impressions.map(streamOf))]);
  const recorded: RecordedEvent[] = [];
  for (const t of fresh) {
    const streamId = streamOf(t);
    let revision: number;
    if (t.customerId === undefined) {
      revision = (visitorRevisions.get(streamId) ?? -1) + 1;
      visitorRevisions.set(streamId, revision);
    } else {
      const customer = states.get(t.customerId)!;
      revision = customer.revision += 1;
      customer.added.push(timed(t));
    }
    recorded.push({ ...events.get(t)!, streamId, revision });
  }
  // Before the linked impressions are read: they may be among these.
  await store.insert(recorded);
  await refoldLate(store, states.values(), config);

  const { watermark: folded, ...written } = await reproject(sql, store, [...states.values()], fresh, watermark, config, causedBy, (id) =>
    causedBy.has(id) ? (ownership.topic === null ? null : partitions.get(id)!) : (states.get(id)!.stored?.ownerPartition ?? null),
  );
  await finish(sql, state.config, config, folded, [...new Set(fresh.map(partitionOf))].map((p) => watermarkScope(ownership, p)), earliest);
  return { ...outcome, ...written };
}

/**
 * Identity (SPEC §5): a registration may take a visitor (the earliest registration carrying it
 * does), and the visitor's impressions follow it. Adds to `affected` the customers whose visitors
 * changed, or nudges their owners.
 *
 * A visitor's link and impressions have one writer: the embedded process, or the instance that
 * owns the partition holding the visitor's impressions. A registration of another partition
 * leaves it a request (in this transaction), which it takes in its next one; so instances share
 * no lock, and whichever of a registration and an impression comes second sees the first.
 */
async function linkVisitors(sql: SqlExecutor, ownership: Ownership, keyed: KeyedState, fresh: readonly Touchpoint[], affected: Set<string>): Promise<void> {
  const registrations: VisitorLink[] = fresh
    .filter(isLinkingRegistration)
    .map((r) => ({ anonymousId: r.anonymousId, customerId: r.customerId, linkAt: Date.parse(r.occurredAt), registrationId: r.id }));
  let candidates = registrations;
  if (ownership.topic !== null) {
    await requestVisitorLinks(sql, registrations.map((link) => ({ ...link, visitorPartition: ownership.partitionOfVisitor(link.anonymousId) })));
    candidates = await takeVisitorLinkRequests(sql, ownership.partitions);
  }
  const impressions = fresh.filter(isVisitorImpression);
  const links = await loadVisitorLinks(sql, [...new Set([...candidates.map((c) => c.anonymousId), ...impressions.map((t) => t.anonymousId!)])]);
  const changedLinks = new Map<string, VisitorLink>();
  const linksChanged = new Set<string>();
  for (const candidate of candidates) {
    const current = links.get(candidate.anonymousId);
    if (!linksEarlier({ at: candidate.linkAt, id: candidate.registrationId }, current && { at: current.linkAt, id: current.registrationId })) continue;
    if (current) linksChanged.add(current.customerId);
    linksChanged.add(candidate.customerId);
    links.set(candidate.anonymousId, candidate);
    changedLinks.set(candidate.anonymousId, candidate);
  }
  for (const t of impressions) {
    const owner = links.get(t.anonymousId!);
    if (owner) linksChanged.add(owner.customerId);
  }
  await saveVisitorLinks(sql, [...changedLinks.values()]);
  await shareOut(sql, ownership, keyed, linksChanged, affected);
}

/**
 * The customers whose visitors changed: re-folded here when this process owns them, or nudged
 * for their owner to re-fold. Takes the nudges other instances left for this one's customers.
 */
async function shareOut(sql: SqlExecutor, ownership: Ownership, keyed: KeyedState, linksChanged: ReadonlySet<string>, affected: Set<string>): Promise<void> {
  for (const id of linksChanged) keyed.invalidateLinks(id);
  const mine = owned(ownership);
  if (mine === null) {
    for (const id of linksChanged) affected.add(id);
    return;
  }
  const partitions = await ownerPartitions(sql, [...linksChanged].filter((id) => !affected.has(id)));
  const nudges = new Map<string, number>();
  for (const id of linksChanged) {
    const partition = partitions.get(id);
    // No row yet: it is being written by this transaction (a registration of this batch).
    if (partition === undefined || partition === null || mine.includes(partition)) affected.add(id);
    else nudges.set(id, partition);
  }
  await nudgeCustomers(sql, nudges);
  for (const id of await takeNudges(sql, mine)) {
    keyed.invalidateLinks(id);
    affected.add(id);
  }
}

/** The bookkeeping of a transaction: settings, T, and the periods from `earliest` (the earliest instant it recorded) on. */
async function finish(sql: SqlExecutor, stored: LifecycleConfig | null, config: LifecycleConfig, watermark: number, scopes: readonly (string | undefined)[], earliest?: number): Promise<void> {
  if (stored === null) await saveConfig(sql, config);
  await saveWatermark(sql, watermark, scopes);
  await savePeriods(sql, watermark, config, earliest);
}

/**
 * Moves T forward without a touchpoint and records what it changes for the customers this
 * process owns: the churns whose deadlines it passed (exactly once: the deadlines move on with
 * the customers' rows in the same transaction) and the customers other instances nudged. T is
 * `to` or, if later, the largest watermark of any instance (its owned customers catch up with
 * the time the others have seen). With the wall clock as `to`, due churns are recorded while no
 * input arrives (SPEC §3).
 */
export async function advanceWatermark(
  sql: SqlExecutor,
  to: number,
  config: LifecycleConfig,
  keyed = new KeyedState(),
  ownership: Ownership = EMBEDDED,
): Promise<Pick<BatchOutcome, 'stageChanges' | 'corrections'>> {
  if (ownership.topic === null) await assertNoProjectors(sql);
  const state = await loadProjectionState(sql);
  assertSameConfig(state.config, config);
  keyed.follow(state.generation);
  if (state.watermark === null) return { stageChanges: [], corrections: 0 };
  const watermark = Math.max(to, state.watermark);
  const affected = new Set(await customersDueBy(sql, watermark, owned(ownership)));
  if (ownership.topic !== null) await linkVisitors(sql, ownership, keyed, [], affected);
  if (affected.size === 0 && watermark === state.watermark) return { stageChanges: [], corrections: 0 };
  const store = sqlEventStore(sql);
  const states = await statesOf(sql, store, keyed, affected, config);
  const { watermark: folded, ...written } = await reproject(sql, store, [...states.values()], [], watermark, config, new Map(), (id) => states.get(id)!.stored?.ownerPartition ?? null);
  await finish(sql, state.config, config, folded, ownership.topic === null ? [undefined] : ownership.partitions.map((p) => watermarkScope(ownership, p)));
  return written;
}

/**
 * Folds customers as of `watermark` (the pure `decide`), then writes in bulk what changed: the
 * lifecycle events, then each read model's part of the customers' changes and of the touchpoints
 * `accepted`.
 */
async function reproject(
  sql: SqlExecutor,
  store: SqlEventStore,
  states: readonly CustomerState[],
  accepted: readonly Touchpoint[],
  watermark: number,
  config: LifecycleConfig,
  causedBy: ReadonlyMap<string, string[]>,
  ownerOf: (customerId: string) => number | null,
): Promise<Pick<BatchOutcome, 'stageChanges' | 'corrections'> & { watermark: number }> {
  await readLinkedImpressions(sql, store, states);
  // Another instance may have committed an impression later than the T this transaction read
  // (visitors' impressions are another partition's): T is at least every event folded, or a
  // customer would be folded without an impression that nothing would make it fold again.
  for (const state of states) for (const { impression } of state.linked!) watermark = Math.max(watermark, impression.at);
  const events: RecordedEvent[] = [];
  const customers: CustomerChange[] = [];
  const stageChanges: LifecycleEvent[] = [];
  let corrections = 0;
  for (const state of states) {
    if (state.fold.empty && state.added.length === 0) continue;
    const decision = decide(state, watermark, causedBy.get(state.customerId) ?? [], ownerOf(state.customerId));
    events.push(...decision.events);
    stageChanges.push(...decision.appended);
    if (decision.corrected) corrections += 1;
    if (decision.change) customers.push(decision.change);
  }
  await store.insert(events);
  for (const readModel of READ_MODELS) await readModel.write(sql, { touchpoints: accepted, customers }, config);
  return { stageChanges, corrections, watermark };
}

const REPLAY_CHUNK = 5_000;
const REPLAY_PAGE = 20_000;

/**
 * Rebuilds every read model from the event streams alone (SPEC §6.3), with `config`; lifecycle
 * events that the settings change are corrected in the streams. Run while no projector writes.
 */
export async function replay(
  db: SqlDatabase,
  config: LifecycleConfig,
  onProgress?: (customersDone: number, customers: number) => void,
): Promise<{ customers: number; touchpoints: number; stageChanges: number }> {
  // Its scan of the events pages by position: with no statistics, each page is a sort.
  await db.refreshStatistics?.();
  return db.transaction(async (sql) => {
    // Which partition owns each customer (Kafka mode) survives the rebuild: its owner looks for
    // its due customers by it.
    const owners = await sql.query<{ customer_id: string; owner_partition: number | null }>('SELECT customer_id, owner_partition FROM customers');
    const customers = new Map<string, number | null>(owners.map((r) => [r.customer_id, r.owner_partition]));
    await sql.exec(`TRUNCATE ${READ_MODEL_TABLES.join(', ')}`);
    await saveGeneration(sql, randomUUID());
    const store = sqlEventStore(sql);
    const links = new Map<string, VisitorLink>();
    let watermark = Number.NEGATIVE_INFINITY;
    let earliest = Number.POSITIVE_INFINITY;
    // One scan of the touchpoints, page by page: T, the customers and the visitors' owners, and
    // the read models of touchpoints. The customers' events are read once more, customer by
    // customer, below; only a page is held at a time.
    let touchpoints = 0;
    for await (const page of store.readAllOfType(TOUCHPOINT_RECORDED, REPLAY_PAGE)) {
      const recorded = page.map((event) => event.data as Touchpoint);
      touchpoints += recorded.length;
      for (const t of recorded) {
        const at = Date.parse(t.occurredAt);
        watermark = Math.max(watermark, at);
        earliest = Math.min(earliest, at);
        if (t.customerId === undefined) continue;
        if (!customers.has(t.customerId)) customers.set(t.customerId, null);
        if (!isLinkingRegistration(t)) continue;
        const current = links.get(t.anonymousId);
        if (linksEarlier({ at, id: t.id }, current && { at: current.linkAt, id: current.registrationId })) {
          links.set(t.anonymousId, { anonymousId: t.anonymousId, customerId: t.customerId, linkAt: at, registrationId: t.id });
        }
      }
      for (const readModel of READ_MODELS) await readModel.write(sql, { touchpoints: recorded, customers: [] }, config);
    }
    await saveVisitorLinks(sql, [...links.values()]);
    for (const readModel of READ_MODELS) await readModel.replayed?.(sql);
    let stageChanges = 0;
    const all = [...customers.keys()];
    for (let i = 0; i < all.length; i += REPLAY_CHUNK) {
      const chunk = all.slice(i, i + REPLAY_CHUNK);
      const states = await statesOf(sql, store, new KeyedState(), chunk, config);
      stageChanges += (await reproject(sql, store, [...states.values()], [], watermark, config, new Map(), (id) => customers.get(id) ?? null)).stageChanges.length;
      onProgress?.(i + chunk.length, all.length);
    }
    if (touchpoints > 0) await finish(sql, null, config, watermark, [undefined], earliest);
    return { customers: customers.size, touchpoints, stageChanges };
  });
}
