import { RefusalMetrics, readTlsFiles, resolveAccess, type Access, type RateLimit, type TlsFiles } from '@lifecycle/access';
import { buildApi, workerExports } from '@lifecycle/api';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { buildIngestApi } from '@lifecycle/ingest';
import { createKafka, createProducer, ensureLifecycleTopics, topicsFor } from '@lifecycle/kafka';
import { LifecycleMetrics, createRegistry, startOpsServer, untilSignal } from '@lifecycle/observability';
import { openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import { churnRatesAtWatermark, countCustomersByStage } from '@lifecycle/readmodel';
import { logger } from '../logger.js';
import { authKeysFileOf } from '../settings.js';
import type { KafkaOptions } from './produce.js';

/** The options every HTTP service takes: where it listens and who may call it (SPEC §9). */
export interface ServerSecurityOptions {
  host: string;
  authKeys?: string;
  insecureNoAuth: boolean;
  tlsCert?: string;
  tlsKey?: string;
  /** Requests per minute per key (per client address without one). */
  rateLimit: number;
  /** Seconds a request may take to arrive whole. */
  requestTimeout: number;
}

/** Computations of the read-model routes: how many at once, and how long each may take. */
export interface ExportOptions {
  exportConcurrency: number;
  /** Seconds. */
  exportTimeout: number;
}

export interface ServerSecurity {
  access: Access;
  tls: TlsFiles | undefined;
  rateLimit: RateLimit;
  requestTimeoutMs: number;
}

/**
 * Who may call the service and how it listens, decided before anything is opened: a key file
 * that is not valid, TLS files that are not, or a non-loopback host without keys stop it here
 * (exit 2, with what to do).
 */
export async function serverSecurity(options: ServerSecurityOptions, command: string): Promise<ServerSecurity> {
  const access = await resolveAccess({ host: options.host, keysFile: authKeysFileOf(options.authKeys), insecureNoAuth: options.insecureNoAuth, command }, logger);
  const tls = await readTlsFiles(options.tlsCert, options.tlsKey);
  return { access, tls, rateLimit: { max: options.rateLimit, timeWindowMs: 60_000 }, requestTimeoutMs: options.requestTimeout * 1000 };
}

/** The read-model API service (`lifecycle serve`), with its metrics on a port of their own. */
export async function serveCommand(
  options: { location: StoreLocation; config: LifecycleConfig; port: number; metricsPort: number } & ServerSecurityOptions & ExportOptions,
): Promise<void> {
  const security = await serverSecurity(options, 'serve');
  const db = await openLifecycleStore(options.location);
  const registry = createRegistry('api');
  new LifecycleMetrics(registry, { customersByStage: () => countCustomersByStage(db), churnRates: () => churnRatesAtWatermark(db) });
  const ops = await startOpsServer({ port: options.metricsPort, host: options.host, registry, health: async () => ({}) });
  const exports = workerExports({
    db,
    ...('databaseUrl' in options.location ? { databaseUrl: options.location.databaseUrl } : {}),
    config: options.config,
    workers: options.exportConcurrency,
    deadlineMs: options.exportTimeout * 1000,
    logger,
  });
  const app = await buildApi({
    db,
    config: options.config,
    ...security,
    refusals: new RefusalMetrics(registry),
    exports,
    exportsAtOnce: options.exportConcurrency,
    logger,
  });
  const address = await app.listen({ port: options.port, host: options.host });
  logger.info({ address, metrics: ops.address, store: db.description, access: describeAccess(security.access) }, 'api serving');
  await untilSignal();
  await app.close();
  await ops.close();
  await db.close();
}

/** The HTTP ingest service (`lifecycle ingest-server`): HTTP → Kafka. */
export async function ingestServerCommand(options: KafkaOptions & { port: number; metricsPort: number } & ServerSecurityOptions): Promise<void> {
  const security = await serverSecurity(options, 'ingest-server');
  const kafka = createKafka({ brokers: options.brokers, clientId: 'lifecycle-ingest', logger });
  const topics = topicsFor(options.topic);
  await ensureLifecycleTopics(kafka, topics, options.partitions);
  const producer = createProducer(kafka);
  await producer.connect();
  const registry = createRegistry('ingest');
  // Accepted lines are counted by the projector, which alone knows duplicates from new ones.
  const metrics = new LifecycleMetrics(registry);
  const ops = await startOpsServer({ port: options.metricsPort, host: options.host, registry, health: async () => ({}) });
  const app = await buildIngestApi({
    producer,
    topics,
    onResult: (r) => r.status === 'rejected' && metrics.recordRejection(r.reason, r.type),
    ...security,
    refusals: new RefusalMetrics(registry),
    logger,
  });
  const address = await app.listen({ port: options.port, host: options.host });
  logger.info({ address, metrics: ops.address, topic: topics.input, access: describeAccess(security.access) }, 'ingest serving');
  await untilSignal();
  await app.close();
  await ops.close();
  await producer.disconnect();
}

/** For the start log line: which keys (ids only), or why there are none. */
export const describeAccess = (access: Access) => (access.kind === 'keys' ? { keys: access.ring.ids, keyFile: access.file } : { keys: null, open: access.why });
