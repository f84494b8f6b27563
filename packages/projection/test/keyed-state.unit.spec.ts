import { DEFAULT_CONFIG } from '@lifecycle/contracts';
import { CustomerFold, type TimedTouchpoint } from '@lifecycle/domain';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { KeyedState, type CustomerState } from '@lifecycle/projection';

// Only the transaction boundary matters here: eviction happens after a commit, everything is
// forgotten after a failure.
const db = { transaction: <T>(work: (tx: SqlExecutor) => Promise<T>) => work({} as SqlExecutor) } as unknown as SqlDatabase;
const failing = { transaction: async () => Promise.reject(new Error('rolled back')) } as unknown as SqlDatabase;

const fact = {} as TimedTouchpoint;
// Touchpoints not folded yet weigh one fact each, as do the fold's own facts.
const state = (customerId: string, touchpoints: number, linked = 0): CustomerState => ({
  customerId,
  fold: new CustomerFold(DEFAULT_CONFIG, true),
  added: Array.from({ length: touchpoints }, () => fact),
  lifecycle: [],
  revision: touchpoints - 1,
  stored: undefined,
  linked: linked === 0 ? undefined : Array.from({ length: linked }, () => ({ impression: fact, linkAt: 0 })),
});

describe('KeyedState', () => {
  test('after a commit, drops the least recently used customers until what it holds weighs at most its bound', async () => {
    // Each customer weighs its facts plus 4 for its row and history.
    const keyed = new KeyedState(30);
    await keyed.transaction(db, async () => {
      keyed.set(state('a', 6)); // 10
      keyed.set(state('b', 6)); // 10
      keyed.set(state('c', 6)); // 10
      keyed.get('a'); // a is now the most recently used
      keyed.set(state('d', 2, 4)); // 10: the visitors' impressions count too
    });
    expect(keyed.held()).toEqual(['c', 'a', 'd']);
    // Facts appended to a held state count once the transaction is over.
    await keyed.transaction(db, async () => {
      keyed.get('d')!.added.push(fact);
    });
    expect(keyed.held()).toEqual(['a', 'd']);
  });

  test('forgets everything when a transaction fails: the states may hold its uncommitted changes', async () => {
    const keyed = new KeyedState();
    await keyed.transaction(db, async () => keyed.set(state('a', 1)));
    await expect(keyed.transaction(failing, async () => undefined)).rejects.toThrow('rolled back');
    expect(keyed.held()).toEqual([]);
  });
});
