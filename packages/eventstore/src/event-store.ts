/** The revision a stream has before its first event. */
export const NO_STREAM = -1;

export interface NewEvent {
  /** A UUID, derived from what the event records so that a retried append is recognised. */
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
}

export interface RecordedEvent extends NewEvent {
  readonly streamId: string;
  /** 0 for a stream's first event. */
  readonly revision: number;
}

export interface AppendRequest {
  readonly streamId: string;
  /** Revision of the stream's last event, `NO_STREAM` if it must not exist yet. */
  readonly expectedRevision: number;
  readonly events: readonly NewEvent[];
}

/** An append found its stream at another revision than expected: re-read and decide again. */
export class ConcurrencyError extends Error {
  override readonly name = 'ConcurrencyError';
  readonly retriable = true;
  constructor(
    readonly streamId: string,
    readonly expectedRevision: number,
    readonly actualRevision: number,
    options?: ErrorOptions,
  ) {
    super(`stream ${streamId} is at revision ${actualRevision}, expected ${expectedRevision}`, options);
  }
}

/**
 * Per-customer event streams (SPEC §6.3). Appends carry the expected revision; an append that
 * repeats one already made (same event ids at the same revisions) succeeds without writing.
 */
export interface EventStore {
  /** Appends to several streams; each request is checked against its expected revision. */
  append(requests: readonly AppendRequest[]): Promise<void>;
  /** Whole streams, by id; a stream that does not exist is absent from the map. */
  readStreams(streamIds: readonly string[]): Promise<Map<string, RecordedEvent[]>>;
  /** Every event of one type across all streams, in append order, page by page. */
  readAllOfType(type: string, pageSize?: number): AsyncIterable<RecordedEvent[]>;
}

/**
 * Decides one append against its stream: true to write it, false when the very same events
 * already follow the expected revision (a retried append), a `ConcurrencyError` otherwise.
 * `following` are the ids of the events after the expected revision, as many as the request has.
 */
export function shouldAppend(request: AppendRequest, currentRevision: number, following: readonly string[]): boolean {
  if (currentRevision === request.expectedRevision) return true;
  const repeated = following.length === request.events.length && request.events.every((event, i) => following[i] === event.id);
  if (repeated) return false;
  throw new ConcurrencyError(request.streamId, request.expectedRevision, currentRevision);
}
