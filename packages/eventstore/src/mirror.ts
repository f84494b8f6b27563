import type { SqlExecutor } from '@lifecycle/sql';
import { ConcurrencyError, NO_STREAM, type AppendRequest, type EventStore, type NewEvent, type RecordedEvent } from './event-store.js';

/*
 * The SQL store's `lifecycle_events` table is a transactional outbox: the projector appends to
 * it in the PostgreSQL transaction that also writes the read models and the Kafka offsets, and
 * `mirrorEvents` copies it, in `position` order, to another `EventStore` (EventStoreDB in
 * production). How far a mirror got is a checkpoint row (`event_mirror_checkpoints`, migration
 * `0002_event_mirror_checkpoints` of `eventStoreMigrations`), saved after each page is appended.
 *
 * Exactly once, across crashes. A page is appended, then its checkpoint saved; a mirror killed
 * in between appends the page again on restart. That repeat writes nothing: the target's revisions
 * equal the source's (every stream is mirrored from revision 0), each request expects the
 * revision before its first event, and the port recognises the same event ids after the same
 * revision (`shouldAppend`). A repeat that only partly overlaps what the target holds (the
 * target got part of a page, or the page grew since, when it was the last one) is settled stream
 * by stream: the events already there are checked by id, the rest appended after them. Anything
 * else in the target — another event at a revision, or fewer events than the page follows — is
 * a `MirrorDivergedError` naming the stream and both revisions: the mirror stops, it never skips.
 *
 * Why `position` order is commit order, so that a checkpoint never passes an event committed
 * later with a smaller position (which would be lost: `position > checkpoint` would never see
 * it). `position` is a bigserial, handed out at insert time, and rows become visible at commit
 * time; with two writers in flight, the one holding the larger positions could commit first.
 * Here that cannot happen, because every writer of lifecycle_events takes the projector's
 * transaction-scoped advisory lock (`pg_advisory_xact_lock(PROJECTION_LOCK)`, projector.ts) as
 * its first statement, before it draws any position, and holds it until it commits or rolls
 * back: `projectBatch` (the embedded `ingest` and the Kafka projector, each in a transaction),
 * `advanceWatermark` (in a transaction) and `replay` (its own transaction). Nothing else inserts
 * into, updates or deletes from lifecycle_events (the API and `export` only read it). So the
 * transactions that draw positions are serialised: a reader's snapshot holds every position up
 * to the largest one it sees, except those of rolled-back transactions (holes that stay holes;
 * conflicts retried by the projector leave them), and reading `position > checkpoint` misses
 * nothing. This relies on the sequence's default CACHE 1 (with a cache, each session draws from
 * its own block and positions stop following the lock order) and on no writer appending through
 * `sqlEventStore` without that lock (a raw connection outside `projectBatch`, or `projectBatch`
 * outside a transaction, where the lock ends with its own statement). Were one added, a late
 * commit below the checkpoint would not go unnoticed for long: the stream's next event would
 * find the target a revision behind and stop the mirror with a `MirrorDivergedError` — but the
 * remedy is to take the lock, not to mirror around it. We chose this over re-reading a window of
 * positions or waiting for the oldest transaction in flight (`pg_snapshot_xmin`), which would
 * cost every page for writers that do not exist.
 *
 * Order in the target: each stream's events keep their revisions and order. Pages are appended
 * one after the other, but within a page the target may write streams concurrently (the
 * EventStoreDB adapter does), so the target's global order (`$all`) follows the source's only
 * page by page.
 */

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
}

export interface MirroredPage {
  /** The checkpoint before and after the page: positions in lifecycle_events. */
  readonly from: number;
  readonly to: number;
  readonly events: number;
  readonly streams: number;
}

export interface MirrorSummary {
  readonly name: string;
  /** Events copied in this run (those the target already held, after a crash, included). */
  readonly events: number;
  /** Distinct streams these events belong to. */
  readonly streams: number;
  readonly pages: number;
  /** The checkpoint when the run started and when it ended. */
  readonly from: number;
  readonly checkpoint: number;
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

interface SourceRow {
  position: number | string;
  stream_id: string;
  revision: number;
  event_id: string;
  event_type: string;
  data: unknown;
}

/**
 * Copies lifecycle_events after the checkpoint `options.name` to `target`, page by page, saving
 * the checkpoint after each page; with `follow`, keeps going until `signal` aborts. Resolves
 * with what it copied; rejects with `MirrorDivergedError` when a target stream holds other events.
 */
export async function mirrorEvents(source: SqlExecutor, target: EventStore, options: MirrorOptions): Promise<MirrorSummary> {
  const { name, signal } = options;
  if (name.trim() === '') throw new RangeError('a mirror needs a name for its checkpoint');
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a whole number ≥ 1; got ${batchSize}`);

  const from = await loadCheckpoint(source, name);
  let checkpoint = from;
  let events = 0;
  let pages = 0;
  while (!signal?.aborted) {
    const rows = await source.query<SourceRow>(
      `SELECT position, stream_id, revision, event_id, event_type, data FROM lifecycle_events
       WHERE position > $1 ORDER BY position LIMIT $2`,
      [checkpoint, batchSize],
    );
    if (rows.length > 0) {
      const requests = appendRequestsOf(rows);
      const appended = await withRetries(() => appendPage(target, requests, name), options);
      if (!appended) break; // stopped while waiting to retry; the page is appended next time
      const to = positionOf(rows[rows.length - 1]!);
      await saveCheckpoint(source, name, to);
      options.onPage?.({ from: checkpoint, to, events: rows.length, streams: requests.length });
      checkpoint = to;
      events += rows.length;
      pages += 1;
    }
    if (rows.length === batchSize) continue; // more may be waiting
    if (!options.follow) break;
    await pause(options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, signal);
  }
  const streams = await source.query<{ n: number | string }>(
    'SELECT count(DISTINCT stream_id) AS n FROM lifecycle_events WHERE position > $1 AND position <= $2',
    [from, checkpoint],
  );
  return { name, events, streams: Number(streams[0]?.n ?? 0), pages, from, checkpoint };
}

/** The checkpoint of the mirror `name`: the last position it copied, 0 before its first run. */
export async function loadCheckpoint(source: SqlExecutor, name: string): Promise<number> {
  const rows = await source.query<{ position: number | string }>('SELECT position FROM event_mirror_checkpoints WHERE name = $1', [name]);
  return rows.length === 0 ? 0 : positionOf(rows[0]!);
}

async function saveCheckpoint(source: SqlExecutor, name: string, position: number): Promise<void> {
  // Never backwards: a second mirror of the same name, lagging behind, cannot undo the first's work.
  await source.query(
    `INSERT INTO event_mirror_checkpoints (name, position) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET position = GREATEST(event_mirror_checkpoints.position, EXCLUDED.position), updated_at = now()`,
    [name, position],
  );
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
      // Revisions are drawn in order within each append and streams are appended by one writer
      // at a time (see above); anything else is not a table this mirror can copy faithfully.
      throw new Error(
        `lifecycle_events holds revision ${row.revision} of stream ${row.stream_id} at position ${row.position}, ` +
          `right after revision ${previous} in position order; the mirror copies each stream's revisions in position order and stops here`,
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
