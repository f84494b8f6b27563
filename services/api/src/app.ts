import Fastify, { type FastifyInstance } from 'fastify';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { sqlEventStore } from '@lifecycle/eventstore';
import { customerStream, exportProjection } from '@lifecycle/projection';
import { loadProjectionState, readCustomerRow } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { toCsv } from './csv.js';

export interface ApiOptions {
  db: SqlDatabase;
  config: LifecycleConfig;
  /** pino options, or false for no request logs. */
  logger?: boolean | object;
}

const CUSTOMER_COLUMNS = ['customerId', 'stage', 'acquiredAt', 'cohort', 'channel', 'convertedAt', 'churnedAt', 'churnReason', 'payments', 'reactivations', 'referrals', 'revenue'];
const COHORT_COLUMNS = ['cohort', 'periodIndex', 'period', 'size', 'converted', 'active', 'churned', 'reactivated', 'revenue'];

interface ExportQuery {
  asOf?: string;
  format?: 'json' | 'ndjson' | 'csv';
}

const exportQuerySchema = {
  type: 'object',
  properties: {
    asOf: { type: 'string', format: 'date-time' },
    format: { type: 'string', enum: ['json', 'ndjson', 'csv'] },
  },
  additionalProperties: false,
} as const;

/** The read models over HTTP (SPEC §7): JSON, NDJSON or CSV, as of the latest or a given instant. */
export function buildApi({ db, config, logger = false }: ApiOptions): FastifyInstance {
  const app = Fastify({ logger });

  app.get('/health', async () => {
    const { watermark } = await loadProjectionState(db);
    return { status: 'ok', watermark: watermark === null ? null : new Date(watermark).toISOString() };
  });

  app.get<{ Params: { id: string } }>('/customers/:id', async (request, reply) => {
    const customer = await readCustomerRow(db, request.params.id);
    if (customer === null) return reply.code(404).send({ error: 'not_found', message: `no customer ${request.params.id}` });
    const stream = (await sqlEventStore(db).readStreams([customerStream(request.params.id)])).get(customerStream(request.params.id)) ?? [];
    return { customer, stream: stream.map(({ revision, type, data }) => ({ revision, type, data })) };
  });

  const exportRoute = (path: string, pick: 'customers' | 'cohorts', columns: readonly string[]) =>
    app.get<{ Querystring: ExportQuery }>(path, { schema: { querystring: exportQuerySchema } }, async (request, reply) => {
      const asOf = request.query.asOf === undefined ? undefined : Date.parse(request.query.asOf);
      const rows = (await exportProjection(db, config, asOf))[pick];
      switch (request.query.format ?? 'json') {
        case 'csv':
          return reply.type('text/csv; charset=utf-8').send(toCsv(rows, columns));
        case 'ndjson':
          return reply.type('application/x-ndjson').send(rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
        default:
          return rows;
      }
    });
  exportRoute('/customers', 'customers', CUSTOMER_COLUMNS);
  exportRoute('/cohorts', 'cohorts', COHORT_COLUMNS);
  return app;
}
