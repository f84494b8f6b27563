import type { IHeaders, Message } from 'kafkajs';
import { MAX_TOUCHPOINT_BYTES, parseTouchpoint, type Rejection, type Touchpoint } from '@lifecycle/contracts';

/** The partition key of a visitor's impressions (those that name no customer). */
export const visitorKey = (anonymousId: string): string => `visitor:${anonymousId}`;

/** The partition key of a touchpoint: everything of one customer (or visitor) on one partition. */
export const customerKey = (t: Touchpoint): string => (t.customerId !== undefined ? `customer:${t.customerId}` : visitorKey(t.anonymousId!));

export const touchpointMessage = (t: Touchpoint, text: string | Buffer): Message => ({ key: customerKey(t), value: text });

/**
 * A dead letter: the message as received, the reason in headers (machine-readable). An
 * oversized payload keeps its first MAX_TOUCHPOINT_BYTES (header `lifecycle-truncated-from`:
 * its size), so that every dead letter fits in any Kafka message.
 */
export function deadLetterMessage(value: Buffer | string | null, rejection: Rejection, origin: Record<string, string>): Message {
  const bytes = value === null ? Buffer.alloc(0) : Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
  const headers: IHeaders = {
    'lifecycle-reason': rejection.reason,
    'lifecycle-issues': JSON.stringify(rejection.issues),
    ...Object.fromEntries(Object.entries(origin).map(([k, v]) => [`lifecycle-${k}`, v])),
    ...(bytes.length > MAX_TOUCHPOINT_BYTES ? { 'lifecycle-truncated-from': String(bytes.length) } : {}),
  };
  return { key: null, value: bytes.subarray(0, MAX_TOUCHPOINT_BYTES), headers };
}

// Brokers refuse a produce request's record batch above message.max.bytes (1 MiB by default);
// half of it leaves room for keys, headers and the batch's own overhead.
const BATCH_BYTES = 512 * 1024;

const sizeOf = (message: Message) => {
  let size = Buffer.byteLength(message.key ?? '') + Buffer.byteLength(message.value ?? '');
  for (const [name, value] of Object.entries(message.headers ?? {})) size += name.length + Buffer.byteLength(String(value));
  return size;
};

/** Consecutive parts of `messages` that each fit in one produce request of any broker. */
export function* byteBounded(messages: readonly Message[]): Generator<Message[]> {
  let part: Message[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = sizeOf(message);
    if (part.length > 0 && bytes + size > BATCH_BYTES) {
      yield part;
      part = [];
      bytes = 0;
    }
    part.push(message);
    bytes += size;
  }
  if (part.length > 0) yield part;
}

/** Decodes a message value, which any producer may have written. */
export function parseMessage(value: Buffer | null): ReturnType<typeof parseTouchpoint> {
  if (value === null) return { ok: false, rejection: { reason: 'malformed_json', issues: [{ path: '', message: 'the message has no value' }] } };
  return parseTouchpoint(value);
}
