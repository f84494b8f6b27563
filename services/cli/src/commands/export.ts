import type { LifecycleConfig } from '@lifecycle/contracts';
import { exportProjection, openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import { writeLines } from '../lines.js';

export type ExportKind = 'customers' | 'cohorts';

/** SPEC §7 exports as NDJSON on stdout. */
export async function exportCommand(kind: ExportKind, location: StoreLocation, config: LifecycleConfig, asOf: number | undefined): Promise<void> {
  const db = await openLifecycleStore(location);
  try {
    const projection = await exportProjection(db, config, asOf);
    await writeLines(projection[kind].map((row) => JSON.stringify(row)));
  } finally {
    await db.close();
  }
}
