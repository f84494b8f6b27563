export { ConcurrencyError, NO_STREAM, type AppendRequest, type EventStore, type NewEvent, type RecordedEvent } from './event-store.js';
export { inMemoryEventStore } from './in-memory.js';
export { eventStoreMigrations, sqlEventStore, type SqlEventStore } from './sql-event-store.js';
export {
  loadCheckpoint,
  MIRROR_START,
  mirrorEvents,
  MirrorDivergedError,
  type MirrorCheckpoint,
  type MirroredPage,
  type MirrorOptions,
  type MirrorSummary,
  type MirrorWait,
} from './mirror.js';
