import type { IHeaders, Message } from 'kafkajs';
import { parseTouchpoint, type Rejection, type Touchpoint } from '@lifecycle/contracts';

/** The partition key of a touchpoint: everything of one customer (or visitor) on one partition. */
export const customerKey = (t: Touchpoint): string => (t.customerId !== undefined ? `customer:${t.customerId}` : `visitor:${t.anonymousId}`);

export const touchpointMessage = (t: Touchpoint, text: string | Buffer): Message => ({ key: customerKey(t), value: text });

/** A dead letter: the message as received, the reason in headers (machine-readable). */
export function deadLetterMessage(value: Buffer | string | null, rejection: Rejection, origin: Record<string, string>): Message {
  const headers: IHeaders = {
    'lifecycle-reason': rejection.reason,
    'lifecycle-issues': JSON.stringify(rejection.issues),
    ...Object.fromEntries(Object.entries(origin).map(([k, v]) => [`lifecycle-${k}`, v])),
  };
  return { key: null, value: value ?? '', headers };
}

/** Decodes a message value, which any producer may have written. */
export function parseMessage(value: Buffer | null): ReturnType<typeof parseTouchpoint> {
  if (value === null) return { ok: false, rejection: { reason: 'malformed_json', issues: [{ path: '', message: 'the message has no value' }] } };
  return parseTouchpoint(value);
}
