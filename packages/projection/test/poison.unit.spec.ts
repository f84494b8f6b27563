import { ConcurrencyError } from '@lifecycle/eventstore';
import { ConfigMismatchError, isolatePoison, mayBeCausedByInput, storeRejection } from '@lifecycle/projection';

const sqlError = (code: string, message = `sqlstate ${code}`) => Object.assign(new Error(message), { code });

/** A store that refuses any attempt holding one of `poison`, and records what it committed. */
function store(poison: ReadonlySet<number>, error: () => unknown = () => sqlError('22P05', 'unsupported Unicode escape sequence')) {
  const committed: number[] = [];
  const attempts: number[][] = [];
  return {
    committed,
    attempts,
    attempt: async (items: readonly number[]) => {
      attempts.push([...items]);
      if (items.some((i) => poison.has(i))) throw error();
      committed.push(...items);
    },
  };
}

describe('isolatePoison: a batch the store refuses is split until the one item it refuses alone', () => {
  const items = Array.from({ length: 100 }, (_, i) => i);

  test('every other item is committed, in order, and each poison item is quarantined with its error', async () => {
    const s = store(new Set([17, 18, 63]));
    const quarantined: [number, string][] = [];
    await isolatePoison(items, s.attempt, async (item, error) => void quarantined.push([item, (error as Error).message]));
    expect(s.committed).toEqual(items.filter((i) => ![17, 18, 63].includes(i)));
    expect(quarantined).toEqual([17, 18, 63].map((i) => [i, 'unsupported Unicode escape sequence']));
    // log2(100) levels, not one attempt per item.
    expect(s.attempts.length).toBeLessThan(50);
  });

  test('an item that fails once and then succeeds (a race) is committed, not quarantined', async () => {
    let failures = 1;
    const committed: number[] = [];
    const quarantined: number[] = [];
    await isolatePoison(
      [1, 2, 3],
      async (part) => {
        if (part.includes(2) && failures-- > 0) throw sqlError('23505');
        committed.push(...part);
      },
      async (item) => void quarantined.push(item),
    );
    expect(quarantined).toEqual([]);
    expect(committed.sort()).toEqual([1, 2, 3]);
  });

  test.each([
    ['a lost connection', () => sqlError('08006')],
    ['a serialization failure', () => sqlError('40001')],
    ['a server shutting down', () => sqlError('57P01')],
    ['a socket error', () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['a terminated connection', () => new Error('Connection terminated unexpectedly')],
    ['a concurrency conflict', () => new ConcurrencyError('customer-c', 1, 2)],
    ['other settings', () => new ConfigMismatchError('the read models were projected with other settings')],
    // A heartbeat during a rebalance, after the part committed: blaming a touchpoint for it dead-lettered a stored one.
    ['a Kafka rebalance', () => Object.assign(new Error('The group is rebalancing, so a rejoin is needed'), { name: 'KafkaJSProtocolError', code: 27, type: 'REBALANCE_IN_PROGRESS' })],
    ['an error nobody classified', () => new Error('something else went wrong')],
  ])('%s is thrown at once, never blamed on an item', async (_name, error) => {
    const thrown = error();
    const s = store(new Set([5]), () => thrown);
    const quarantined: number[] = [];
    await expect(isolatePoison(items, s.attempt, async (item) => void quarantined.push(item))).rejects.toBe(thrown);
    expect(quarantined).toEqual([]);
    expect(s.attempts).toHaveLength(1);
  });

  test('a bug of ours (no SQLSTATE) may be the data: it is isolated too', async () => {
    const s = store(new Set([3]), () => new TypeError("Cannot read properties of undefined (reading 'at')"));
    const quarantined: number[] = [];
    await isolatePoison([1, 2, 3, 4], s.attempt, async (item) => void quarantined.push(item));
    expect(quarantined).toEqual([3]);
    expect(s.committed).toEqual([1, 2, 4]);
  });
});

describe('mayBeCausedByInput', () => {
  test.each([
    ['22021', true], // invalid byte sequence
    ['22P02', true], // invalid text representation
    ['23505', true],
    ['54001', true], // stack depth
    ['08001', false],
    ['42501', false], // privileges: the deployment, not the data
    ['53100', false], // disk full
    ['XX000', false],
  ])('SQLSTATE %s → %s', (code, expected) => {
    expect(mayBeCausedByInput(sqlError(code))).toBe(expected);
  });
});

test('storeRejection names the reason, the store’s message and its code', () => {
  expect(storeRejection(sqlError('22012', 'division by zero'))).toEqual({ reason: 'store_rejected', issues: [{ path: '', message: 'division by zero (code 22012)' }] });
});
