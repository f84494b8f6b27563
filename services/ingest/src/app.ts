import Fastify, { type FastifyInstance } from 'fastify';
import type { Producer } from 'kafkajs';
import { publishLines, type LineResult, type Topics } from '@lifecycle/kafka';

export interface IngestApiOptions {
  producer: Producer;
  topics: Topics;
  /** Largest request body in bytes. */
  bodyLimit?: number;
  /** Each line's result once Kafka acknowledged it (metrics). */
  onResult?: (result: LineResult) => void;
}

/** Splits a body into touchpoint lines: a JSON array (one element a line) or NDJSON. */
function linesOf(body: string): string[] | { error: string } {
  const trimmed = body.trimStart();
  if (!trimmed.startsWith('[')) return body.split(/\r?\n/);
  try {
    const array: unknown = JSON.parse(trimmed);
    if (!Array.isArray(array)) return { error: 'the body is neither a JSON array nor NDJSON' };
    return array.map((element) => JSON.stringify(element));
  } catch (error) {
    return { error: `the body starts like a JSON array but is not valid JSON: ${(error as Error).message}` };
  }
}

/**
 * `POST /v1/touchpoints`: validates each touchpoint, publishes the valid ones to Kafka keyed by
 * customer and the invalid ones to the dead-letter topic, and answers once Kafka acknowledged
 * them all, with one result per line (202, or 400 when the body itself is unusable).
 */
export function buildIngestApi({ producer, topics, bodyLimit = 10 * 1024 * 1024, onResult }: IngestApiOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.get('/health', async () => ({ status: 'ok' }));
  app.post('/v1/touchpoints', async (request, reply) => {
    const lines = linesOf(typeof request.body === 'string' ? request.body : '');
    if (!Array.isArray(lines)) return reply.code(400).send({ error: 'bad_request', message: lines.error });
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
