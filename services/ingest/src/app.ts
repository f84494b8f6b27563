import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Producer } from 'kafkajs';
import { isUtf8 } from 'node:buffer';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { OPEN_UNLIMITED, RefusalMetrics, asRefusal, assertDeclaredLength, boundedServerOptions, guardHttp, needs, sendRefusal, type Access, type RateLimit, type TlsFiles } from '@lifecycle/access';
import { ndjsonLines } from '@lifecycle/contracts';
import { publishLines, type LineResult, type Topics } from '@lifecycle/kafka';

export interface IngestApiOptions {
  producer: Producer;
  topics: Topics;
  /** Largest request body in bytes. */
  bodyLimit?: number;
  /** Each line's result once Kafka acknowledged it (metrics). */
  onResult?: (result: LineResult) => void;
  /** Who may send touchpoints (SPEC §9): keys with the `ingest` scope; default: anyone, as on the loopback interface without keys. */
  access?: Access;
  /** Where refusals are counted; default: a registry of the service's own. */
  refusals?: RefusalMetrics;
  rateLimit?: RateLimit;
  tls?: TlsFiles;
  requestTimeoutMs?: number;
  /** One line per request and the errors; none without. */
  logger?: Logger;
}

/**
 * Splits a body into touchpoint lines. A JSON array (one element a line) when it is sent as
 * `application/json` and starts with `[`; NDJSON otherwise, whatever its first line looks like,
 * so that a line is answered as it would be from a file or Kafka. NDJSON lines stay bytes: one
 * that is not UTF-8 is rejected alone.
 */
function linesOf(body: Buffer, contentType: string | undefined): AsyncIterable<Buffer> | string[] | { error: string } {
  const start = body.findIndex((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
  const json = /^application\/json\s*(;|$)/i.test(contentType ?? '');
  if (!json || body[start] !== 0x5b /* [ */) return ndjsonLines([body]);
  if (!isUtf8(body)) return { error: 'the body is not valid UTF-8' };
  let array: unknown[];
  try {
    array = JSON.parse(body.toString('utf8')) as unknown[];
  } catch (error) {
    return { error: `the body starts like a JSON array but is not valid JSON: ${(error as Error).message}` };
  }
  const lines: string[] = [];
  for (const [i, element] of array.entries()) {
    try {
      lines.push(JSON.stringify(element));
    } catch {
      // Only a value nested thousands deep cannot be written again; a touchpoint nests ≤ 32 levels.
      return { error: `element ${i} of the array is nested too deeply to be a touchpoint` };
    }
  }
  return lines;
}

/**
 * `POST /v1/touchpoints`: validates each touchpoint, publishes the valid ones to Kafka keyed by
 * customer and the invalid ones to the dead-letter topic, and answers once Kafka acknowledged
 * them all, with one result per line (202, or 400 when the body itself is unusable). Behind the
 * access rules of SPEC §9: a key with the `ingest` scope, a rate limit, bounded size and time.
 */
export async function buildIngestApi(options: IngestApiOptions): Promise<FastifyInstance> {
  const { producer, topics, bodyLimit = 10 * 1024 * 1024, onResult, logger } = options;
  const app = Fastify({ logger: false, bodyLimit, ...boundedServerOptions({ tls: options.tls, requestTimeoutMs: options.requestTimeoutMs }) });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const refusal = asRefusal(error);
    if (refusal !== undefined) return sendRefusal(request, reply, refusal);
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send({ error: 'bad_request', message: error.message });
    logger?.error({ err: error, route: request.routeOptions.url }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  await guardHttp(app, {
    access: options.access ?? { kind: 'open', why: 'loopback' },
    refusals: options.refusals ?? new RefusalMetrics(new Registry()),
    ...(options.rateLimit !== undefined ? { rateLimit: options.rateLimit } : {}),
    tls: options.tls !== undefined,
    ...(logger !== undefined ? { logger } : {}),
  });
  // A body declared larger than the limit is refused before it is read, without closing the
  // connection. fastify's own refusal closes it while the client still sends, and a client that
  // meets the reset before it reads the answer reports a broken pipe, not the 413 (Node's fetch
  // against the service in another process: 13 times in 20). Answered here, Node reads and
  // drops the rest of the body (within the request timeout), and the client reads the 413. A
  // body without a length still meets fastify's refusal once it passes the limit.
  app.addHook('preParsing', async (request, _reply, payload) => {
    assertDeclaredLength(request.headers['content-length'], { maxBytes: bodyLimit });
    return payload;
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.get('/health', OPEN_UNLIMITED, async () => ({ status: 'ok' }));
  app.post('/v1/touchpoints', needs('ingest'), async (request, reply) => {
    const lines = linesOf(Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0), request.headers['content-type']);
    if ('error' in lines) return reply.code(400).send({ error: 'bad_request', message: lines.error });
    const results: LineResult[] = [];
    const collect = (r: LineResult) => {
      results.push(r);
      onResult?.(r);
    };
    const summary = await publishLines(producer, topics, lines, { source: `http:${request.ip}`, onResult: collect });
    return reply.code(202).send({ ...summary, results });
  });
  return app;
}
