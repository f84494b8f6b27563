export { READ_MODEL_TABLES, readModelMigrations } from './schema.js';
export {
  countCustomersByStage,
  customersDueBy,
  loadCustomers,
  readCustomerRow,
  readCustomerRows,
  saveCustomers,
  type StoredCustomer,
} from './customers.js';
export { applyCohortDelta, readCohortRows } from './cohort-cells.js';
export { churnRatesAtWatermark, rollingChurnRate, saveStageChanges } from './stage-changes.js';
export {
  findTouchpoints,
  linksOfCustomers,
  loadConsumerOffsets,
  loadProjectionState,
  loadVisitorLinks,
  saveConsumerOffsets,
  saveProjectionState,
  saveTouchpointIds,
  saveVisitorLinks,
  type ProjectionState,
  type VisitorLink,
} from './bookkeeping.js';
