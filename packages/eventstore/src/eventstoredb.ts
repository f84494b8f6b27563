import {
  AccessDeniedError,
  BACKWARDS,
  DeadlineExceededError,
  END,
  EventStoreDBClient,
  eventTypeFilter,
  FORWARDS,
  isSystemStream,
  jsonEvent,
  NO_STREAM as ESDB_NO_STREAM,
  START,
  StreamNotFoundError,
  UnavailableError,
  WrongExpectedVersionError,
  type JSONType,
  type Position,
} from '@eventstore/db-client';
import { ConcurrencyError, NO_STREAM, shouldAppend, type AppendRequest, type EventStore, type RecordedEvent } from './event-store.js';

/** Where an event sits in EventStoreDB's `$all`; pass it back as `from` to resume after it. */
export type EventStoreDbPosition = Position;

export interface TypeSubscription {
  /**
   * Settles when the subscription ends: resolves after `stop()`, rejects with the error that ended
   * it (the server went away, or `onEvent` threw). Await it or handle it, like a consumer's run loop.
   */
  readonly done: Promise<void>;
  /** Ends the subscription; resolves once the handler of the current event has returned. */
  stop(): Promise<void>;
}

/** The server could not be reached or did not answer in time; retry, then fail cleanly. */
export class EventStoreDbUnavailableError extends Error {
  override readonly name = 'EventStoreDbUnavailableError';
  readonly retriable = true;
}

/** The port's revision (`NO_STREAM` = -1) as the client's expected revision. */
export function toExpectedRevision(revision: number): typeof ESDB_NO_STREAM | bigint {
  if (revision === NO_STREAM) return ESDB_NO_STREAM;
  if (!Number.isSafeInteger(revision) || revision < 0) throw new RangeError(`not a stream revision: ${revision}`);
  return BigInt(revision);
}

/** A revision the server reports, as the port's number. */
export function toRevision(revision: bigint): number {
  // Customer streams stay far below 2^53 events; a larger revision would lose precision silently.
  if (revision > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`stream revision ${revision} exceeds what a number holds`);
  return Number(revision);
}

/**
 * The hosts of a connection string (`esdb://user:pass@a:2113,b:2113?tls=false` → `a:2113,b:2113`),
 * to name the server in errors without the credentials. Mirrors the client's own parsing: a
 * password cannot hold a raw `@`.
 */
export function hostsOf(connectionString: string): string {
  const afterScheme = connectionString.trim().replace(/^[^:]*:\/\//, '');
  const withoutCredentials = afterScheme.replace(/^[^:@/?]+:[^@]+@/, '');
  return /^[^/?]*/.exec(withoutCredentials)![0] || '(no host)';
}

/** Removes the connection string's password from a text meant for people (messages, logs). */
function redact(text: string, connectionString: string): string {
  const password = /^[^:]*:\/\/[^:@/?]+:([^@]+)@/.exec(connectionString.trim())?.[1];
  if (password === undefined) return text;
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // Not percent-encoded; the raw form is the one to hide.
  }
  return text.split(password).join('***').split(decoded).join('***');
}

// Streams read or written at once: one HTTP/2 connection carries them, and servers cap concurrent
// streams per connection (commonly 100), so a replay's thousands of reads must not all start.
const CONCURRENCY = 16;

async function mapBounded<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  // Every started call settles before this returns, so nothing is still writing when the caller
  // sees an error and retries.
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

interface ServerEvent {
  streamId: string;
  revision: bigint;
  id: string;
  type: string;
  data: unknown;
}

const toRecorded = (event: ServerEvent): RecordedEvent => ({
  streamId: event.streamId,
  revision: toRevision(event.revision),
  id: event.id,
  type: event.type,
  data: event.data,
});

/**
 * Event streams in EventStoreDB, over gRPC.
 *
 * EventStoreDB has no transaction across streams: each stream's append is atomic and checked
 * against its expected revision on the server, but an append of several streams can stop half
 * way (a crash, a lost connection, a writer racing in after the up-front check). Appends are
 * idempotent — the same event ids after the same revision are recognised and not written again —
 * so retrying the same requests completes the streams that were missed and leaves the others as
 * they are. After a real conflict the caller re-reads, and sees whatever streams were written.
 */
export class EventStoreDbEventStore implements EventStore {
  readonly #client: EventStoreDBClient;
  readonly #connectionString: string;

