import type { SqlExecutor } from '@lifecycle/sql';
import { ConcurrencyError, NO_STREAM, type AppendRequest, type EventStore, type NewEvent, type RecordedEvent } from './event-store.js';

/*
 * The SQL store's `lifecycle_events` table is a transactional outbox: the projector appends to
 * it in the transaction that also writes the read models and the Kafka offsets, and
 * `mirrorEvents` copies it to another `EventStore` (EventStoreDB in production), page by page,
 * saving a checkpoint (`event_mirror_checkpoints`) after each page.
 *
 * Why a checkpoint never passes an event that commits later. Writers run concurrently, so
 * `position`, drawn at insert, is not commit order: position 100 may commit after 101. Each event
 * carries the id of its writing transaction (`tx_id`, migration 0003); the mirror reads in
 * (tx_id, position) order after its checkpoint, and only below the oldest transaction in flight
 * (`pg_snapshot_xmin`) of the page's own statement. Every transaction below that horizon has
 * ended, so its events are all visible or never will be, and a transaction yet to commit has an
 * id at or above it: nothing can appear behind a checkpoint later. The cost: one transaction left
 * open holds the mirror back, however much commits after it — any transaction that has written,
 * in any database of the server, prepared ones included (so the source is a database, never a
 * transaction the mirror would hold open itself). The mirror reports it (`onWait`, the summary's
 * `waitingFor`) and catches up once it ends.
 *
 * A checkpoint saved before migration 0003 holds a position only: every event up to it was
 * copied, positions being commit order then. It is kept as a floor: the events above it are read
 * in commit order, and it becomes a pair only once that order has passed the last copied event
 * (a run killed before reads those pages again). Not before: old rows all carry the migrating
 * transaction's id, but one that had its id earlier may have appended after the migration, so an
 * uncopied event can sort below copied ones.
 *
 * Exactly once, across crashes. A page is appended, then its checkpoint saved; a mirror killed in
 * between appends the page again, which writes nothing: the target's revisions equal the
 * source's, each request expects the revision before its first event, and the port recognises
 * the same event ids after the same revision (`shouldAppend`). A repeat that overlaps the target
 * only in part is settled stream by stream. Anything else in the target is a
 * `MirrorDivergedError` naming the stream and both revisions: the mirror stops, it never skips.
 * So does a stream whose revisions do not follow commit order (a transaction that wrote before
 * another committed, then appended after that one's event), which one writer per stream rules out.
 *
 * Order in the target: each stream keeps its revisions; streams within a page may be written
 * concurrently (the EventStoreDB adapter does), so `$all` follows the source only page by page.
 */

/**
 * How far a mirror got: the last event it copied, in commit order. `txId` is that event's
 * writing transaction (xid8, in decimal: compare as BigInt); null in a checkpoint saved before
 * migration 0003, which means every event up to `position` was copied.
 */
export interface MirrorCheckpoint {
  readonly txId: string | null;
  readonly position: number;
}

/** An event's place in commit order. */
type Key = MirrorCheckpoint & { readonly txId: string };

const START: Key = { txId: '0', position: 0 };

/** The checkpoint of a mirror that has copied nothing. */
export const MIRROR_START: MirrorCheckpoint = START;

export interface MirrorOptions {
  /** Names the checkpoint: one per target (mirroring the same source to two targets takes two names). */
  readonly name: string;
  /** Events read, and appended, per page; default 1000. */
  readonly batchSize?: number;
  /** After catching up, keep polling for new events until `signal` aborts. */
  readonly follow?: boolean;
  /** Pause between polls once caught up, in follow mode; default 1000 ms. */
  readonly pollIntervalMs?: number;
  /** Stops the mirror: the page in flight is appended and its checkpoint saved first. */
  readonly signal?: AbortSignal;
  /** Attempts after a retriable failure of a page's append (the target unavailable, a racing writer); default 5. */
  readonly retries?: number;
  /** Pause before the first retry, doubled for each next one (at most 30 s), with jitter; default 500 ms. */
  readonly retryDelayMs?: number;
  /** Called once a page is appended and its checkpoint saved. */
  readonly onPage?: (page: MirroredPage) => void;
  /** Called before a retry, with the error that caused it. */
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Called once per transaction in flight that has held committed events back for `reportWaitAfterMs`. */
  readonly onWait?: (wait: MirrorWait) => void;
  /** Default 10 s: under load, some transaction is always in flight for a few milliseconds. */
  readonly reportWaitAfterMs?: number;
}

