import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { IdentifierSchema, type LifecycleConfig } from '@lifecycle/contracts';
import { sqlEventStore } from '@lifecycle/eventstore';
import { customerStream, exportChannels, exportChurnRate, exportChurns, exportCohortsByChannel, exportProjection, exportReferrals, exportStages } from '@lifecycle/projection';
import { loadProjectionState, readCustomerRow } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { toCsv } from './csv.js';
import { registerPage } from './page.js';
import { BadRequest, days, instant, oneOf, queryParser, quote } from './query.js';

export interface ApiOptions {
  db: SqlDatabase;
  config: LifecycleConfig;
  /** pino options, or false for no request logs. */
  logger?: boolean | object;
}

const CUSTOMER_COLUMNS = ['customerId', 'stage', 'acquiredAt', 'cohort', 'channel', 'convertedAt', 'churnedAt', 'churnReason', 'payments', 'reactivations', 'referrals', 'revenue'];
const COHORT_COLUMNS = ['cohort', 'periodIndex', 'period', 'size', 'converted', 'active', 'churned', 'reactivated', 'revenue'];
const CHANNEL_COHORT_COLUMNS = ['cohort', 'channel', ...COHORT_COLUMNS.slice(1)];
const CHANNEL_COLUMNS = ['channel', 'period', 'impressions', 'cost', 'acquired', 'revenue', 'cpm', 'cpa'];

const FORMAT = oneOf('json', 'ndjson', 'csv');
const exportQuery = queryParser({ asOf: instant, format: FORMAT });
const cohortQuery = queryParser({ asOf: instant, format: FORMAT, by: oneOf('channel') });
const churnRateQuery = queryParser({ asOf: instant, windowDays: days });
const DAY_MS = 86_400_000;
const noQuery = queryParser({});

// The contract's identifier limit (IdentifierSchema), in characters.
const CUSTOMER_ID_MAX = 128;
// The router compares the decoded parameter, but 12 (4 UTF-8 bytes, percent-encoded) per character
// lets every valid id through even where it is compared encoded; longer ones get the 400 below.
const MAX_PARAM_LENGTH = CUSTOMER_ID_MAX * 12;

/** Why `id` cannot be a customer id, checked before any query: PostgreSQL refuses a NUL with a 500. */
function customerIdProblem(id: string): string | undefined {
  const parsed = IdentifierSchema.safeParse(id);
  return parsed.success ? undefined : parsed.error.issues.map((issue) => issue.message).join('; ');
}

const badRequest = (message: string) => ({ error: 'bad_request', message });

/** Errors of the router, answered without echoing the URL. */
function routerError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    // Only /customers/:id has a parameter, and a longer one cannot be a valid id.
    return reply.code(400).send(badRequest(`not a valid customer id: longer than ${CUSTOMER_ID_MAX} characters`));
  }
  if (error.code === 'FST_ERR_BAD_URL') return reply.code(400).send(badRequest('the path is not valid percent-encoded UTF-8'));
  request.log.error(error);
  return reply.code(500).send({ error: 'internal', message: 'internal error' });
}

/** The read models over HTTP (SPEC §7): JSON, NDJSON or CSV, as of the latest or a given instant. */
export function buildApi({ db, config, logger = false }: ApiOptions): FastifyInstance {
  const app = Fastify({
    logger,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: routerError,
  });

  // 4xx keep their message; anything else (a database error) is logged, never shown to the caller.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof BadRequest) return reply.code(400).send(badRequest(error.message));
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send({ error: status === 400 ? 'bad_request' : 'client_error', message: error.message });
    request.log.error(error);
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });

  registerPage(app);

  app.get('/health', async () => {
    const { watermark } = await loadProjectionState(db);
    return { status: 'ok', watermark: watermark === null ? null : new Date(watermark).toISOString() };
  });

  app.get<{ Params: { id: string } }>('/customers/:id', async (request, reply) => {
    noQuery(request.query);
    const { id } = request.params;
    const problem = customerIdProblem(id);
    if (problem !== undefined) return reply.code(400).send(badRequest(`not a valid customer id: ${quote(id)} (${problem})`));
    const customer = await readCustomerRow(db, id);
    if (customer === null) return reply.code(404).send({ error: 'not_found', message: `no customer ${quote(id, CUSTOMER_ID_MAX)}` });
    const stream = (await sqlEventStore(db).readStreams([customerStream(id)])).get(customerStream(id)) ?? [];
    return { customer, stream: stream.map(({ revision, type, data }) => ({ revision, type, data })) };
  });

  const answer = (reply: FastifyReply, rows: readonly object[], format: 'json' | 'ndjson' | 'csv' | undefined, columns: readonly string[]) => {
    switch (format ?? 'json') {
      case 'csv':
        return reply.type('text/csv; charset=utf-8').send(toCsv(rows, columns));
      case 'ndjson':
        return reply.type('application/x-ndjson').send(rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
      default:
        return reply.send(rows);
    }
  };
  app.get('/customers', async (request, reply) => {
    const query = exportQuery(request.query);
    return answer(reply, (await exportProjection(db, config, query.asOf)).customers, query.format, CUSTOMER_COLUMNS);
  });
  app.get('/cohorts', async (request, reply) => {
    const query = cohortQuery(request.query);
    if (query.by === 'channel') return answer(reply, (await exportCohortsByChannel(db, config, query.asOf)).rows, query.format, CHANNEL_COHORT_COLUMNS);
    return answer(reply, (await exportProjection(db, config, query.asOf)).cohorts, query.format, COHORT_COLUMNS);
  });
  app.get('/channels', async (request, reply) => {
    const query = exportQuery(request.query);
    return answer(reply, (await exportChannels(db, config, query.asOf)).rows, query.format, CHANNEL_COLUMNS);
  });
  app.get('/churns', async (request, reply) => {
    const query = exportQuery(request.query);
    return answer(reply, (await exportChurns(db, config, query.asOf)).rows, query.format, ['period', 'reason', 'churns']);
  });
  app.get('/churn-rate', async (request) => {
    const query = churnRateQuery(request.query);
    const windowDays = query.windowDays ?? 30;
    const { asOf, rate } = await exportChurnRate(db, config, windowDays * DAY_MS, query.asOf);
    return { asOf: asOf === null ? null : new Date(asOf).toISOString(), windowDays, rate };
  });
  app.get('/referrals', async (request, reply) => {
    const query = exportQuery(request.query);
    return answer(reply, (await exportReferrals(db, config, query.asOf)).rows, query.format, ['referrer', 'referred', 'converted', 'revenue']);
  });
  app.get('/stages', async (request, reply) => {
    const query = exportQuery(request.query);
    return answer(reply, (await exportStages(db, config, query.asOf)).rows, query.format, ['stage', 'customers']);
  });
  return app;
}
