import Fastify, { type FastifyInstance } from 'fastify';
import type { Producer } from 'kafkajs';
import { isUtf8 } from 'node:buffer';
import { ndjsonLines } from '@lifecycle/contracts';
import { publishLines, type LineResult, type Topics } from '@lifecycle/kafka';

export interface IngestApiOptions {
  producer: Producer;
  topics: Topics;
  /** Largest request body in bytes. */
  bodyLimit?: number;
  /** Each line's result once Kafka acknowledged it (metrics). */
  onResult?: (result: LineResult) => void;
}

/**
 * Splits a body into touchpoint lines: a JSON array (one element a line) or NDJSON, whose lines
 * stay bytes so that one that is not UTF-8 is rejected alone, as from a file or Kafka.
 */
function linesOf(body: Buffer): AsyncIterable<Buffer> | string[] | { error: string } {
  const start = body.findIndex((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
  if (body[start] !== 0x5b /* [ */) return ndjsonLines([body]);
  if (!isUtf8(body)) return { error: 'the body starts like a JSON array but is not valid UTF-8' };
  const trimmed = body.toString('utf8');
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
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.get('/health', async () => ({ status: 'ok' }));
  app.post('/v1/touchpoints', async (request, reply) => {
    const lines = linesOf(Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0));
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