export interface MirroredPage {
  /** The checkpoint before and after the page (the same while a pre-0003 checkpoint stays a floor). */
  readonly from: MirrorCheckpoint;
  readonly to: MirrorCheckpoint;
  readonly events: number;
  readonly streams: number;
}

/** Committed events wait for an older transaction to end before the mirror may copy them. */
export interface MirrorWait {
  /** The oldest transaction in flight (xid8, in decimal). */
  readonly transaction: string;
  /** Its backend in pg_stat_activity; null if not found there (a prepared transaction, or a session this role may not see). */
  readonly pid: number | null;
  /** Since the mirror first found it holding events back. */
  readonly waitedMs: number;
}

export interface MirrorSummary {
  readonly name: string;
  /** Events copied in this run (those the target already held, after a crash, included). */
  readonly events: number;
  /** Distinct streams these events belong to. */
  readonly streams: number;
  readonly pages: number;
  /** The checkpoint when the run started and when it ended. */
  readonly from: MirrorCheckpoint;
  readonly checkpoint: MirrorCheckpoint;
  /** The transaction in flight that committed events still waited for when the run ended; null if none did. */
  readonly waitingFor: string | null;
}

/**
 * The target stream holds something else than the source at the revisions being mirrored (another
 * writer), or less than the source's next events follow (the target was reset, or the checkpoint
 * belongs to another target). Not retriable: someone has to look.
 */
