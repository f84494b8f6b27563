import type { CustomerFold, LinkedImpression, RecordedLifecycleEvent, TimedTouchpoint } from '@lifecycle/domain';
import type { StoredCustomer } from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';

/** What the projector keeps of a customer between its transactions. */
export interface CustomerState {
  readonly customerId: string;
  /**
   * The fold of its touchpoints folded so far, in canonical order. Held instead of the
   * touchpoints: a customer weighs its facts (payments, stage changes...), not its input, and a
   * transaction folds on only what it recorded.
   */
  fold: CustomerFold;
  /** Touchpoints recorded by the transaction under way, not folded yet. */
  added: TimedTouchpoint[];
  /** The lifecycle events of its stream still in force, in order. */
  lifecycle: RecordedLifecycleEvent[];
  /** The last revision of its stream (-1: empty). */
  revision: number;
  /** Its row as committed; undefined before its first one (a new customer, or a replay). */
  stored: StoredCustomer | undefined;
  /** The impressions of the visitors it owns; undefined when they must be read again. */
  linked: LinkedImpression[] | undefined;
}

/**
 * What a held customer weighs, in facts: its fold's, its touchpoints not folded yet, the
 * impressions of its visitors, its lifecycle events, and its row and history (about as much as a
 * few facts).
 */
const weightOf = (state: CustomerState) => state.fold.weight + state.added.length + (state.linked?.length ?? 0) + state.lifecycle.length + ROW_WEIGHT;
const ROW_WEIGHT = 4;

/**
 * Facts held at most by default. On the bench's 600 000 lines, when a state still held the
 * customer's touchpoints, the ingest's live heap after a collection stayed at 240–330 MB with it
 * (held customers and the batch). A fold's facts (a payment, a stage change) are smaller than
 * the touchpoints were.
 */
const DEFAULT_MAX_WEIGHT = 250_000;

/**
 * Keyed state in memory (the customers a projector owns), so that a transaction reads from the
 * store only the customers it has not seen, and writes one row per changed customer.
 *
 * Sound because a customer has one writer: the embedded store has one process (its directory
 * lock), and a Kafka projector instance writes only the customers of the partitions it claimed
 * (a lost owner is fenced). States are changed in place by a transaction's work and are only
 * true once it commits: `transaction` drops them all when it fails, and the next one reads what
 * it needs again. After each transaction, the least recently used customers are dropped until
 * what is held weighs at most `maxWeight` facts (`weightOf`).
 */
export class KeyedState {
  private readonly customers = new Map<string, CustomerState>();
  /** Each held customer's weight when it was last weighed, and their sum. */
  private readonly weights = new Map<string, number>();
  private weight = 0;
  /** The customers handed out since the last weighing: only these can have changed. */
  private readonly touched = new Set<string>();
  private generation: string | null = null;

  constructor(private readonly maxWeight = DEFAULT_MAX_WEIGHT) {}

  /** Runs `work` in a transaction of `db`; on failure, forgets every state (some may hold its uncommitted changes). */
  async transaction<T>(db: SqlDatabase, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    try {
      const result = await db.transaction(work);
      this.evict();
      return result;
    } catch (error) {
      this.clear();
      throw error;
    }
  }

  /** Forgets everything when the read models were replayed since the states were read. */
  follow(generation: string | null): void {
    if (generation === this.generation) return;
    this.clear();
    this.generation = generation;
  }

  get(customerId: string): CustomerState | undefined {
    const state = this.customers.get(customerId);
    if (state !== undefined) {
      // A Map keeps insertion order: the least recently used come first.
      this.customers.delete(customerId);
      this.customers.set(customerId, state);
      this.touched.add(customerId);
    }
    return state;
  }

  set(state: CustomerState): void {
    this.customers.delete(state.customerId);
    this.customers.set(state.customerId, state);
    this.touched.add(state.customerId);
  }

  /** Forgets a customer's linked impressions: a visitor it owns changed. */
  invalidateLinks(customerId: string): void {
    const state = this.customers.get(customerId);
    if (state === undefined) return;
    state.linked = undefined;
    this.touched.add(customerId);
  }

  /** Forgets everything (a failed transaction, or partitions assigned anew). */
  clear(): void {
    this.customers.clear();
    this.weights.clear();
    this.weight = 0;
    this.touched.clear();
  }

  /** The customers held, least recently used first (tests). */
  held(): string[] {
    return [...this.customers.keys()];
  }

  private evict(): void {
    // Weighed after the transaction: its work grew the states it touched, and only those.
    for (const id of this.touched) {
      const state = this.customers.get(id);
      if (state === undefined) continue;
      const weight = weightOf(state);
      this.weight += weight - (this.weights.get(id) ?? 0);
      this.weights.set(id, weight);
    }
    this.touched.clear();
    for (const id of this.customers.keys()) {
      if (this.weight <= this.maxWeight) return;
      this.customers.delete(id);
      this.weight -= this.weights.get(id)!;
      this.weights.delete(id);
    }
  }
}
