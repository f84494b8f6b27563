import { buildApi } from '@lifecycle/api';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { buildIngestApi } from '@lifecycle/ingest';
import { createKafka, createProducer, ensureLifecycleTopics, topicsFor } from '@lifecycle/kafka';
import { LifecycleMetrics, createRegistry, startOpsServer, untilSignal } from '@lifecycle/observability';
import { openLifecycleStore, type StoreLocation } from '@lifecycle/projection';
import { churnRatesAtWatermark, countCustomersByStage } from '@lifecycle/readmodel';
import { logger } from '../logger.js';
import type { KafkaOptions } from './produce.js';

/** The read-model API service (`lifecycle serve`), with its metrics on a port of their own. */
export async function serveCommand(options: { location: StoreLocation; config: LifecycleConfig; port: number; metricsPort: number; host: string }): Promise<void> {
  const db = await openLifecycleStore(options.location);
  const registry = createRegistry('api');
  new LifecycleMetrics(registry, { customersByStage: () => countCustomersByStage(db), churnRates: () => churnRatesAtWatermark(db) });
  const ops = await startOpsServer({ port: options.metricsPort, host: options.host, registry, health: async () => ({}) });
  const app = buildApi({ db, config: options.config });
  const address = await app.listen({ port: options.port, host: options.host });
  logger.info({ address, metrics: ops.address, store: db.description }, 'api serving');
  await untilSignal();
  await app.close();
  await ops.close();
  await db.close();
}

/** The HTTP ingest service (`lifecycle ingest-server`): HTTP → Kafka. */
export async function ingestServerCommand(options: KafkaOptions & { port: number; metricsPort: number; host: string }): Promise<void> {
  const kafka = createKafka({ brokers: options.brokers, clientId: 'lifecycle-ingest', logger });
  const topics = topicsFor(options.topic);
  await ensureLifecycleTopics(kafka, topics, options.partitions);
  const producer = createProducer(kafka);
  await producer.connect();
  const registry = createRegistry('ingest');
  // Accepted lines are counted by the projector, which alone knows duplicates from new ones.
  const metrics = new LifecycleMetrics(registry);
  const ops = await startOpsServer({ port: options.metricsPort, host: options.host, registry, health: async () => ({}) });
  const app = buildIngestApi({ producer, topics, onResult: (r) => r.status === 'rejected' && metrics.recordRejection(r.reason, r.type) });
  const address = await app.listen({ port: options.port, host: options.host });
  logger.info({ address, metrics: ops.address, topic: topics.input }, 'ingest serving');
  await untilSignal();
  await app.close();
  await ops.close();
  await producer.disconnect();
}