  /**
   * Connects lazily; `openEventStoreDb` also checks that the server answers. Given a `client`
   * (tests pass a scripted one), uses it, and the connection string only names the server in errors.
   */
  constructor(connectionString: string, client?: EventStoreDBClient) {
    this.#connectionString = connectionString;
    try {
      this.#client = client ?? EventStoreDBClient.connectionString(connectionString);
    } catch (error) {
      // The client's parse error carries the whole connection string, password included, so it
      // is not kept as the cause.
      const message = `invalid EventStoreDB connection string for ${hostsOf(connectionString)}: ${(error as Error).message} (expected esdb://[user:password@]host:port[?tls=false&…])`;
      throw new Error(redact(message, connectionString));
    }
  }

  async append(requests: readonly AppendRequest[]): Promise<void> {
    const nonEmpty = requests.filter((r) => r.events.length > 0);
    // Deciding every request before writing any keeps a conflict known up front from writing
    // the other streams, as the SQL store's transaction does. One request needs no such check:
    // the server makes it.
    const accepted = nonEmpty.length > 1 ? await this.#decideAll(nonEmpty) : nonEmpty;
    await mapBounded(accepted, (request) => this.#appendOne(request));
  }

  async readStreams(streamIds: readonly string[]): Promise<Map<string, RecordedEvent[]>> {
    const streams = await mapBounded([...new Set(streamIds)], async (id) => [id, await this.#readStream(id)] as const);
    const found = new Map<string, RecordedEvent[]>();
    for (const [id, events] of streams) if (events !== undefined) found.set(id, events);
    return found;
  }

  /**
   * Reads the whole of `$all` and keeps the events of `type`. @eventstore/db-client 6.2.1 sends
   * no filter with `readAll` (server-side filtering of reads came with @kurrent/kurrentdb-client),
   * so every event crosses the wire; subscriptions do filter on the server.
   */
  async *readAllOfType(type: string, pageSize = 10_000): AsyncIterable<RecordedEvent[]> {
    const read = this.#client.readAll({ fromPosition: START, direction: FORWARDS });
    let page: RecordedEvent[] = [];
    try {
      for await (const resolved of read) {
        const event = resolved.event;
        if (event === undefined || event.type !== type || isSystemStream(event.streamId)) continue;
        page.push(toRecorded(event));
        if (page.length === pageSize) {
          yield page;
          page = [];
        }
      }
    } catch (error) {
      throw this.#translate(error);
    } finally {
      // Ends the server's stream when the caller stops early; a read that failed has none to end.
      await read.cancel().catch(() => undefined);
    }
    if (page.length > 0) yield page;
  }

  /**
   * Calls `onEvent` for each event of `type` in `$all`, one at a time, from the start, from now
   * (`'end'`) or after a position `onEvent` was given; then keeps following new events. The
   * server filters on the type prefix; the exact type is checked here.
   */
  subscribeToType(
    type: string,
    onEvent: (event: RecordedEvent, position: EventStoreDbPosition) => void | Promise<void>,
    options: { from?: 'start' | 'end' | EventStoreDbPosition } = {},
  ): TypeSubscription {
    const from = options.from ?? 'start';
    const subscription = this.#client.subscribeToAll({
      fromPosition: from === 'start' ? START : from === 'end' ? END : from,
      filter: eventTypeFilter({ prefixes: [type] }),
    });
    let stopping = false;
    const cancel = () => subscription.unsubscribe().catch(() => undefined);
    const done = (async () => {
      try {
        for await (const resolved of subscription) {
          if (stopping) break;
          const event = resolved.event;
          if (event === undefined || event.type !== type || isSystemStream(event.streamId)) continue;
          await onEvent(toRecorded(event), event.position);
        }
      } catch (error) {
        if (!stopping) throw this.#translate(error);
      } finally {
        await cancel();
      }
    })();
    return {
      done,
      async stop() {
        stopping = true;
        await cancel();
        await done.catch(() => undefined);
      },
    };
  }

  /** Releases the connection's streams; the store is not usable afterwards. */
  async close(): Promise<void> {
    await this.#client.dispose();
  }

  async #decideAll(requests: readonly AppendRequest[]): Promise<AppendRequest[]> {
    const decisions = await mapBounded(requests, async (request) => {
      const current = await this.#currentRevision(request.streamId);
      const following = current > request.expectedRevision ? await this.#idsAfter(request) : [];
      return shouldAppend(request, current, following);
    });
    return requests.filter((_, i) => decisions[i]);
  }

