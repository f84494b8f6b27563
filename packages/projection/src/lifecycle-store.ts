import { isDeepStrictEqual } from 'node:util';
import { TOUCHPOINT_RECORDED, type ChannelCohortRow, type ChannelRow, type ChurnRow, type CohortRow, type LifecycleConfig, type ReferralRow, type StageRow, type Touchpoint } from '@lifecycle/contracts';
import {
  channelEconomics,
  churnRows,
  cohortFactsOfHistories,
  cohortRows,
  cohortRowsByChannel,
  groupByCustomer,
  historiesOf,
  projectHistoriesAsOf,
  referralRows,
  rollingChurnRateOf,
  stageRows,
  type CustomerHistory,
  type Projection,
} from '@lifecycle/domain';
import { eventStoreMigrations, sqlEventStore } from '@lifecycle/eventstore';
import { loadProjectionState, readCohortRows, readCohortRowsAsOf, readCustomerHistories, readCustomerRows, readImpressions, readModelMigrations, type ProjectionState } from '@lifecycle/readmodel';
import { migrate, openPglite, openPostgres, type SqlDatabase } from '@lifecycle/sql';

/** Where the streams and read models live: an embedded directory, or a PostgreSQL URL. */
export type StoreLocation = { dataDir: string } | { databaseUrl: string };

export interface OpenOptions {
  /**
   * Opened to be read once and closed (an export, one SQL statement): the embedded store starts
   * with a small page cache, which sets up faster (`PgliteOptions.sharedBuffersMib`).
   */
  readOnce?: boolean;
}

const READ_ONCE_BUFFERS_MIB = 32;

/** Opens the store and brings its schema up to date. */
export async function openLifecycleStore(location: StoreLocation, options: OpenOptions = {}): Promise<SqlDatabase> {
  const db =
    'dataDir' in location
      ? await openPglite(location.dataDir, options.readOnce === true ? { sharedBuffersMib: READ_ONCE_BUFFERS_MIB } : {})
      : await openPostgres(location.databaseUrl);
  try {
    await migrate(db, [...eventStoreMigrations, ...readModelMigrations]);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}

/** Every touchpoint recorded in the streams. */
export async function recordedTouchpoints(db: SqlDatabase): Promise<Touchpoint[]> {
  const touchpoints: Touchpoint[] = [];
  for await (const page of sqlEventStore(db).readAllOfType(TOUCHPOINT_RECORDED)) {
    for (const event of page) touchpoints.push(event.data as Touchpoint);
  }
  return touchpoints;
}

/**
 * Customers and cohorts as of `asOf` (default: the latest event time recorded). With the
 * projection's own settings they come from the read models: its rows and cells at its own
 * instant, its customers' histories at any other. With other settings (or histories not all
 * kept yet: a store projected by an older version until its `replay`) they are folded from the
 * event streams.
 */
export async function exportProjection(db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Projection> {
  const state = await loadProjectionState(db);
  if (state.watermark === null) return { asOf: asOf ?? Number.NaN, customers: [], cohorts: [] };
  const at = asOf ?? state.watermark;
  if (at === state.watermark && isDeepStrictEqual(state.config, config)) {
    return { asOf: at, customers: await readCustomerRows(db), cohorts: await readCohortRows(db, at, config) };
  }
  return projectHistoriesAsOf(await historiesAt(db, config, state, at), at, config);
}

/**
 * The customers' histories for an export as of `at`: the read models' (any instant: a history
 * gives every instant), or, with other settings or histories not all kept, folded from the streams.
 */
async function historiesAt(db: SqlDatabase, config: LifecycleConfig, state: ProjectionState, at: number): Promise<{ customerId: string; history: CustomerHistory }[]> {
  if (isDeepStrictEqual(state.config, config)) {
    const histories = await readCustomerHistories(db);
    if (histories !== null) return histories;
  }
  return historiesOf(groupByCustomer(await recordedTouchpoints(db)).inputs, at, config);
}

/** Rows as of `asOf` (default: the latest event time recorded) computed from the customers' histories (and the store). */
async function exportFromHistories<Row>(
  db: SqlDatabase,
  config: LifecycleConfig,
  asOf: number | undefined,
  rows: (histories: { customerId: string; history: CustomerHistory }[], at: number) => Row[] | Promise<Row[]>,
): Promise<Export<Row>> {
  const state = await loadProjectionState(db);
  if (state.watermark === null) return { asOf: asOf ?? Number.NaN, rows: [] };
  const at = asOf ?? state.watermark;
  return { asOf: at, rows: await rows(await historiesAt(db, config, state, at), at) };
}

/** A table of SPEC §7 as of `asOf` (default: the latest event time recorded). */
export interface Export<Row> {
  asOf: number;
  rows: Row[];
}

/**
 * The cohort table (SPEC §7) as of `asOf` (default: the latest event time recorded): with the
 * projection's own settings from its cells (at its own instant) or from their days (at any
 * other: a few thousand rows, not every customer), else as `exportProjection` computes it.
 */
export async function exportCohorts(db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<CohortRow>> {
  const state = await loadProjectionState(db);
  if (state.watermark === null) return { asOf: asOf ?? Number.NaN, rows: [] };
  const at = asOf ?? state.watermark;
  if (isDeepStrictEqual(state.config, config)) {
    const rows = at === state.watermark ? await readCohortRows(db, at, config) : await readCohortRowsAsOf(db, at, config);
    if (rows !== null) return { asOf: at, rows };
  }
  return { asOf: at, rows: cohortRows(cohortFactsOfHistories(await historiesAt(db, config, state, at), at, config), at, config) };
}

/** The cohort table of each acquisition channel (SPEC §7 `--by channel`). */
export const exportCohortsByChannel = (db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<ChannelCohortRow>> =>
  exportFromHistories(db, config, asOf, (histories, at) => cohortRowsByChannel(cohortFactsOfHistories(histories, at, config), at, config));

/** Channel economics (SPEC §4, §7): impressions, cost, acquisitions, revenue, CPM and CPA per channel and period. */
export const exportChannels = (db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<ChannelRow>> =>
  exportFromHistories(db, config, asOf, async (histories, at) => channelEconomics(cohortFactsOfHistories(histories, at, config), await readImpressions(db, at), at, config));

/** Churns by period and reason. */
export const exportChurns = (db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<ChurnRow>> =>
  exportFromHistories(db, config, asOf, (histories, at) => churnRows(histories, at, config));

/** Customers by stage. */
export const exportStages = (db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<StageRow>> =>
  exportFromHistories(db, config, asOf, (histories, at) => stageRows(histories, at, config));

/** The referral loop: per referrer, the customers it referred, their conversion and revenue. */
export const exportReferrals = (db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<ReferralRow>> =>
  exportFromHistories(db, config, asOf, (histories, at) => referralRows(histories, at));

/** The rolling churn rate (SPEC §4) over `windowMs` ending at `asOf` (default: the latest event time recorded); null without a base. */
export async function exportChurnRate(db: SqlDatabase, config: LifecycleConfig, windowMs: number, asOf?: number): Promise<{ asOf: number | null; rate: number | null }> {
  const state = await loadProjectionState(db);
  if (state.watermark === null) return { asOf: asOf ?? null, rate: null };
  const at = asOf ?? state.watermark;
  return { asOf: at, rate: rollingChurnRateOf(await historiesAt(db, config, state, at), at, windowMs, config) };
}
