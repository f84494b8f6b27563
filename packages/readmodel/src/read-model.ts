import type { LifecycleConfig, Touchpoint } from '@lifecycle/contracts';
import type { SqlExecutor } from '@lifecycle/sql';
import type { StoredCustomer } from './customers.js';
import type { StageHistoryChange } from './stage-changes.js';

/** A customer that one transaction re-folded, and what that changed. */
export interface CustomerChange {
  /** As it was stored; undefined for a new customer (or one being replayed). */
  readonly before: StoredCustomer | undefined;
  readonly after: StoredCustomer;
  /** Its row (or history, or bookkeeping) differs from `before`. */
  readonly rowChanged: boolean;
  /** Its stage history from where it changed, when it did. */
  readonly stageHistory: StageHistoryChange | undefined;
}

/** What one transaction of the projection changed, for the read models to follow. */
export interface ProjectedChanges {
  /**
   * The touchpoints it accepted (visitors' impressions included). A `replay` passes every recorded
   * touchpoint first, page by page and with no customer, then the customers with none.
   */
  readonly touchpoints: readonly Touchpoint[];
  /** The customers it re-folded whose row or stage history changed. */
  readonly customers: readonly CustomerChange[];
}

/**
 * One read model: the tables it keeps (`replay` empties and rebuilds them) and how it follows
 * the projection, in the projector's transaction. Its queries live in its module beside it. A
 * new read model is a new module: its migrations (listed in schema.ts), a `ReadModel`, added to
 * READ_MODELS, and its queries.
 */
export interface ReadModel {
  readonly tables: readonly string[];
  write(sql: SqlExecutor, changes: ProjectedChanges, config: LifecycleConfig): Promise<void>;
  /** Called by `replay` once it has passed every recorded touchpoint to `write`. */
  replayed?(sql: SqlExecutor): Promise<void>;
}
