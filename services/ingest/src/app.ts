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
 * them all, with one result per line (202, or 400 when the body itself is unusable).
 */
export function buildIngestApi({ producer, topics, bodyLimit = 10 * 1024 * 1024, onResult }: IngestApiOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.get('/health', async () => ({ status: 'ok' }));
  app.post('/v1/touchpoints', async (request, reply) => {
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
