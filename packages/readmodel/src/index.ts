export { READ_MODEL_TABLES, readModelMigrations } from './schema.js';
export {
  countCustomersByStage,
  customersDueBy,
  loadCustomers,
  ownerPartitions,
  readCustomerHistories,
  readCustomerRow,
  readCustomerRows,
  saveCustomers,
  type StoredCustomer,
} from './customers.js';
export { applyCohortDelta, readCohortRows } from './cohort-cells.js';
export { churnRatesAtWatermark, rollingChurnRate, saveStageChanges, type StageHistoryChange } from './stage-changes.js';
export {
  assertClaims,
  assertNoEmbeddedWriters,
  assertNoProjectors,
  FencedError,
  linksOfCustomers,
  loadConsumerOffsets,
  loadProjectionState,
  loadVisitorLinks,
  MixedWritersError,
  nudgeCustomers,
  saveConfig,
  saveConsumerOffsets,
  saveGeneration,
  saveVisitorLinks,
  saveWatermark,
  takeNudges,
  takePartitions,
  type PartitionClaim,
  type ProjectionState,
  type VisitorLink,
} from './bookkeeping.js';
