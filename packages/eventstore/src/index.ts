export { ConcurrencyError, NO_STREAM, type AppendRequest, type EventStore, type NewEvent, type RecordedEvent } from './event-store.js';
export { inMemoryEventStore } from './in-memory.js';
export { eventStoreMigrations, sqlEventStore } from './sql-event-store.js';
export {
  EventStoreDbEventStore,
  EventStoreDbUnavailableError,
  openEventStoreDb,
  type EventStoreDbPosition,
  type TypeSubscription,
} from './eventstoredb.js';
