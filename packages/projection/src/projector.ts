import { isDeepStrictEqual } from 'node:util';
import { TOUCHPOINT_RECORDED, type LifecycleConfig, type LifecycleEvent, type Touchpoint, type TouchpointOf } from '@lifecycle/contracts';
import { CohortCells, foldCustomer, historyChange, linksEarlier, timed, type LinkedImpression } from '@lifecycle/domain';
import { sqlEventStore, type AppendRequest, type EventStore, type RecordedEvent } from '@lifecycle/eventstore';
import {
  READ_MODEL_TABLES,
  applyCohortDelta,
  customersDueBy,
  findTouchpoints,
  linksOfCustomers,
  loadCustomers,
  loadProjectionState,
  loadVisitorLinks,
  saveCustomers,
  saveStageChanges,
  saveProjectionState,
  saveTouchpointIds,
  saveVisitorLinks,
  type StoredCustomer,
  type VisitorLink,
} from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { StreamCache } from './stream-cache.js';
import { injectStoreFault } from './test-faults.js';
import { customerStream, lifecycleEvents, readCustomerStream, streamOf, touchpointEvent, visitorStream } from './streams.js';

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
 * Splits a batch into new touchpoints, redeliveries and id conflicts. The first copy to arrive
 * wins: each copy is compared with the recorded one, or, for an id new to the store, with the
 * batch's first copy.
 */
async function sortOutKnown(sql: SqlExecutor, batch: readonly Touchpoint[]) {
  const recorded = await findTouchpoints(sql, [...new Set(batch.map((t) => t.id))]);
  // As stored (a JSON round trip): only computed for the ids that come again.
  const asStored = (t: Touchpoint) => JSON.parse(JSON.stringify(t)) as unknown;
  const firstInBatch = new Map<string, Touchpoint>();
  const fresh: Touchpoint[] = [];
  const duplicates: Touchpoint[] = [];
  const conflicts: Touchpoint[] = [];
  for (const touchpoint of batch) {
    const first = firstInBatch.get(touchpoint.id);
    if (!recorded.has(touchpoint.id) && first === undefined) {
      firstInBatch.set(touchpoint.id, touchpoint);
      fresh.push(touchpoint);
      continue;
    }
    const winner = recorded.has(touchpoint.id) ? recorded.get(touchpoint.id) : asStored(first!);
    (isDeepStrictEqual(asStored(touchpoint), winner) ? duplicates : conflicts).push(touchpoint);
  }
  return { fresh, duplicates, conflicts };
}

// Projector instances share the read models (cohort cells, the watermark, customers linked
// across partitions): their transactions take one lock, so none can overwrite what another
// wrote in between. Folding is cheap next to the I/O, so little parallelism is lost.
const PROJECTION_LOCK = 0x6c69666563;
const serialize = (sql: SqlExecutor) => sql.query('SELECT pg_advisory_xact_lock($1)', [PROJECTION_LOCK]);

const isVisitorImpression = (t: Touchpoint) => t.type === 'ad_impression' && t.customerId === undefined;
const isLinkingRegistration = (t: Touchpoint): t is TouchpointOf<'registration'> & { anonymousId: string } =>
  t.type === 'registration' && t.anonymousId !== undefined;

/**
 * Projects a batch of valid touchpoints in one transaction: records the new ones in their
 * streams, re-folds every customer they (or the passing of churn deadlines) affect, appends the
 * lifecycle events that changed, and updates the read models. The result depends only on the
 * set of touchpoints ever projected, not on batching or order (SPEC §6.1). A `cache` kept
 * across batches spares re-reading the streams' older events.
 */
