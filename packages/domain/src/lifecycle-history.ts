import type { LifecycleCause, LifecycleEvent } from '@lifecycle/contracts';

/** A lifecycle event as it stands in a customer's stream. */
export interface RecordedLifecycleEvent {
  readonly revision: number;
  readonly event: LifecycleEvent;
}

export interface HistoryChange {
  /** Stream revisions of recorded lifecycle events that no longer hold. */
  readonly retract: number[];
  readonly append: LifecycleEvent[];
}

// Field by field: events read back from a store may have their keys in another order.
const sameCause = (a: LifecycleCause, b: LifecycleCause): boolean =>
  a.kind === 'touchpoint'
    ? b.kind === 'touchpoint' && a.touchpointId === b.touchpointId && a.touchpointType === b.touchpointType
    : b.kind === 'deadline' && a.deadline === b.deadline && a.after === b.after;

const sameEvent = (a: LifecycleEvent, b: LifecycleEvent): boolean =>
  a.type === b.type &&
  a.at === b.at &&
  a.from === b.from &&
  a.to === b.to &&
  a.reason === b.reason &&
  sameCause(a.cause, b.cause);

/**
 * What to append to a stream so that its lifecycle events read as `next`: new events extend the
 * history; where a late touchpoint changed it, the events after the first difference are
 * retracted and the corrected ones follow (SPEC §6.3).
 */
export function historyChange(recorded: readonly RecordedLifecycleEvent[], next: readonly LifecycleEvent[]): HistoryChange {
  let common = 0;
  while (common < recorded.length && common < next.length && sameEvent(recorded[common]!.event, next[common]!)) common += 1;
  return { retract: recorded.slice(common).map((r) => r.revision), append: next.slice(common) };
}