export class MirrorDivergedError extends Error {
  override readonly name = 'MirrorDivergedError';
  readonly retriable = false;
  constructor(
    readonly streamId: string,
    /** The revision the source's events follow. */
    readonly expectedRevision: number,
    /** The revision of the target stream's last event (`NO_STREAM` if it does not exist). */
    readonly targetRevision: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const DEFAULT_BATCH_SIZE = 1_000;
const DEFAULT_POLL_INTERVAL_MS = 1_000;
const DEFAULT_RETRIES = 5;
const DEFAULT_RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 30_000;
const DEFAULT_REPORT_WAIT_AFTER_MS = 10_000;

/**
 * What has been copied: every event up to `after` in commit order and, from a pre-0003
 * checkpoint until commit order has passed the last event it covers, every position up to `floor`.
 */
interface Progress {
  readonly after: Key;
  readonly legacy?: { readonly floor: number; readonly lastCopied: Key };
}

interface SourceRow {
  tx_id: string;
  position: number | string;
  stream_id: string;
  revision: number;
  event_id: string;
  event_type: string;
  data: unknown;
}

/** A page's rows carry its statement's horizon; an empty page is one row of it with no event. */
type PageRow = { horizon: string; held_back: boolean } & (SourceRow | { [K in keyof SourceRow]: null });

/**
 * Copies lifecycle_events after the checkpoint `options.name` to `target`, page by page, saving
 * the checkpoint after each page; with `follow`, keeps going until `signal` aborts. `source` is a
 * database, not a transaction (see above). Resolves with what it copied; rejects with
 * `MirrorDivergedError` when a target stream holds other events.
 */
export async function mirrorEvents(source: SqlExecutor, target: EventStore, options: MirrorOptions): Promise<MirrorSummary> {
  const { name, signal } = options;
  if (name.trim() === '') throw new RangeError('a mirror needs a name for its checkpoint');
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a whole number ≥ 1; got ${batchSize}`);
  const reportWaitAfterMs = options.reportWaitAfterMs ?? DEFAULT_REPORT_WAIT_AFTER_MS;

  const from = await loadCheckpoint(source, name);
  const start = await progressFrom(source, from);
  let progress = start;
  let checkpoint = from;
  let waiting: Waiting | undefined;
  let events = 0;
  let pages = 0;
  while (!signal?.aborted) {
    const { rows, horizon, heldBack } = await readPage(source, progress, batchSize);
    const requests = appendRequestsOf(rows);
    if (rows.length > 0) {
      const appended = await withRetries(() => appendPage(target, requests, name), options);
      if (!appended) break; // stopped while waiting to retry; the page is appended next time
    }
    const caughtUp = rows.length < batchSize;
    const next = advance(progress, rows.length > 0 ? keyOf(rows[rows.length - 1]!) : undefined, caughtUp ? BigInt(horizon) : undefined);
    const before = checkpoint;
    if (next.legacy === undefined && (rows.length > 0 || progress.legacy !== undefined)) {
      await saveCheckpoint(source, name, next.after);
      checkpoint = next.after;
    }
    progress = next;
    if (rows.length > 0) {
      options.onPage?.({ from: before, to: checkpoint, events: rows.length, streams: requests.length });
      events += rows.length;
      pages += 1;
    }
    waiting = caughtUp && heldBack ? await noteWait(source, waiting, horizon, reportWaitAfterMs, options.onWait) : undefined;
    if (!caughtUp) continue;
    if (!options.follow) break;
    await pause(options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, signal);
  }
  const streams = await source.query<{ n: number | string }>(
    `SELECT count(DISTINCT stream_id) AS n FROM lifecycle_events
     WHERE (tx_id, position) > ($1::xid8, $2) AND (tx_id, position) <= ($3::xid8, $4) AND position > $5`,
    [start.after.txId, start.after.position, progress.after.txId, progress.after.position, start.legacy?.floor ?? 0],
  );
  return { name, events, streams: Number(streams[0]?.n ?? 0), pages, from, checkpoint, waitingFor: waiting?.transaction ?? null };
}

/** Where a run starts from the checkpoint `from`. */
async function progressFrom(source: SqlExecutor, from: MirrorCheckpoint): Promise<Progress> {
  if (from.txId !== null) return { after: { txId: from.txId, position: from.position } };
  const rows = await source.query<{ tx_id: string; position: number | string }>(
    // e.tx_id, the xid8: a bare tx_id would name the text column, which puts 999 after 1000.
    'SELECT e.tx_id::text AS tx_id, e.position FROM lifecycle_events e WHERE e.position <= $1 ORDER BY e.tx_id DESC, e.position DESC LIMIT 1',
    [from.position],
  );
  // No event below the floor: none was copied.
  return rows.length === 0 ? { after: START } : { after: START, legacy: { floor: from.position, lastCopied: keyOf(rows[0]!) } };
}

/** `progress` once a page ending at `last` is copied; `caughtUpBelow`: the horizon, if the page was the last below it. */
function advance(progress: Progress, last: Key | undefined, caughtUpBelow: bigint | undefined): Progress {
  const after = last ?? progress.after;
  const { legacy } = progress;
  if (legacy === undefined || compareKeys(after, legacy.lastCopied) >= 0) return { after };
  // Every event that sorts before the last copied one, and is not below the floor, has a
  // transaction below the horizon, so it was read, and none can come.
  if (caughtUpBelow !== undefined && caughtUpBelow > BigInt(legacy.lastCopied.txId)) return { after: legacy.lastCopied };
  return { after, legacy };
}

/**
 * Up to `batchSize` events after `progress` in commit order, below the horizon of the same
 * statement's snapshot, with that horizon and whether committed events wait above it.
 */
async function readPage(source: SqlExecutor, progress: Progress, batchSize: number) {
  const rows = await source.query<PageRow>(
    `WITH h AS (
       -- Ordered by tx_id, so that it is planned as one index probe, never as a scan of the table.
       SELECT x.xmin, (SELECT tx_id FROM lifecycle_events WHERE tx_id >= x.xmin AND position > $3 ORDER BY tx_id LIMIT 1) IS NOT NULL AS held_back
       FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) x)
     SELECT h.xmin::text AS horizon, h.held_back,
            e.tx_id::text AS tx_id, e.position, e.stream_id, e.revision, e.event_id, e.event_type, e.data
     FROM h LEFT JOIN LATERAL (
       SELECT * FROM lifecycle_events
       WHERE (tx_id, position) > ($1::xid8, $2) AND position > $3 AND tx_id < h.xmin
       ORDER BY tx_id, position LIMIT $4) e ON true
     ORDER BY e.tx_id, e.position`,
    [progress.after.txId, progress.after.position, progress.legacy?.floor ?? 0, batchSize],
  );
  const { horizon, held_back: heldBack } = rows[0]!;
  return { rows: rows.filter((row): row is PageRow & SourceRow => row.tx_id !== null), horizon, heldBack };
}

interface Waiting {
  readonly transaction: string;
  readonly since: number;
  readonly reported: boolean;
}

/** Follows the transaction that holds events back, and reports it once it has done so for `afterMs`. */
async function noteWait(
  source: SqlExecutor,
  waiting: Waiting | undefined,
  transaction: string,
  afterMs: number,
  onWait: MirrorOptions['onWait'],
): Promise<Waiting> {
  const now = Date.now();
  const current = waiting?.transaction === transaction ? waiting : { transaction, since: now, reported: false };
  if (current.reported || onWait === undefined || now - current.since < afterMs) return current;
  const backend = await source.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE backend_xid = $1::xid8::xid', [transaction]);
  onWait({ transaction, pid: backend[0]?.pid ?? null, waitedMs: now - current.since });
  return { ...current, reported: true };
}

/** The checkpoint of the mirror `name`; `MIRROR_START` before its first run. */
export async function loadCheckpoint(source: SqlExecutor, name: string): Promise<MirrorCheckpoint> {
  const rows = await source.query<{ tx_id: string | null; position: number | string }>(
    'SELECT tx_id::text AS tx_id, position FROM event_mirror_checkpoints WHERE name = $1',
    [name],
  );
  return rows.length === 0 ? MIRROR_START : { txId: rows[0]!.tx_id, position: positionOf(rows[0]!) };
}

async function saveCheckpoint(source: SqlExecutor, name: string, key: Key): Promise<void> {
  // Never backwards: a second mirror of the same name, lagging behind, cannot undo the first's work.
  await source.query(
    `INSERT INTO event_mirror_checkpoints AS c (name, tx_id, position) VALUES ($1, $2::xid8, $3)
     ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()
     WHERE c.tx_id IS NULL OR (c.tx_id, c.position) < (EXCLUDED.tx_id, EXCLUDED.position)`,
    [name, key.txId, key.position],
  );
}

const keyOf = (row: { tx_id: string; position: number | string }): Key => ({ txId: row.tx_id, position: positionOf(row) });

function compareKeys(a: Key, b: Key): number {
  const byTx = BigInt(a.txId) - BigInt(b.txId);
  return byTx !== 0n ? (byTx < 0n ? -1 : 1) : a.position - b.position;
}

function positionOf(row: { position: number | string }): number {
  const position = Number(row.position);
  if (!Number.isSafeInteger(position)) throw new RangeError(`position ${String(row.position)} exceeds what a number holds`);
  return position;
}

/** One request per stream of the page, expecting the revision before the stream's first event in it. */
function appendRequestsOf(rows: readonly SourceRow[]): AppendRequest[] {
  const byStream = new Map<string, { expectedRevision: number; events: NewEvent[] }>();
  for (const row of rows) {
    const event: NewEvent = { id: row.event_id, type: row.event_type, data: row.data };
    const request = byStream.get(row.stream_id);
    if (request === undefined) {
      byStream.set(row.stream_id, { expectedRevision: row.revision - 1, events: [event] });
      continue;
    }
    const previous = request.expectedRevision + request.events.length;
    if (row.revision !== previous + 1) {
      // A stream's revisions follow commit order while it has one writer at a time (see above);
      // anything else is not a table this mirror can copy faithfully.
      throw new Error(
        `lifecycle_events holds revision ${row.revision} of stream ${row.stream_id} at position ${row.position}, ` +
          `right after revision ${previous} in commit order; the mirror copies each stream's revisions in commit order and stops here`,
      );
    }
    request.events.push(event);
  }
  return [...byStream].map(([streamId, request]) => ({ streamId, ...request }));
}