export async function projectBatch(sql: SqlExecutor, batch: readonly Touchpoint[], config: LifecycleConfig, cache = new StreamCache()): Promise<BatchOutcome> {
  await serialize(sql);
  const state = await loadProjectionState(sql);
  assertSameConfig(state.config, config);
  const { fresh, duplicates, conflicts } = await sortOutKnown(sql, batch);
  const outcome: BatchOutcome = { accepted: fresh, duplicates, conflicts, stageChanges: [], corrections: 0 };
  if (fresh.length === 0) return outcome;
  await injectStoreFault(sql, fresh);
  let watermark = state.watermark ?? Number.NEGATIVE_INFINITY;
  for (const t of fresh) watermark = Math.max(watermark, Date.parse(t.occurredAt));

  const affected = new Set<string>();
  const causedBy = new Map<string, string[]>();
  for (const t of fresh) {
    if (t.customerId === undefined) continue;
    affected.add(t.customerId);
    causedBy.set(t.customerId, [...(causedBy.get(t.customerId) ?? []), t.id]);
  }

  // Identity (SPEC §5): a registration may take a visitor; the visitor's impressions follow it.
  const linking = fresh.filter(isLinkingRegistration);
  const visitorIds = new Set([...linking, ...fresh.filter(isVisitorImpression)].map((t) => t.anonymousId!));
  const links = await loadVisitorLinks(sql, [...visitorIds]);
  const changedLinks = new Map<string, VisitorLink>();
  for (const registration of linking) {
    const candidate = { at: Date.parse(registration.occurredAt), id: registration.id };
    const current = links.get(registration.anonymousId);
    if (!linksEarlier(candidate, current && { at: current.linkAt, id: current.registrationId })) continue;
    if (current) affected.add(current.customerId);
    const link = { anonymousId: registration.anonymousId, customerId: registration.customerId, linkAt: candidate.at, registrationId: registration.id };
    links.set(link.anonymousId, link);
    changedLinks.set(link.anonymousId, link);
  }
  for (const t of fresh.filter(isVisitorImpression)) {
    const owner = links.get(t.anonymousId!);
    if (owner) affected.add(owner.customerId);
  }
  await saveVisitorLinks(sql, [...changedLinks.values()]);
  // Churn happens when nothing happens: customers whose deadline the watermark passed.
  for (const id of await customersDueBy(sql, watermark)) affected.add(id);

  const store = sqlEventStore(sql);
  const byStream = new Map<string, Touchpoint[]>();
  for (const t of fresh) byStream.set(streamOf(t), [...(byStream.get(streamOf(t)) ?? []), t]);
  const customerIds = [...affected];
  const ownerLinks = await linksOfCustomers(sql, customerIds);
  const streams = await cache.read(store, [
    ...new Set([...byStream.keys(), ...customerIds.map(customerStream), ...ownerLinks.map((l) => visitorStream(l.anonymousId))]),
  ]);

  const requests: AppendRequest[] = [...byStream].map(([streamId, touchpoints]) => ({
    streamId,
    expectedRevision: (streams.get(streamId)?.length ?? 0) - 1,
    events: touchpoints.map(touchpointEvent),
  }));
  await store.append(requests);
  const ids: { id: string; stream_id: string; revision: number }[] = [];
  for (const request of requests) {
    const stream = streams.get(request.streamId) ?? [];
    request.events.forEach((event, i) => {
      const revision = request.expectedRevision + 1 + i;
      stream.push({ ...event, streamId: request.streamId, revision });
      ids.push({ id: (event.data as Touchpoint).id, stream_id: request.streamId, revision });
    });
    streams.set(request.streamId, stream);
  }
  await saveTouchpointIds(sql, ids);

  const reprojected = await reprojectCustomers(sql, store, customerIds, streams, ownerLinks, watermark, config, causedBy);
  await saveProjectionState(sql, { watermark, config });
  return { ...outcome, ...reprojected };
}

/**
 * Moves T forward without a touchpoint (the wall clock passing while no input arrives) and
 * records the churns whose deadlines it passed, exactly once: the deadlines move on with the
 * customers' rows in the same transaction. Nothing happens unless `to` is past the watermark.
 */
export async function advanceWatermark(
  sql: SqlExecutor,
  to: number,
  config: LifecycleConfig,
  cache = new StreamCache(),
): Promise<Pick<BatchOutcome, 'stageChanges' | 'corrections'>> {
  await serialize(sql);
  const state = await loadProjectionState(sql);
  assertSameConfig(state.config, config);
  if (state.watermark === null || to <= state.watermark) return { stageChanges: [], corrections: 0 };
  const customerIds = await customersDueBy(sql, to);
  const ownerLinks = await linksOfCustomers(sql, customerIds);
  const store = sqlEventStore(sql);
  const streams = await cache.read(store, [...customerIds.map(customerStream), ...ownerLinks.map((l) => visitorStream(l.anonymousId))]);
  const reprojected = await reprojectCustomers(sql, store, customerIds, streams, ownerLinks, to, config, new Map());
  await saveProjectionState(sql, { watermark: to, config });
  return reprojected;
}

/**
 * Folds customers from their streams as of `watermark`, appends what changed in their lifecycle
 * and writes their rows and cohort contributions. `streams` holds their streams and those of
 * the visitors they own.
 */
