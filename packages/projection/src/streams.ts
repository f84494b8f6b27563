import { hash } from 'node:crypto';
import { TOUCHPOINT_RECORDED, type LifecycleEvent, type LifecycleHistoryCorrected, type Touchpoint } from '@lifecycle/contracts';
import type { RecordedLifecycleEvent } from '@lifecycle/domain';
import type { NewEvent, RecordedEvent } from '@lifecycle/eventstore';

export const customerStream = (customerId: string) => `customer-${customerId}`;
export const visitorStream = (anonymousId: string) => `visitor-${anonymousId}`;

/** A touchpoint's stream: its customer's, or for an anonymous impression its visitor's. */
export const streamOf = (touchpoint: Touchpoint): string =>
  touchpoint.customerId !== undefined ? customerStream(touchpoint.customerId) : visitorStream(touchpoint.anonymousId!);

const HEX_DIGITS = '0123456789abcdef';
const DASH = 0x2d;
const UUID_TEXT = Buffer.alloc(36);

/**
 * A name-based UUID (the layout of RFC 9562 version 5) so that appending the same thing again
 * produces the same event id, which lets a store recognise a retried append.
 *
 * Written into a buffer and read as one flat string: built from slices of the hash's hex, an id
 * was a tree of ~10 strings, ~400 bytes of heap instead of ~65, for every event of a batch.
 */
export function deterministicUuid(name: string): string {
  const digest = hash('sha1', name, 'buffer');
  digest[6] = (digest[6]! & 0x0f) | 0x50;
  digest[8] = (digest[8]! & 0x3f) | 0x80;
  let at = 0;
  for (let i = 0; i < 16; i += 1) {
    if (i === 4 || i === 6 || i === 8 || i === 10) UUID_TEXT[at++] = DASH;
    UUID_TEXT[at++] = HEX_DIGITS.charCodeAt(digest[i]! >> 4);
    UUID_TEXT[at++] = HEX_DIGITS.charCodeAt(digest[i]! & 0x0f);
  }
  return UUID_TEXT.toString('latin1');
}

export const touchpointEvent = (touchpoint: Touchpoint): NewEvent => ({
  id: deterministicUuid(`touchpoint:${touchpoint.id}`),
  type: TOUCHPOINT_RECORDED,
  data: touchpoint,
});

/** Events for a stream at `revision`; ids depend on the position, so a retry repeats them exactly. */
export function lifecycleEvents(streamId: string, revision: number, retract: readonly number[], causedBy: readonly string[], append: readonly LifecycleEvent[]): NewEvent[] {
  const events: NewEvent[] = [];
  if (retract.length > 0) {
    const correction: LifecycleHistoryCorrected = { type: 'LifecycleHistoryCorrected', retractedRevisions: [...retract], causedBy: [...causedBy] };
    events.push({ id: '', type: correction.type, data: correction });
  }
  for (const event of append) events.push({ id: '', type: event.type, data: event });
  return events.map((event, i) => ({ ...event, id: deterministicUuid(`${streamId}:${revision + 1 + i}:${event.type}`) }));
}

const isLifecycleEvent = (event: RecordedEvent) => event.type.startsWith('Customer');

/** Reads a customer's stream: its touchpoints, and its lifecycle events still in force. */
export function readCustomerStream(events: readonly RecordedEvent[]): { touchpoints: Touchpoint[]; lifecycle: RecordedLifecycleEvent[] } {
  const touchpoints: Touchpoint[] = [];
  let lifecycle: RecordedLifecycleEvent[] = [];
  for (const event of events) {
    if (event.type === TOUCHPOINT_RECORDED) touchpoints.push(event.data as Touchpoint);
    else if (event.type === 'LifecycleHistoryCorrected') {
      const retracted = new Set((event.data as LifecycleHistoryCorrected).retractedRevisions);
      lifecycle = lifecycle.filter((e) => !retracted.has(e.revision));
    } else if (isLifecycleEvent(event)) lifecycle.push({ revision: event.revision, event: event.data as LifecycleEvent });
  }
  return { touchpoints, lifecycle };
}