/**
 * Appends a page's requests. Repeats (a page appended before a crash) write nothing; when some
 * stream is not where the page expects it, every stream is settled on its own.
 */
async function appendPage(target: EventStore, requests: readonly AppendRequest[], name: string): Promise<void> {
  try {
    await target.append(requests);
    return;
  } catch (error) {
    if (!(error instanceof ConcurrencyError)) throw error;
  }
  for (const request of requests) await appendOrSettle(target, request, name);
}

async function appendOrSettle(target: EventStore, request: AppendRequest, name: string): Promise<void> {
  let conflict: ConcurrencyError;
  try {
    await target.append([request]);
    return;
  } catch (error) {
    if (!(error instanceof ConcurrencyError)) throw error;
    conflict = error;
  }
  const { streamId, expectedRevision, events } = request;
  const held = (await target.readStreams([streamId])).get(streamId) ?? [];
  const targetRevision = held.length === 0 ? NO_STREAM : held[held.length - 1]!.revision;
  const byRevision = new Map<number, RecordedEvent>(held.map((e) => [e.revision, e]));
  const diverged = (detail: string) =>
    new MirrorDivergedError(
      streamId,
      expectedRevision,
      targetRevision,
      `target stream ${streamId} diverged from the source: the source's next events follow revision ${expectedRevision}, ` +
        `the target is at revision ${targetRevision}; ${detail}. The mirror "${name}" stops rather than skip or overwrite events.`,
      { cause: conflict },
    );
  if (targetRevision < expectedRevision) {
    throw diverged(
      `revisions ${targetRevision + 1} to ${expectedRevision} are missing from the target (was it reset, or is checkpoint "${name}" ` +
        "another target's? A new mirror name, or deleting its row in event_mirror_checkpoints, copies every stream from the start)",
    );
  }
  for (let i = 0; i < events.length; i++) {
    const revision = expectedRevision + 1 + i;
    if (revision > targetRevision) {
      // The target holds the page's first i events of this stream: append the rest after them.
      await target.append([{ streamId, expectedRevision: revision - 1, events: events.slice(i) }]);
      return;
    }
    const there = byRevision.get(revision);
    const mine = events[i]!;
    if (there === undefined) throw diverged(`the target has no event at revision ${revision}`);
    if (there.id !== mine.id) {
      throw diverged(`at revision ${revision} the target holds event ${there.id} (${there.type}), the source event ${mine.id} (${mine.type}); something else wrote to the target stream`);
    }
  }
  // Every event of the request is already there: a repeat after a crash.
}

/** Runs `work`, retrying errors marked `retriable` with backoff; false when `signal` stopped it meanwhile. */
async function withRetries(work: () => Promise<void>, options: MirrorOptions): Promise<boolean> {
  const retries = options.retries ?? DEFAULT_RETRIES;
  const base = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      await work();
      return true;
    } catch (error) {
      if ((error as { retriable?: unknown } | null)?.retriable !== true || attempt > retries) throw error;
      const delay = Math.round(Math.min(MAX_RETRY_DELAY_MS, base * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
      options.onRetry?.(error, attempt, delay);
      await pause(delay, options.signal);
      if (options.signal?.aborted) return false;
    }
  }
}

/** Waits `ms`, or less if `signal` aborts meanwhile. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
