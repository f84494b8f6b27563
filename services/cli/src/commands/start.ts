import { createServer } from 'node:net';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { buildApi } from '@lifecycle/api';
import { ndjsonLines, type LifecycleConfig } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { LifecycleMetrics, createRegistry, serveMetrics, untilSignal } from '@lifecycle/observability';
import { assertStoreConfig, exportProjection, openLifecycleStore } from '@lifecycle/projection';
import { churnRatesAtWatermark, countCustomersByStage } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import type { FastifyInstance } from 'fastify';
import { readLines } from '../lines.js';
import { logger } from '../logger.js';
import { retentionTable, stageTable } from '../summary.js';
import { ingestInto } from './ingest.js';
import { DEAD_LETTER_FILE, UsageError } from '../settings.js';

export interface StartOptions {
  dataDir: string;
  config: LifecycleConfig;
  file?: string;
  customers: number;
  seed: number;
  port: number;
  host: string;
}

/** Where touchpoints reach the directory `start` holds (the lock file's message names it too). */
const EMBEDDED_INGEST_ROUTE = '/v1/touchpoints';

/**
 * The whole job in one process (`npm start`): listen first (a taken port fails before any work),
 * ingest a file or a generated stream into the embedded store, print what came out, and serve
 * the read models until SIGINT/SIGTERM. The process holds the data directory; more touchpoints
 * reach it through `POST /v1/touchpoints` (NDJSON body), one request at a time.
 */
export async function startCommand(options: StartOptions): Promise<void> {
  const source = options.file ?? `generated (${options.customers} customers, seed ${options.seed})`;
  const lines =
    options.file !== undefined
      ? await readLines(options.file)
      : (function* () {
          for (const t of generateTouchpoints({ customers: options.customers, seed: options.seed })) yield JSON.stringify(t);
        })();
  await assertPortFree(options.host, options.port);
  const db = await openLifecycleStore({ dataDir: options.dataDir });
  const app = buildApi({ db, config: options.config, logger: false });
  try {
    await assertStoreConfig(db, options.config);
    await serve(app, db, options, lines, source);
  } finally {
    await app.close();
    await db.close();
  }
}

/** Fails before any work (and before a data directory is made) when the port is taken. */
async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is in use (another lifecycle start?); stop it, or pick another with --port (0: any free port)`);
    throw new UsageError(`cannot listen on ${host}:${port}: ${(error as Error).message}`);
  }
  await new Promise((resolve) => server.close(resolve));
}

async function serve(app: FastifyInstance, db: SqlDatabase, options: StartOptions, lines: Iterable<string> | AsyncIterable<Buffer>, source: string): Promise<void> {
  const registry = createRegistry('lifecycle');
  const metrics = new LifecycleMetrics(registry, { customersByStage: () => countCustomersByStage(db), churnRates: () => churnRatesAtWatermark(db) });
  serveMetrics(app, registry);
  const deadLetters = join(options.dataDir, DEAD_LETTER_FILE);
  // One ingest at a time: each request's summary is its own, and dead letters keep their order.
  let queue: Promise<unknown> = Promise.resolve();
  const ingest = (name: string, input: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>) => {
    const run = queue.then(() => ingestInto(db, deadLetters, name, input, options.config, metrics));
    queue = run.catch(() => undefined);
    return run;
  };
  await app.register(async (scope) => {
    // The body is read as a stream of lines, never whole: a file of any size can be sent.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    scope.post(EMBEDDED_INGEST_ROUTE, async (request) => {
      const summary = await ingest(`http:${request.ip}`, ndjsonLines(request.body as Readable));
      logger.info(summary, 'touchpoints ingested over HTTP');
      return summary;
    });
  });

  const address = await app.listen({ port: options.port, host: options.host });
  await db.lock?.describe({ servingAt: address });
  const started = performance.now();
  const summary = await ingest(source, lines);
  const seconds = (performance.now() - started) / 1000;
  console.log(`ingested ${source} into ${options.dataDir} in ${seconds.toFixed(1)} s`);
  console.log(`  accepted ${summary.accepted}, duplicates ${summary.duplicates}, rejected ${JSON.stringify(summary.rejected)}`);

  const projection = await exportProjection(db, options.config);
  if (Number.isNaN(projection.asOf)) {
    console.log('\nno touchpoint stored yet: nothing to summarise\n'); // an empty store has no instant
  } else {
    console.log(`\nas of ${new Date(projection.asOf).toISOString()}\n`);
    console.log(stageTable(projection.customers));
    console.log(`\n${retentionTable(projection.cohorts)}\n`);
  }

  const example = projection.customers[0]?.customerId;
  console.log(`serving the read models at ${address}`);
  console.log(`  GET ${address}/cohorts   GET ${address}/customers${example ? `   GET ${address}/customers/${encodeURIComponent(example)}` : ''}   GET ${address}/metrics`);
  console.log(`  more touchpoints: curl --data-binary @touchpoints.ndjson ${address}${EMBEDDED_INGEST_ROUTE}`);
  console.log('press Ctrl-C to stop');
  logger.info({ signal: await untilSignal() }, 'stopping');
}
