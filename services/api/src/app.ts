import { Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import {
  HttpRefusal,
  OPEN_UNLIMITED,
  RefusalMetrics,
  asRefusal,
  boundedServerOptions,
  guardHttp,
  needs,
  sendRefusal,
  type Access,
  type RateLimit,
  type TlsFiles,
} from '@lifecycle/access';
import { IdentifierSchema, type CustomerRow, type LifecycleConfig } from '@lifecycle/contracts';
import { sqlEventStore } from '@lifecycle/eventstore';
import { customerStream } from '@lifecycle/projection';
import { loadProjectionState, readCustomerRow } from '@lifecycle/readmodel';
import type { SqlDatabase } from '@lifecycle/sql';
import { CustomerPages } from './customer-pages.js';
import { CONTENT_TYPES, CUSTOMER_COLUMNS, customerAnswer, formatRows, type ExportAnswer, type ExportJob, type ExportTable, type Format } from './export-jobs.js';
import { ExportSlots, inProcessExports, type ExportRunner } from './export-runner.js';
import { PAGE_CONTENT_SECURITY_POLICY, registerPage } from './page.js';
import { BadRequest, days, identifier, instant, oneOf, pageSize, queryParser, quote } from './query.js';

export interface ApiOptions {
  db: SqlDatabase;
  config: LifecycleConfig;
  /** Who may read (SPEC §9); default: anyone, as on the loopback interface without keys. */
  access?: Access;
  /** Where refusals are counted; default: a registry of the API's own. */
  refusals?: RefusalMetrics;
  rateLimit?: RateLimit;
  tls?: TlsFiles;
  requestTimeoutMs?: number;
  /** Where the exports are computed; default: on the event loop (tests). The services use workers. */
  exports?: ExportRunner;
  /** At most this many export computations at once (503 beyond); default 2. */
  exportsAtOnce?: number;
  /** One line per request and the errors; none without. */
  logger?: Logger;
}

const FORMAT = oneOf('json', 'ndjson', 'csv');
// A page of 500 rows is one statement of ~30 ms on the embedded store (20 000 customers).
const DEFAULT_PAGE = 500;
const MAX_PAGE = 5000;
const customersQuery = queryParser({ asOf: instant, format: FORMAT, limit: pageSize(MAX_PAGE), after: identifier });
const exportQuery = queryParser({ asOf: instant, format: FORMAT });
const cohortQuery = queryParser({ asOf: instant, format: FORMAT, by: oneOf('channel') });
const churnRateQuery = queryParser({ asOf: instant, windowDays: days });
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

// A long answer is read a piece (hundreds of rows) ahead of the socket, not 16 (the default): a
// slow client holds one piece in memory, and a worker stops writing when nobody reads.
const PIECE_AT_A_TIME = { objectMode: true, highWaterMark: 1 } as const;

/**
 * The read models over HTTP (SPEC §7): JSON, NDJSON or CSV, as of the latest or a given instant,
 * behind the access rules of SPEC §9 (keys with the `read` scope, a rate limit, bounded time) and
 * with at most `exportsAtOnce` computations at once.
 */
export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const { db, config, logger } = options;
  const exports = options.exports ?? inProcessExports(db, config);
  const slots = new ExportSlots(options.exportsAtOnce ?? 2);
  const pages = new CustomerPages(db);
  const app = Fastify({
    logger: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ...boundedServerOptions({ tls: options.tls, requestTimeoutMs: options.requestTimeoutMs }),
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      // Errors of the router, answered without echoing the URL.
      if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
        // Only /customers/:id has a parameter, and a longer one cannot be a valid id.
        return reply.code(400).send(badRequest(`not a valid customer id: longer than ${CUSTOMER_ID_MAX} characters`));
      }
      if (error.code === 'FST_ERR_BAD_URL') return reply.code(400).send(badRequest('the path is not valid percent-encoded UTF-8'));
      logger?.error({ err: error, route: request.routeOptions.url }, 'request failed');
      return reply.code(500).send({ error: 'internal', message: 'internal error' });
    },
  });

  // 4xx keep their message; anything else (a database error) is logged, never shown to the caller.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof BadRequest) return reply.code(400).send(badRequest(error.message));
    const refusal = asRefusal(error);
    if (refusal !== undefined) return sendRefusal(request, reply, refusal);
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send({ error: status === 400 ? 'bad_request' : 'client_error', message: error.message });
    logger?.error({ err: error, route: request.routeOptions.url }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.addHook('onClose', () => exports.close());

  await guardHttp(app, {
    access: options.access ?? { kind: 'open', why: 'loopback' },
    refusals: options.refusals ?? new RefusalMetrics(new Registry()),
    ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
    tls: options.tls !== undefined,
    contentSecurityPolicy: PAGE_CONTENT_SECURITY_POLICY,
    ...(logger !== undefined ? { logger } : {}),
  });

  registerPage(app);

  app.get('/health', OPEN_UNLIMITED, async () => {
    const { watermark } = await loadProjectionState(db);
    return { status: 'ok', watermark: watermark === null ? null : new Date(watermark).toISOString() };
  });

  app.get<{ Params: { id: string } }>('/customers/:id', needs('read'), async (request, reply) => {
    noQuery(request.query);
    const { id } = request.params;
    const problem = customerIdProblem(id);
    if (problem !== undefined) return reply.code(400).send(badRequest(`not a valid customer id: ${quote(id)} (${problem})`));
    const customer = await readCustomerRow(db, id);
    if (customer === null) return reply.code(404).send({ error: 'not_found', message: `no customer ${quote(id, CUSTOMER_ID_MAX)}` });
    const stream = (await sqlEventStore(db).readStreams([customerStream(id)])).get(customerStream(id)) ?? [];
    return { customer, stream: stream.map(({ revision, type, data }) => ({ revision, type, data })) };
  });

  /** Runs an export computation in a free slot, or refuses at once (503 with Retry-After). */
  const compute = async (reply: FastifyReply, job: ExportJob) => {
    const release = slots.take();
    if (release === undefined) {
      const seconds = slots.retryAfterSeconds;
      throw new HttpRefusal(503, 'busy', `${slots.capacity} computations are running, the most at once; retry in ${seconds} s`, 'busy', { 'retry-after': String(seconds) });
    }
    let answer: ExportAnswer;
    try {
      answer = await exports.run(job);
    } catch (error) {
      release();
      throw error;
    }
    return reply.type(answer.contentType).headers(answer.headers).send(Readable.from(releasing(answer.body, release), PIECE_AT_A_TIME));
  };

  app.get('/customers', needs('read'), async (request, reply) => {
    const query = customersQuery(request.query);
    const format = query.format ?? 'json';
    // JSON is always a page; NDJSON and CSV are every row unless a page is asked for.
    const paged = format === 'json' || query.limit !== undefined || query.after !== undefined;
    const page = paged ? { limit: query.limit ?? DEFAULT_PAGE, ...(query.after !== undefined ? { after: query.after } : {}) } : undefined;
    const projected = await loadProjectionState(db);
    // At the projection's own instant and settings the rows are in the read model: read page by
    // page, no computation. Any other instant (or settings) is a computation from the histories.
    if (query.asOf !== undefined || (projected.config !== null && !isDeepStrictEqual(projected.config, config))) {
      return compute(reply, { kind: 'customers', format, ...(query.asOf !== undefined ? { asOf: query.asOf } : {}), ...(page !== undefined ? { page } : {}) });
    }
    return latestCustomers(reply, format, page);
  });

  const latestCustomers = async (reply: FastifyReply, format: Format, page: { limit: number; after?: string } | undefined) => {
    const currencies = format === 'csv' ? await pages.currencies() : undefined;
    if (page === undefined) {
      // Every row, a page at a time, never all in memory: a slow client slows the reading.
      const layout = currencies === undefined ? undefined : new Map([['revenue', currencies]]);
      return reply.type(CONTENT_TYPES[format]).send(Readable.from(streamedRows(pages.all(DEFAULT_PAGE), format, layout), PIECE_AT_A_TIME));
    }
    // One more than asked: whether there is a next page (customerAnswer cuts it off and links it).
    const answer = customerAnswer(await pages.page(page.after, page.limit + 1), { format, page: { limit: page.limit } }, currencies);
    return reply.type(answer.contentType).headers(answer.headers).send(Readable.from(answer.body, PIECE_AT_A_TIME));
  };

  const tableRoute = (path: string, table: (query: { by?: 'channel' }) => ExportTable, parse: (query: unknown) => { asOf?: number; format?: Format; by?: 'channel' }) =>
    app.get(path, needs('read'), async (request, reply) => {
      const query = parse(request.query);
      return compute(reply, { kind: 'table', table: table(query), format: query.format ?? 'json', ...(query.asOf !== undefined ? { asOf: query.asOf } : {}) });
    });
  tableRoute('/cohorts', (query) => (query.by === 'channel' ? 'cohorts-by-channel' : 'cohorts'), cohortQuery);
  tableRoute('/channels', () => 'channels', exportQuery);
  tableRoute('/churns', () => 'churns', exportQuery);
  tableRoute('/stages', () => 'stages', exportQuery);
  tableRoute('/referrals', () => 'referrals', exportQuery);

  app.get('/churn-rate', needs('read'), async (request, reply) => {
    const query = churnRateQuery(request.query);
    return compute(reply, { kind: 'churn-rate', windowDays: query.windowDays ?? 30, ...(query.asOf !== undefined ? { asOf: query.asOf } : {}) });
  });
  return app;
}

/** NDJSON or CSV of rows read page by page. */
async function* streamedRows(pages: AsyncIterable<CustomerRow[]>, format: Format, currencies: ReadonlyMap<string, readonly string[]> | undefined): AsyncGenerator<string> {
  let first = true;
  for await (const rows of pages) {
    const pieces = [...formatRows(rows, CUSTOMER_COLUMNS, format, currencies)];
    // The CSV header is written once, before the first page's rows.
    yield (first || format !== 'csv' ? pieces : pieces.slice(1)).join('');
    first = false;
  }
  if (first && format === 'csv') yield [...formatRows([], CUSTOMER_COLUMNS, format, currencies)].join('');
}

/**
 * The body, giving its slot back once it is written whole or abandoned (the client went away):
 * an iterator rather than a generator, so that a body never read is given back too.
 */
function releasing(body: AsyncIterable<string> | Iterable<string>, release: () => void): AsyncIterableIterator<string> {
  const inner = Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : (body as Iterable<string>)[Symbol.iterator]();
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      try {
        const result = await inner.next();
        if (result.done) release();
        return result;
      } catch (error) {
        release();
        throw error;
      }
    },
    async return() {
      release();
      await inner.return?.();
      return { value: undefined, done: true };
    },
  };
}
