import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CHURN_REASONS, REJECTION_REASONS, TOUCHPOINT_TYPES, type LifecycleEvent, type RejectionReason, type Touchpoint } from '@lifecycle/contracts';

/** One registry per service, every series labelled with the service (SPEC §8). */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Point-in-time values, read when Prometheus scrapes (never on a timer). */
export interface MetricSources {
  customersByStage?: () => Promise<Record<string, number>>;
  /** Rolling churn rate (SPEC §4) per window label, 0..1. */
  churnRates?: () => Promise<Record<string, number>>;
  /** Messages not yet consumed, per topic and partition (distributed mode). */
  consumerLag?: () => Promise<readonly { topic: string; partition: number; messages: number }[]>;
}

/**
 * Reads a source at scrape time. A source that fails (broker coordinator not ready yet, database
 * away) leaves its series absent for this scrape instead of failing the whole scrape: the other
 * metrics, and `up`, are what tells on-call what is wrong.
 */
async function readSource<T>(source: (() => Promise<T>) | undefined): Promise<T | undefined> {
  if (!source) return undefined;
  try {
    return await source();
  } catch {
    return undefined;
  }
}

const touchpointType = (type: string) => ((TOUCHPOINT_TYPES as readonly string[]).includes(type) ? type : 'unknown');

export class LifecycleMetrics {
  readonly touchpoints: Counter<'type' | 'outcome'>;
  readonly rejected: Counter<'reason'>;
  readonly stageTransitions: Counter<'from' | 'to'>;
  readonly churned: Counter<'reason'>;
  readonly reactivated: Counter;
  readonly batchDuration: Histogram;
  readonly storeErrors: Counter<'store'>;

  constructor(registry: Registry, sources: MetricSources = {}) {
    const registers = [registry];
    this.touchpoints = new Counter({
      name: 'lifecycle_touchpoints_total',
      help: 'Touchpoints received, by type and outcome (accepted, duplicate, rejected).',
      labelNames: ['type', 'outcome'] as const,
      registers,
    });
    this.rejected = new Counter({
      name: 'lifecycle_touchpoints_rejected_total',
      help: 'Touchpoints sent to the dead-letter destination, by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    this.stageTransitions = new Counter({
      name: 'lifecycle_stage_transitions_total',
      help: 'Lifecycle stage changes appended to customer streams, by from and to stage.',
      labelNames: ['from', 'to'] as const,
      registers,
    });
    this.churned = new Counter({
      name: 'lifecycle_churned_customers_total',
      help: 'Churns recorded (CustomerChurned events), by reason.',
      labelNames: ['reason'] as const,
      registers,
    });
    this.reactivated = new Counter({
      name: 'lifecycle_reactivated_customers_total',
      help: 'Reactivations recorded (CustomerReactivated events).',
      registers,
    });
    this.batchDuration = new Histogram({
      name: 'lifecycle_batch_duration_seconds',
      help: 'Time to project one batch, from receiving it to committing its read models.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.storeErrors = new Counter({
      name: 'lifecycle_store_errors_total',
      help: 'Failed operations on the event store or the read-model database.',
      labelNames: ['store'] as const,
      registers,
    });
    // Every known reason is exported from the start, at 0: prom-client shows a labelled series only
    // after its first inc(), and `increase()` counts from a series' first sample, so the first
    // churn wave (or dead-letter surge) after a restart would otherwise add ~0 and page nobody.
    for (const reason of CHURN_REASONS) this.churned.inc({ reason }, 0);
    for (const reason of REJECTION_REASONS) this.rejected.inc({ reason }, 0);
    const { customersByStage, churnRates, consumerLag } = sources;
    new Gauge({
      name: 'lifecycle_customers',
      help: 'Customers by current stage.',
      labelNames: ['stage'] as const,
      registers,
      async collect() {
        this.reset();
        for (const [stage, count] of Object.entries((await readSource(customersByStage)) ?? {})) this.set({ stage }, count);
      },
    });
    new Gauge({
      name: 'lifecycle_churn_rate',
      help: 'Rolling churn rate: customers churned in the window over customers converted and not churned at its start.',
      labelNames: ['window'] as const,
      registers,
      async collect() {
        this.reset();
        for (const [window, rate] of Object.entries((await readSource(churnRates)) ?? {})) this.set({ window }, rate);
      },
    });
    new Gauge({
      name: 'lifecycle_consumer_lag_messages',
      help: 'Messages of a topic partition the projector has not consumed yet.',
      labelNames: ['topic', 'partition'] as const,
      registers,
      async collect() {
        this.reset();
        for (const { topic, partition, messages } of (await readSource(consumerLag)) ?? []) this.set({ topic, partition: String(partition) }, messages);
      },
    });
  }

  /** Counts one projected batch: each outcome once, each appended stage change once. */
  recordBatch(outcome: { accepted: readonly Touchpoint[]; duplicates: readonly Touchpoint[]; conflicts: readonly Touchpoint[]; stageChanges: readonly LifecycleEvent[] }, seconds?: number): void {
    for (const t of outcome.accepted) this.touchpoints.inc({ type: t.type, outcome: 'accepted' });
    for (const t of outcome.duplicates) this.touchpoints.inc({ type: t.type, outcome: 'duplicate' });
    for (const t of outcome.conflicts) this.recordRejection('id_conflict', t.type);
    for (const change of outcome.stageChanges) {
      this.stageTransitions.inc({ from: change.from ?? 'none', to: change.to });
      if (change.type === 'CustomerChurned') this.churned.inc({ reason: change.reason ?? 'inactivity' });
      if (change.type === 'CustomerReactivated') this.reactivated.inc();
    }
    if (seconds !== undefined) this.batchDuration.observe(seconds);
  }

  recordRejection(reason: RejectionReason, type = 'unknown'): void {
    this.rejected.inc({ reason });
    this.touchpoints.inc({ type: touchpointType(type), outcome: 'rejected' });
  }
}