  async #appendOne(request: AppendRequest): Promise<void> {
    const events = request.events.map((e) => jsonEvent({ id: e.id, type: e.type, data: e.data as JSONType }));
    try {
      const result = await this.#client.appendToStream(request.streamId, events, { expectedRevision: toExpectedRevision(request.expectedRevision) });
      // Reached only when the connection string sets throwOnAppendFailure=false.
      if (!result.success) await this.#settleConflict(request, undefined);
    } catch (error) {
      if (!(error instanceof WrongExpectedVersionError)) throw this.#translate(error);
      await this.#settleConflict(request, error);
    }
  }

  /** The stream was not at the expected revision: a retried append succeeds, anything else conflicts. */
  async #settleConflict(request: AppendRequest, cause: WrongExpectedVersionError | undefined): Promise<void> {
    const current = await this.#currentRevision(request.streamId);
    const following = current > request.expectedRevision ? await this.#idsAfter(request) : [];
    let write: boolean;
    try {
      write = shouldAppend(request, current, following);
    } catch {
      throw new ConcurrencyError(request.streamId, request.expectedRevision, current, { cause });
    }
    // The server refused, yet the stream is now where the request expected it: it moved
    // meanwhile (deleted and recreated), which the caller must re-read to decide on.
    if (write) throw new ConcurrencyError(request.streamId, request.expectedRevision, current, { cause });
  }

  async #currentRevision(streamId: string): Promise<number> {
    try {
      for await (const resolved of this.#client.readStream(streamId, { direction: BACKWARDS, fromRevision: END, maxCount: 1 })) {
        if (resolved.event !== undefined) return toRevision(resolved.event.revision);
      }
      return NO_STREAM;
    } catch (error) {
      if (error instanceof StreamNotFoundError) return NO_STREAM;
      throw this.#translate(error);
    }
  }

  /** Ids of the events after the request's expected revision, as many as the request has. */
  async #idsAfter(request: AppendRequest): Promise<string[]> {
    const ids: string[] = [];
    try {
      const read = this.#client.readStream(request.streamId, {
        fromRevision: BigInt(request.expectedRevision + 1),
        maxCount: request.events.length,
      });
      for await (const resolved of read) if (resolved.event !== undefined) ids.push(resolved.event.id);
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw this.#translate(error);
    }
    return ids;
  }

  /** A whole stream, or undefined when it does not exist. */
  async #readStream(streamId: string): Promise<RecordedEvent[] | undefined> {
    const events: RecordedEvent[] = [];
    try {
      for await (const resolved of this.#client.readStream(streamId, { fromRevision: START, direction: FORWARDS })) {
        if (resolved.event !== undefined) events.push(toRecorded(resolved.event));
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return undefined;
      throw this.#translate(error);
    }
    return events;
  }

  /** Errors people must act on get a message that says what to do; the rest pass through. */
  #translate(error: unknown): unknown {
    const where = `EventStoreDB at ${hostsOf(this.#connectionString)}`;
    const detail = error instanceof Error ? error.message : String(error);
    const say = (text: string) => redact(text, this.#connectionString);
    if (isUnavailable(error)) {
      return new EventStoreDbUnavailableError(
        say(
          `${where} is unavailable (${detail}); check that the server is running and reachable there, ` +
            "and that the connection string's tls setting matches the server (tls=false for a node started with --insecure)",
        ),
        { cause: error },
      );
    }
    if (error instanceof AccessDeniedError) {
      return new Error(say(`${where} denied access (${detail}); check the user and password in the connection string`), { cause: error });
    }
    return error;
  }
}

// gRPC status codes: the client converts most failures to its own classes, but not those raised
// while it first asks the server for its capabilities (seen with appendToStream on a closed port).
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

function isUnavailable(error: unknown): boolean {
  if (error instanceof UnavailableError || error instanceof DeadlineExceededError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return code === GRPC_UNAVAILABLE || code === GRPC_DEADLINE_EXCEEDED;
}

/**
 * Connects to EventStoreDB and checks that it answers, so a wrong address fails at start-up with
 * a message that names it rather than at the first append.
 */
export async function openEventStoreDb(connectionString: string): Promise<EventStoreDbEventStore> {
  const store = new EventStoreDbEventStore(connectionString);
  try {
    await store.readStreams(['lifecycle-connection-check']);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
