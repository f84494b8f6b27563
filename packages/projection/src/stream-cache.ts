import type { RecordedEvent, SqlEventStore } from '@lifecycle/eventstore';

/** Events a cache holds at most by default: roughly 0.5–1 GB of heap for touchpoint events. */
const DEFAULT_MAX_EVENTS = 500_000;

/**
 * The event streams a projector has read, kept between its transactions so that the next chunk
 * reads only what each stream gained since: re-reading every touched customer's whole history
 * was the largest read of a Kafka chunk.
 *
 * Sound because a stream only grows: nothing updates or deletes an event (corrections are
 * appended), so a prefix once read stays true, whoever appends after it. The cache keeps only
 * what it read, never what the caller appends, which may yet roll back; so a transaction must
 * read its streams before it appends to them (as `projectBatch` and `advanceWatermark` do), or it
 * would read, and the cache keep, its own uncommitted events. The least recently read streams
 * are dropped past `maxEvents`.
 */
export class StreamCache {
  private readonly streams = new Map<string, readonly RecordedEvent[]>();
  private events = 0;

  constructor(private readonly maxEvents = DEFAULT_MAX_EVENTS) {}

  /** The whole streams, read from their cached prefixes on; the arrays are the caller's to change. */
  async read(store: SqlEventStore, streamIds: readonly string[]): Promise<Map<string, RecordedEvent[]>> {
    // The prefixes as they are now: another read may replace an entry while this one waits.
    const prefixes = new Map(streamIds.map((id) => [id, this.streams.get(id) ?? []]));
    const tails = await store.readStreamsAfter(new Map([...prefixes].map(([id, prefix]) => [id, prefix.length - 1])));
    const found = new Map<string, RecordedEvent[]>();
    for (const [id, prefix] of prefixes) {
      const stream = [...prefix, ...(tails.get(id) ?? [])];
      if (stream.length === 0) continue;
      this.keep(id, stream);
      found.set(id, [...stream]);
    }
    this.evict();
    return found;
  }

  /** Events held, for tests and diagnostics. */
  get size(): number {
    return this.events;
  }

  private keep(id: string, stream: readonly RecordedEvent[]): void {
    this.events += stream.length - (this.streams.get(id)?.length ?? 0);
    // Delete first: a Map keeps insertion order, and the oldest entries are evicted first.
    this.streams.delete(id);
    this.streams.set(id, stream);
  }

  private evict(): void {
    for (const [id, stream] of this.streams) {
      if (this.events <= this.maxEvents) return;
      this.streams.delete(id);
      this.events -= stream.length;
    }
  }
}
