import { createServer } from 'node:net';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { OPEN_UNLIMITED, RefusalMetrics, assertDeclaredLength, needs, type Access } from '@lifecycle/access';
import { boundedNdjson, buildApi, workerExports, type BodyLimits } from '@lifecycle/api';
import { ndjsonLines, type LifecycleConfig } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { LifecycleMetrics, createRegistry, untilSignal } from '@lifecycle/observability';
import { assertStoreConfig, exportProjection, openLifecycleStore } from '@lifecycle/projection';
import { churnRatesAtWatermark, countCustomersByStage } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { readLines } from '../lines.js';
import { logger } from '../logger.js';
import { retentionTable, stageTable } from '../summary.js';
import { ingestInto } from './ingest.js';
import { DEAD_LETTER_FILE, UsageError } from '../settings.js';
import { describeAccess, serverSecurity, type ExportOptions, type ServerSecurityOptions } from './servers.js';

export interface StartOptions extends ServerSecurityOptions, ExportOptions {
  dataDir: string;
  config: LifecycleConfig;
  file?: string;
  customers: number;
  seed: number;
  port: number;
}

/** Where touchpoints reach the directory `start` holds (the lock file's message names it too). */
const EMBEDDED_INGEST_ROUTE = '/v1/touchpoints';

// The body is read line by line, so its size costs no memory; the bound is on time and disk. A
// line is cut at 1 MiB (a touchpoint may have 64 KiB: it is dead-lettered as too large either way).
const INGEST_BODY: BodyLimits = { maxBytes: 1024 ** 3, maxLineBytes: 1024 ** 2 };

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
  const security = await serverSecurity(options, 'start');
  await assertPortFree(options.host, options.port);
  const db = await openLifecycleStore({ dataDir: options.dataDir });
  const registry = createRegistry('lifecycle');
  const exports = workerExports({ db, config: options.config, workers: options.exportConcurrency, deadlineMs: options.exportTimeout * 1000, logger });
  let app: FastifyInstance | undefined;
  try {
    app = await buildApi({ db, config: options.config, ...security, refusals: new RefusalMetrics(registry), exports, exportsAtOnce: options.exportConcurrency, logger });
    await assertStoreConfig(db, options.config);
    await serve(app, db, registry, security.access, options, lines, source);
  } finally {
    await (app?.close() ?? exports.close());
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

async function serve(app: FastifyInstance, db: SqlDatabase, registry: Registry, access: Access, options: StartOptions, lines: Iterable<string> | AsyncIterable<Buffer>, source: string): Promise<void> {
  const metrics = new LifecycleMetrics(registry, { customersByStage: () => countCustomersByStage(db), churnRates: () => churnRatesAtWatermark(db) });
  // Open, like /health: Prometheus scrapes without a key (SPEC §9), and is not rate limited.
  app.get('/metrics', OPEN_UNLIMITED, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  const deadLetters = join(options.dataDir, DEAD_LETTER_FILE);
  // One ingest at a time: each request's summary is its own, and dead letters keep their order.
  let queue: Promise<unknown> = Promise.resolve();
  const ingest = (name: string, input: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>) => {
    const run = queue.then(() => ingestInto(db, deadLetters, name, input, options.config, { metrics }));
    queue = run.catch(() => undefined);
    return run;
  };
  await app.register(async (scope) => {
    // The body is read as a stream of lines, never whole: a file of up to 1 GiB can be sent.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    scope.post(EMBEDDED_INGEST_ROUTE, needs('ingest'), async (request) => {
      assertDeclaredLength(request.headers['content-length'], INGEST_BODY);
      const summary = await ingest(`http:${request.ip}`, ndjsonLines(boundedNdjson(request.body as Readable, INGEST_BODY)));
      logger.info(summary, 'touchpoints ingested over HTTP');
      return summary;
    });
  });

  const address = await app.listen({ port: options.port, host: options.host });
  await db.lock?.describe({ servingAt: address });
  logger.info({ address, access: describeAccess(access) }, 'serving');
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
  const key = access.kind === 'keys' ? ` -H 'Authorization: Bearer <key>'` : '';
  console.log(`  more touchpoints: curl --data-binary @touchpoints.ndjson${key} ${address}${EMBEDDED_INGEST_ROUTE}`);
  console.log('press Ctrl-C to stop');
  logger.info({ signal: await untilSignal() }, 'stopping');
}
