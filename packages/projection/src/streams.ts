import { hash } from 'node:crypto';
import { TOUCHPOINT_RECORDED, type LifecycleEvent, type LifecycleHistoryCorrected, type Touchpoint } from '@lifecycle/contracts';
import type { RecordedLifecycleEvent } from '@lifecycle/domain';
import type { NewEvent, RecordedEvent } from '@lifecycle/eventstore';

export const customerStream = (customerId: string) => `customer-${customerId}`;
export const visitorStream = (anonymousId: string) => `visitor-${anonymousId}`;

/** A touchpoint's stream: its customer's, or for an anonymous impression its visitor's. */
export const streamOf = (touchpoint: Touchpoint): string =>
  touchpoint.customerId !== undefined ? customerStream(touchpoint.customerId) : visitorStream(touchpoint.anonymousId!);

/**
 * A name-based UUID (the layout of RFC 9562 version 5) so that appending the same thing again
 * produces the same event id, which lets a store recognise a retried append.
 */
export function deterministicUuid(name: string): string {
  const h = hash('sha1', name, 'hex');
  const variant = ((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
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
