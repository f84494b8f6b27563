import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  END,
  NO_STREAM as ESDB_NO_STREAM,
  StreamNotFoundError,
  WrongExpectedVersionError,
  type EventData,
  type Position,
} from '@eventstore/db-client';
import type { RecordedEvent } from '@lifecycle/eventstore';

/**
 * Stands in for the client with the behaviour the adapter relies on: strict expected-revision
 * checks that throw `WrongExpectedVersionError` (even for a repeat, which the server itself would
 * accept), `StreamNotFoundError` from reads, `$all` with system events, type-prefix filtered
 * subscriptions. It checks the adapter's own logic, not the real server.
 */
export class ScriptedClient {
  readonly all: (RecordedEvent & { position: Position })[] = [];
  readonly subscribers = new Set<{ prefix: string; readable: Readable }>();
  readonly appended: string[] = [];

  constructor() {
    this.#record('$settings', 'A', {});
  }

  #record(streamId: string, type: string, data: unknown) {
    const revision = this.all.filter((e) => e.streamId === streamId).length;
    const position = { commit: BigInt(this.all.length), prepare: BigInt(this.all.length) };
    const event = { streamId, revision, id: randomUUID(), type, data: JSON.parse(JSON.stringify(data)) as unknown, position };
    this.all.push(event);
    return event;
  }

  #serverEvent(e: RecordedEvent & { position: Position }) {
    return { event: { ...e, revision: BigInt(e.revision), isJson: true } };
  }

  #stream(streamId: string) {
    return this.all.filter((e) => e.streamId === streamId);
  }

  #readable(events: () => Iterable<unknown>) {
    return Object.assign(Readable.from((async function* () { yield* events(); })()), { cancel: async () => undefined });
  }

  async appendToStream(streamId: string, events: EventData[], options: { expectedRevision: typeof ESDB_NO_STREAM | bigint }) {
    const stream = this.#stream(streamId);
    const current = stream.length === 0 ? ESDB_NO_STREAM : BigInt(stream.length - 1);
    if (current !== options.expectedRevision) {
      throw new WrongExpectedVersionError(undefined, { streamName: streamId, expected: options.expectedRevision, current });
    }
    for (const e of events) {
      const recorded = this.#record(streamId, e.type, e.data);
      Object.assign(recorded, { id: e.id });
      this.appended.push(e.id);
      for (const s of this.subscribers) if (e.type.startsWith(s.prefix)) s.readable.push(this.#serverEvent(recorded));
    }
    return { success: true, nextExpectedRevision: BigInt(stream.length + events.length - 1) };
  }

  readStream(streamId: string, options: { direction?: string; fromRevision?: string | bigint; maxCount?: number } = {}) {
    return this.#readable(() => {
      let stream = this.#stream(streamId);
      if (stream.length === 0) throw new StreamNotFoundError(undefined, streamId);
      if (options.direction === 'backwards') {
        stream = [...stream].reverse();
        if (typeof options.fromRevision === 'bigint') stream = stream.filter((e) => BigInt(e.revision) <= (options.fromRevision as bigint));
      } else if (typeof options.fromRevision === 'bigint') {
        stream = stream.filter((e) => BigInt(e.revision) >= (options.fromRevision as bigint));
      }
      return stream.slice(0, options.maxCount ?? Infinity).map((e) => this.#serverEvent(e));
    });
  }

  readAll() {
    return this.#readable(() => this.all.map((e) => this.#serverEvent(e)));
  }

  subscribeToAll(options: { fromPosition: 'start' | 'end' | Position; filter: { prefixes: string[] } }) {
    const prefix = options.filter.prefixes[0]!;
    const subscriber = { prefix, readable: new Readable({ objectMode: true, read: () => undefined }) };
    const from = options.fromPosition;
    const past = from === END ? [] : this.all.filter((e) => from === 'start' || e.position.commit > (from as Position).commit);
    for (const e of past) if (e.type.startsWith(prefix)) subscriber.readable.push(this.#serverEvent(e));
    this.subscribers.add(subscriber);
    return Object.assign(subscriber.readable, {
      unsubscribe: async () => {
        this.subscribers.delete(subscriber);
        subscriber.readable.push(null);
      },
    });
  }

  async dispose() {}
}
