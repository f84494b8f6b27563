import { shouldAppend, type EventStore, type RecordedEvent } from './event-store.js';

/** The event store in memory: the twin every adapter is compared with, for tests. */
export function inMemoryEventStore(): EventStore {
  const streams = new Map<string, RecordedEvent[]>();
  const all: RecordedEvent[] = [];
  return {
    async append(requests) {
      // Decide every request before writing any, so a conflict leaves all streams untouched.
      const accepted = requests.filter((request) => {
        const stream = streams.get(request.streamId) ?? [];
        const following = stream.slice(request.expectedRevision + 1, request.expectedRevision + 1 + request.events.length);
        return shouldAppend(request, stream.length - 1, following.map((e) => e.id));
      });
      for (const request of accepted) {
        const stream = streams.get(request.streamId) ?? [];
        for (const event of request.events) {
          const recorded = { ...event, streamId: request.streamId, revision: stream.length };
          stream.push(recorded);
          all.push(recorded);
        }
        streams.set(request.streamId, stream);
      }
    },
    async readStreams(streamIds) {
      const found = new Map<string, RecordedEvent[]>();
      for (const id of streamIds) {
        const stream = streams.get(id);
        if (stream !== undefined) found.set(id, [...stream]);
      }
      return found;
    },
    async *readAllOfType(type, pageSize = 10_000) {
      const matching = all.filter((e) => e.type === type);
      for (let i = 0; i < matching.length; i += pageSize) yield matching.slice(i, i + pageSize);
    },
  };
}
