export { advanceWatermark, assertStoreConfig, ConfigMismatchError, conflictRejection, projectBatch, replay, type BatchOutcome, type Ownership } from './projector.js';
export { KeyedState, type CustomerState } from './keyed-state.js';
export { exportChannels, exportChurnRate, exportChurns, exportCohorts, exportCohortsByChannel, exportProjection, exportReferrals, exportStages, openLifecycleStore, recordedTouchpoints, type Export, type StoreLocation } from './lifecycle-store.js';
export { customerStream, deterministicUuid, readCustomerStream, touchpointEvent } from './streams.js';
export { decide } from './decider.js';
export { DEFAULT_BATCH_SIZE, ingestLines, type DeadLetter, type IngestOptions, type IngestSummary } from './ingest.js';
export { isolatePoison, mayBeCausedByInput, storeRejection } from './poison.js';
export { crashBeforeCommit, enableTestFaults, type CrashPoint, type TestFaults } from './test-faults.js';
