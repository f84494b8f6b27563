import { isDeepStrictEqual } from 'node:util';
import { TOUCHPOINT_RECORDED, type ChannelCohortRow, type ChannelRow, type LifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import {
  channelEconomics,
  cohortFactsOf,
  cohortFactsOfHistories,
  cohortRowsByChannel,
  groupByCustomer,
  projectAsOf,
  projectHistoriesAsOf,
  type CohortFacts,
  type Projection,
} from '@lifecycle/domain';
import { eventStoreMigrations, sqlEventStore } from '@lifecycle/eventstore';
import { loadProjectionState, readCohortRows, readCustomerHistories, readCustomerRows, readImpressions, readModelMigrations, type ProjectionState } from '@lifecycle/readmodel';
import { migrate, openPglite, openPostgres, type SqlDatabase } from '@lifecycle/sql';

/** Where the streams and read models live: an embedded directory, or a PostgreSQL URL. */
export type StoreLocation = { dataDir: string } | { databaseUrl: string };

/** Opens the store and brings its schema up to date. */
export async function openLifecycleStore(location: StoreLocation): Promise<SqlDatabase> {
  const db = 'dataDir' in location ? await openPglite(location.dataDir) : await openPostgres(location.databaseUrl);
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
  if (isDeepStrictEqual(state.config, config)) {
    if (at === state.watermark) return { asOf: at, customers: await readCustomerRows(db), cohorts: await readCohortRows(db, at, config) };
    const histories = await readCustomerHistories(db);
    if (histories !== null) return projectHistoriesAsOf(histories, at, config);
  }
  const { inputs } = groupByCustomer(await recordedTouchpoints(db));
  return projectAsOf(inputs, at, config);
}

/** The customers' cohort facts as of `at`: from their histories, or (other settings, histories not all kept) folded from the streams. */
async function cohortFactsAt(db: SqlDatabase, config: LifecycleConfig, state: ProjectionState, at: number): Promise<CohortFacts[]> {
  if (isDeepStrictEqual(state.config, config)) {
    const histories = await readCustomerHistories(db);
    if (histories !== null) return cohortFactsOfHistories(histories, at, config);
  }
  return cohortFactsOf(groupByCustomer(await recordedTouchpoints(db)).inputs, at, config);
}

/** A table of SPEC §7 as of `asOf` (default: the latest event time recorded). */
export interface Export<Row> {
  asOf: number;
  rows: Row[];
}

/** The cohort table of each acquisition channel (SPEC §7 `--by channel`). */
export async function exportCohortsByChannel(db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<ChannelCohortRow>> {
  const state = await loadProjectionState(db);
  if (state.watermark === null) return { asOf: asOf ?? Number.NaN, rows: [] };
  const at = asOf ?? state.watermark;
  return { asOf: at, rows: cohortRowsByChannel(await cohortFactsAt(db, config, state, at), at, config) };
}

/** Channel economics (SPEC §4, §7): impressions, cost, acquisitions, revenue, CPM and CPA per channel and period. */
export async function exportChannels(db: SqlDatabase, config: LifecycleConfig, asOf?: number): Promise<Export<ChannelRow>> {
  const state = await loadProjectionState(db);
  if (state.watermark === null) return { asOf: asOf ?? Number.NaN, rows: [] };
  const at = asOf ?? state.watermark;
  return { asOf: at, rows: channelEconomics(await cohortFactsAt(db, config, state, at), await readImpressions(db, at), at, config) };
}
