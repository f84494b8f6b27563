import { buildApi } from '@lifecycle/api';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { LifecycleMetrics, createRegistry, serveMetrics } from '@lifecycle/observability';
import { exportProjection, openLifecycleStore } from '@lifecycle/projection';
import { churnRatesAtWatermark, countCustomersByStage } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { readLines } from '../lines.js';
import { logger } from '../logger.js';
import { retentionTable, stageTable } from '../summary.js';
import { ingestInto } from './ingest.js';
import { join } from 'node:path';
import { DEAD_LETTER_FILE } from '../settings.js';

export interface StartOptions {
  dataDir: string;
  config: LifecycleConfig;
  file?: string;
  customers: number;
  seed: number;
  port: number;
  host: string;
}

/**
 * The whole job in one process (`npm start`): ingest a file or a generated stream into the
 * embedded store, print what came out, and serve the read models until SIGINT/SIGTERM.
 */
export async function startCommand(options: StartOptions): Promise<void> {
  const source = options.file ?? `generated (${options.customers} customers, seed ${options.seed})`;
  const lines =
    options.file !== undefined
      ? await readLines(options.file)
      : (function* () {
          for (const t of generateTouchpoints({ customers: options.customers, seed: options.seed })) yield JSON.stringify(t);
        })();
  const registry = createRegistry('lifecycle');
  let db: SqlDatabase | undefined; // the gauges are read at scrape time, once the API serves
  const metrics = new LifecycleMetrics(registry, { customersByStage: () => countCustomersByStage(db!), churnRates: () => churnRatesAtWatermark(db!) });
  const started = performance.now();
  const summary = await ingestInto({ dataDir: options.dataDir }, join(options.dataDir, DEAD_LETTER_FILE), source, lines, options.config, metrics);
  const seconds = (performance.now() - started) / 1000;
  console.log(`ingested ${source} into ${options.dataDir} in ${seconds.toFixed(1)} s`);
  console.log(`  accepted ${summary.accepted}, duplicates ${summary.duplicates}, rejected ${JSON.stringify(summary.rejected)}`);

  db = await openLifecycleStore({ dataDir: options.dataDir });
  const projection = await exportProjection(db, options.config);
  console.log(`\nas of ${new Date(projection.asOf).toISOString()}\n`);
  console.log(stageTable(projection.customers));
  console.log(`\n${retentionTable(projection.cohorts)}\n`);

  const app = buildApi({ db, config: options.config, logger: false });
  serveMetrics(app, registry);
  const address = await app.listen({ port: options.port, host: options.host });
  const example = projection.customers[0]?.customerId;
  console.log(`serving the read models at ${address}`);
  console.log(`  GET ${address}/cohorts   GET ${address}/customers${example ? `   GET ${address}/customers/${encodeURIComponent(example)}` : ''}   GET ${address}/metrics`);
  console.log('press Ctrl-C to stop');

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await app.close();
  await db.close();
}
