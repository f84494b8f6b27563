import type { ChurnReason, Stage } from './read-models.js';

/** Lifecycle events of SPEC §6.3, appended to `customer-<customerId>` after its touchpoints. */
export const LIFECYCLE_EVENT_TYPES = [
  'CustomerReached',
  'CustomerAcquired',
  'CustomerConverted',
  'CustomerRetained',
  'CustomerBecameLoyal',
  'CustomerAtRisk',
  'CustomerRecovered',
  'CustomerChurned',
  'CustomerReactivated',
] as const;
export type LifecycleEventType = (typeof LIFECYCLE_EVENT_TYPES)[number];

/** What made the stage change: a touchpoint, or a deadline passing after one (SPEC §3). */
export type LifecycleCause =
  | { kind: 'touchpoint'; touchpointId: string; touchpointType: string }
  | { kind: 'deadline'; deadline: 'inactivity' | 'payment_grace'; after: string };

export interface LifecycleEvent {
  type: LifecycleEventType;
  /** Event time of the change, ISO-8601 UTC. */
  at: string;
  from: Stage | null;
  to: Stage;
  cause: LifecycleCause;
  /** Only on `CustomerChurned`. */
  reason?: ChurnReason;
}

/**
 * Appended when a late touchpoint changes history: the listed lifecycle events (by their
 * position in the stream) no longer hold; the lifecycle events appended after it replace them.
 */
export interface LifecycleHistoryCorrected {
  type: 'LifecycleHistoryCorrected';
  retractedRevisions: number[];
  causedBy: string[];
}

/** The event carrying an accepted touchpoint in its customer's (or visitor's) stream. */
export const TOUCHPOINT_RECORDED = 'TouchpointRecorded';
