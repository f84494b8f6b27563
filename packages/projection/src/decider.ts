import { isDeepStrictEqual } from 'node:util';
import type { LifecycleEvent } from '@lifecycle/contracts';
import { compareCanonical, historyChange } from '@lifecycle/domain';
import type { RecordedEvent } from '@lifecycle/eventstore';
import type { CustomerChange, StageHistoryChange, StoredCustomer } from '@lifecycle/readmodel';
import type { CustomerState } from './keyed-state.js';
import { customerStream, lifecycleEvents } from './streams.js';

/** What re-folding a customer changes: the writes of one customer in one transaction. */
export interface Decision {
  /** Lifecycle events to append to its stream, at their revisions. */
  readonly events: RecordedEvent[];
  /** The stage changes among them. */
  readonly appended: readonly LifecycleEvent[];
  /** A late touchpoint changed its recorded history. */
  readonly corrected: boolean;
  /** What changed of it for the read models, if anything did. */
  readonly change: CustomerChange | undefined;
}

/**
 * The pure core of the projection: a customer's state (its fold, the touchpoints to fold on, the
 * impressions of the visitors it owns, its recorded lifecycle and row) as of T → the lifecycle
 * events to append and what changed of it for the read models (its row, history and stage
 * history, before and after). Updates the state to what it will be once the writes are
 * committed. The touchpoints added must come after every one folded (a late one needs the
 * fold started again from the stream first).
 */
export function decide(
  state: CustomerState,
  watermark: number,
  causedBy: readonly string[],
  ownerPartition: number | null,
): Decision {
  for (const t of state.added.sort(compareCanonical)) state.fold.add(t);
  state.added = [];
  const snapshot = state.fold.snapshot(state.customerId, state.linked ?? [], watermark);
  const change = historyChange(state.lifecycle, snapshot.timeline);
  const streamId = customerStream(state.customerId);
  const events: RecordedEvent[] = [];
  if (change.retract.length > 0 || change.append.length > 0) {
    const appended = lifecycleEvents(streamId, state.revision, change.retract, causedBy, change.append);
    appended.forEach((event, i) => events.push({ ...event, streamId, revision: state.revision + 1 + i }));
    const retracted = new Set(change.retract);
    const kept = state.lifecycle.filter((e) => !retracted.has(e.revision));
    // The stage changes are the last `append.length` events (a correction, if any, comes first).
    const inForce = events.slice(events.length - change.append.length).map((e) => ({ revision: e.revision, event: e.data as LifecycleEvent }));
    state.lifecycle = [...kept, ...inForce];
    state.revision += events.length;
  }
  const stored = state.stored;
  // A customer without a row is new or being replayed: no stage history of it is recorded either.
  const stageHistory: StageHistoryChange | undefined =
    stored === undefined
      ? { from: 0, changes: snapshot.timeline, replaces: false }
      : events.length > 0
        ? { from: state.lifecycle.length - change.append.length, changes: change.append, replaces: change.retract.length > 0 }
        : undefined;
  const next: StoredCustomer = { row: snapshot.row, history: snapshot.history, ownerPartition };
  const rowChanged = !isDeepStrictEqual(stored, next);
  state.stored = next;
  return {
    events,
    appended: change.append,
    corrected: change.retract.length > 0,
    change: rowChanged || stageHistory !== undefined ? { before: stored, after: next, rowChanged, stageHistory } : undefined,
  };
}
