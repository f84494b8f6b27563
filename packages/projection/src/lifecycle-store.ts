import { isDeepStrictEqual } from 'node:util';
import { TOUCHPOINT_RECORDED, type LifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { groupByCustomer, projectAsOf, projectHistoriesAsOf, type Projection } from '@lifecycle/domain';
import { eventStoreMigrations, sqlEventStore } from '@lifecycle/eventstore';
import { loadProjectionState, readCohortRows, readCustomerHistories, readCustomerRows, readModelMigrations } from '@lifecycle/readmodel';
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
