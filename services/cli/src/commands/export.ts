import type { LifecycleConfig } from '@lifecycle/contracts';
import { exportChannels, exportChurns, exportCohorts, exportCohortsByChannel, exportProjection, exportReferrals, exportStages, openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import type { SqlDatabase } from '@lifecycle/sql';
import { writeLines } from '../lines.js';

export type ExportKind = 'customers' | 'cohorts' | 'channels' | 'churns' | 'stages' | 'referrals';
export const EXPORT_KINDS: readonly ExportKind[] = ['customers', 'cohorts', 'channels', 'churns', 'stages', 'referrals'];

const rowsOf = async (db: SqlDatabase, kind: ExportKind, byChannel: boolean, config: LifecycleConfig, asOf: number | undefined): Promise<readonly object[]> => {
  if (kind === 'channels') return (await exportChannels(db, config, asOf)).rows;
  if (kind === 'churns') return (await exportChurns(db, config, asOf)).rows;
  if (kind === 'stages') return (await exportStages(db, config, asOf)).rows;
  if (kind === 'referrals') return (await exportReferrals(db, config, asOf)).rows;
  if (kind === 'cohorts') return (byChannel ? await exportCohortsByChannel(db, config, asOf) : await exportCohorts(db, config, asOf)).rows;
  return (await exportProjection(db, config, asOf)).customers;
};

/** SPEC §7 exports as NDJSON on stdout. */
export async function exportCommand(kind: ExportKind, byChannel: boolean, location: StoreLocation, config: LifecycleConfig, asOf: number | undefined): Promise<void> {
  const db = await openLifecycleStore(location, { readOnce: true });
  try {
    await writeLines((await rowsOf(db, kind, byChannel, config, asOf)).map((row) => JSON.stringify(row)));
  } finally {
    await db.close();
  }
}
