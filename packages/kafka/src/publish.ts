import type { Message, Producer } from 'kafkajs';
import { isBlankLine, parseTouchpoint, type FieldIssue, type RejectionReason, type TouchpointType } from '@lifecycle/contracts';
import type { Topics } from './client.js';
import { byteBounded, deadLetterMessage, touchpointMessage } from './touchpoint-messages.js';

/** What happened to one input line. */
export type LineResult =
  | { line: number; status: 'accepted'; id: string }
  | { line: number; status: 'rejected'; reason: RejectionReason; issues: FieldIssue[]; type?: TouchpointType };

export interface PublishSummary {
  lines: number;
  accepted: number;
  rejected: Partial<Record<RejectionReason, number>>;
}

/**
 * Validates lines and publishes them: valid touchpoints to the input topic keyed by customer,
 * invalid ones to the dead-letter topic with the reason in headers. A chunk is acknowledged
 * (acks=all, idempotent producer) before the next is read, so nothing acknowledged is lost.
 */
export async function publishLines(
  producer: Producer,
  topics: Topics,
  lines: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: { source: string; chunkSize?: number; onResult?: (result: LineResult) => void },
): Promise<PublishSummary> {
  const chunkSize = options.chunkSize ?? 5_000;
  const summary: PublishSummary = { lines: 0, accepted: 0, rejected: {} };
  let valid: Message[] = [];
  let invalid: Message[] = [];
  let results: LineResult[] = [];
  const flush = async () => {
    for (const [topic, messages] of [[topics.input, valid], [topics.deadLetter, invalid]] as const) {
      for (const part of byteBounded(messages)) await producer.sendBatch({ topicMessages: [{ topic, messages: part }], acks: -1 });
    }
    for (const result of results) options.onResult?.(result);
    valid = [];
    invalid = [];
    results = [];
  };
  for await (const line of lines) {
    summary.lines += 1;
    if (isBlankLine(line)) continue;
    // Bytes go out as they came (a dead letter keeps even bytes that are not UTF-8).
    const text = typeof line === 'string' ? line : Buffer.from(line.buffer, line.byteOffset, line.byteLength);
    const parsed = parseTouchpoint(text);
    if (parsed.ok) {
      valid.push(touchpointMessage(parsed.touchpoint, text));
      summary.accepted += 1;
      results.push({ line: summary.lines, status: 'accepted', id: parsed.touchpoint.id });
    } else {
      invalid.push(deadLetterMessage(text, parsed.rejection, { source: options.source, line: String(summary.lines) }));
      summary.rejected[parsed.rejection.reason] = (summary.rejected[parsed.rejection.reason] ?? 0) + 1;
      results.push({ line: summary.lines, status: 'rejected', ...parsed.rejection });
    }
    if (valid.length + invalid.length >= chunkSize) await flush();
  }
  await flush();
  return summary;
}
