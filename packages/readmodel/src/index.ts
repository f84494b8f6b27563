export { READ_MODEL_TABLES, READ_MODELS, readModelMigrations } from './schema.js';
export type { CustomerChange, ProjectedChanges, ReadModel } from './read-model.js';
export {
  countCustomersByStage,
  customerCurrencies,
  customersDueBy,
  loadCustomers,
  ownerPartitions,
  readCustomerHistories,
  readCustomerPage,
  readCustomerRow,
  readCustomerRows,
  type StoredCustomer,
} from './customers.js';
export { readCohortRows } from './cohort-cells.js';
export { readCohortRowsAsOf } from './cohort-cell-days.js';
export { readImpressions } from './ad-impressions.js';
export { savePeriods } from './analyst-views.js';
export { churnRatesAtWatermark, rollingChurnRate, type StageHistoryChange } from './stage-changes.js';
export {
  assertClaims,
  assertNoEmbeddedWriters,
  assertNoProjectors,
  FencedError,
  handoffsPending,
  linksOfCustomers,
  loadConsumerOffsets,
  loadProjectionState,
  loadVisitorLinks,
  MixedWritersError,
  nudgeCustomers,
  requestVisitorLinks,
  saveConfig,
  saveConsumerOffsets,
  saveGeneration,
  saveVisitorLinks,
  saveWatermark,
  takeNudges,
  takePartitions,
  takeVisitorLinkRequests,
  type PartitionClaim,
  type ProjectionState,
  type VisitorLink,
} from './bookkeeping.js';