async function reprojectCustomers(
  sql: SqlExecutor,
  store: EventStore,
  customerIds: readonly string[],
  streams: ReadonlyMap<string, RecordedEvent[]>,
  ownerLinks: readonly VisitorLink[],
  watermark: number,
  config: LifecycleConfig,
  causedBy: ReadonlyMap<string, string[]>,
): Promise<Pick<BatchOutcome, 'stageChanges' | 'corrections'>> {
  const stored = await loadCustomers(sql, customerIds);
  const linksByCustomer = new Map<string, VisitorLink[]>();
  for (const link of ownerLinks) linksByCustomer.set(link.customerId, [...(linksByCustomer.get(link.customerId) ?? []), link]);

  const delta = new CohortCells();
  const rows: StoredCustomer[] = [];
  const requests: AppendRequest[] = [];
  const stageChanges: LifecycleEvent[] = [];
  const timelines = new Map<string, readonly LifecycleEvent[]>();
  let corrections = 0;
  for (const customerId of customerIds) {
    const streamId = customerStream(customerId);
    const events = streams.get(streamId) ?? [];
    const { touchpoints, lifecycle } = readCustomerStream(events);
    if (touchpoints.length === 0) continue;
    const linkedImpressions: LinkedImpression[] = [];
    for (const link of linksByCustomer.get(customerId) ?? []) {
      for (const event of streams.get(visitorStream(link.anonymousId)) ?? []) {
        if (event.type === TOUCHPOINT_RECORDED) linkedImpressions.push({ impression: timed(event.data as Touchpoint), linkAt: link.linkAt });
      }
    }
    const snapshot = foldCustomer({ customerId, touchpoints: touchpoints.map(timed), linkedImpressions }, watermark, config);
    const change = historyChange(lifecycle, snapshot.timeline);
    if (change.retract.length > 0 || change.append.length > 0) {
      const revision = events.length - 1;
      requests.push({ streamId, expectedRevision: revision, events: lifecycleEvents(streamId, revision, change.retract, causedBy.get(customerId) ?? [], change.append) });
      stageChanges.push(...change.append);
      if (change.retract.length > 0) corrections += 1;
    }
    // A customer without a row is new or being replayed: its history is not recorded yet either.
    if (change.retract.length > 0 || change.append.length > 0 || !stored.has(customerId)) timelines.set(customerId, snapshot.timeline);
    const old = stored.get(customerId)?.cohortFacts;
    if (old) delta.addCustomer(old, -1);
    if (snapshot.cohortFacts) delta.addCustomer(snapshot.cohortFacts);
    rows.push({ row: snapshot.row, cohortFacts: snapshot.cohortFacts, nextDeadline: snapshot.nextDeadline });
  }
  await store.append(requests);
  await saveCustomers(sql, rows);
  await saveStageChanges(sql, timelines);
  await applyCohortDelta(sql, delta, config);
  return { stageChanges, corrections };
}

const REPLAY_CHUNK = 5_000;

/**
 * Rebuilds every read model from the event streams alone (SPEC §6.3), with `config`; lifecycle
 * events that the settings change are corrected in the streams.
 */
export async function replay(
  db: SqlDatabase,
  config: LifecycleConfig,
  onProgress?: (customersDone: number, customers: number) => void,
): Promise<{ customers: number; touchpoints: number; stageChanges: number }> {
  return db.transaction(async (sql) => {
    await serialize(sql);
    await sql.exec(`TRUNCATE ${READ_MODEL_TABLES.join(', ')}`);
    const store = sqlEventStore(sql);
    const ids: { id: string; stream_id: string; revision: number }[] = [];
    const links = new Map<string, VisitorLink>();
    const customers = new Set<string>();
    let watermark = Number.NEGATIVE_INFINITY;
    for await (const page of store.readAllOfType(TOUCHPOINT_RECORDED)) {
      for (const event of page) {
        const t = event.data as Touchpoint;
        ids.push({ id: t.id, stream_id: event.streamId, revision: event.revision });
        watermark = Math.max(watermark, Date.parse(t.occurredAt));
        if (t.customerId !== undefined) customers.add(t.customerId);
        if (isLinkingRegistration(t)) {
          const candidate = { at: Date.parse(t.occurredAt), id: t.id };
          const current = links.get(t.anonymousId);
          if (linksEarlier(candidate, current && { at: current.linkAt, id: current.registrationId })) {
            links.set(t.anonymousId, { anonymousId: t.anonymousId, customerId: t.customerId, linkAt: candidate.at, registrationId: t.id });
          }
        }
      }
    }
    await saveTouchpointIds(sql, ids);
    await saveVisitorLinks(sql, [...links.values()]);
    let stageChanges = 0;
    const all = [...customers];
    for (let i = 0; i < all.length; i += REPLAY_CHUNK) {
      const chunk = all.slice(i, i + REPLAY_CHUNK);
      const ownerLinks = await linksOfCustomers(sql, chunk);
      const streams = await store.readStreams([...chunk.map(customerStream), ...ownerLinks.map((l) => visitorStream(l.anonymousId))]);
      stageChanges += (await reprojectCustomers(sql, store, chunk, streams, ownerLinks, watermark, config, new Map())).stageChanges.length;
      onProgress?.(i + chunk.length, all.length);
    }
    if (ids.length > 0) await saveProjectionState(sql, { watermark, config });
    return { customers: customers.size, touchpoints: ids.length, stageChanges };
  });
}
