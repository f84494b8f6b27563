import { createHash } from 'node:crypto';
import { DEFAULT_CONFIG, type Touchpoint } from '@lifecycle/contracts';
import { groupByCustomer, projectAsOf } from '@lifecycle/domain';
import { ConcurrencyError } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { advanceWatermark, exportProjection, ingestLines, KeyedState, openLifecycleStore, projectBatch, replay, type Ownership } from '@lifecycle/projection';
import { assertClaims, FencedError, handoffsPending, MixedWritersError, saveConsumerOffsets, takePartitions, type PartitionClaim } from '@lifecycle/readmodel';
import type { SqlDatabase, SqlExecutor } from '@lifecycle/sql';
import { createTestDatabase } from '../../../test/support/postgres.js';

const TOPIC = 'touchpoints.by-customer';
const GROUP = 'lifecycle-projector.touchpoints';
const PARTITIONS = 4;

const partitionOfKey = (key: string) => createHash('sha1').update(key).digest().readUInt32BE(0) % PARTITIONS;
// As the repartition stage keys messages: by customer, or by visitor for an anonymous impression.
const partitionOf = (t: Touchpoint) => partitionOfKey(t.customerId ?? t.anonymousId!);

/** A projector instance as the Kafka service runs one: its claims, its keyed state, its own connection. */
class Instance {
  readonly keyed = new KeyedState();
  claims: PartitionClaim[] = [];

  constructor(readonly db: SqlDatabase) {}

  get ownership(): Ownership {
    return { topic: TOPIC, partitions: this.claims.map((c) => c.partition), partitionOfVisitor: partitionOfKey };
  }

  async claim(partitions: number[]): Promise<void> {
    this.keyed.clear();
    this.claims = await this.db.transaction((tx) => takePartitions(tx, GROUP, TOPIC, partitions));
  }

  /** One transaction of the instance, retried on a conflict with another instance, as the service does. */
  async write<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.keyed.transaction(this.db, async (tx) => {
          await assertClaims(tx, GROUP, TOPIC, this.claims);
          return work(tx);
        });
      } catch (error) {
        const conflict = error instanceof ConcurrencyError || (error as { code?: string }).code === '40P01';
        if (!conflict || attempt >= 10) throw error;
      }
    }
  }

  project(partition: number, batch: readonly Touchpoint[], nextOffset: number) {
    return this.write(async (tx) => {
      const outcome = await projectBatch(tx, batch, DEFAULT_CONFIG, this.keyed, this.ownership, () => partition);
      await saveConsumerOffsets(tx, GROUP, TOPIC, new Map([[partition, nextOffset]]));
      return outcome;
    });
  }

  settle() {
    return this.write((tx) => advanceWatermark(tx, Number.NEGATIVE_INFINITY, DEFAULT_CONFIG, this.keyed, this.ownership));
  }
}

describe('projector instances own the customers of their partitions (PostgreSQL)', () => {
  let url: string;
  let drop: () => Promise<void>;
  const open: SqlDatabase[] = [];
  const connect = async (name: string) => {
    const db = await openLifecycleStore({ databaseUrl: `${url}?application_name=${name}` });
    open.push(db);
    return db;
  };
  beforeEach(async () => {
    ({ url, drop } = await createTestDatabase());
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
    await drop();
  });

  test('two instances writing at once: no customer written by both, and the read models of the whole set', async () => {
    // Registrations without a channel take their visitor's (SPEC §3): a late impression changes the customer.
    const withoutChannel = (t: Touchpoint): Touchpoint => {
      const { channel: _, ...properties } = t.properties as Record<string, unknown>;
      return { ...t, properties } as Touchpoint;
    };
    const touchpoints = [...generateTouchpoints({ customers: 300, seed: 5, months: 10 })].map((t) =>
      t.type === 'registration' && t.anonymousId !== undefined ? withoutChannel(t) : t,
    );
    const byPartition: Touchpoint[][] = Array.from({ length: PARTITIONS }, () => []);
    for (const t of touchpoints) byPartition[partitionOf(t)]!.push(t);
    // Any arrival order (SPEC §6.1): shuffled, many impressions come after the registration that took their visitor.
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (const list of byPartition) {
      for (let i = list.length - 1; i > 0; i -= 1) {
        const j = Math.floor(random() * (i + 1));
        [list[i], list[j]] = [list[j]!, list[i]!];
      }
    }
    // The impressions of a visitor and the registration that takes it on different partitions,
    // owned by different instances: the case that needs no shared lock but a nudge.
    const crossing = touchpoints.filter((t) => t.type === 'registration' && t.anonymousId !== undefined && partitionOf(t) % 2 !== partitionOfKey(t.anonymousId) % 2);
    expect(crossing.length).toBeGreaterThan(10);

    const setup = await connect('setup');
    await setup.exec(`
      CREATE TABLE customer_writes (customer_id text NOT NULL, writer text NOT NULL);
      CREATE FUNCTION log_customer_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO customer_writes VALUES (NEW.customer_id, current_setting('application_name')); RETURN NEW; END $$;
      CREATE TRIGGER customer_writes AFTER INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION log_customer_write();
      CREATE TABLE cell_writes (cohort_period integer, period_offset integer, part integer, writer text NOT NULL);
      CREATE FUNCTION log_cell_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO cell_writes VALUES (NEW.cohort_period, NEW.period_offset, NEW.part, current_setting('application_name')); RETURN NEW; END $$;
      CREATE TRIGGER cell_writes AFTER INSERT OR UPDATE ON cohort_cell_parts FOR EACH ROW EXECUTE FUNCTION log_cell_write();`);
    const a = new Instance(await connect('instance-a'));
    const b = new Instance(await connect('instance-b'));
    await a.claim([0, 2]);
    await b.claim([1, 3]);

    // Each instance goes through its partitions chunk by chunk, taking turns between them, while
    // the other does the same: their transactions overlap.
    const run = async (instance: Instance) => {
      const mine = instance.claims.map((c) => byPartition[c.partition]!);
      for (let i = 0; mine.some((p) => i < p.length); i += 25) {
        for (const claim of instance.claims) {
          const chunk = byPartition[claim.partition]!.slice(i, i + 25);
          if (chunk.length > 0) await instance.project(claim.partition, chunk, i + chunk.length);
        }
      }
    };
    await Promise.all([run(a), run(b)]);
    // Once the group has consumed everything, settles leave each instance's customers final: one
    // takes the link requests the other left it, and may nudge the other's customers in turn.
    do {
      await a.settle();
      await b.settle();
    } while (await handoffsPending(setup));

    const writers = await setup.query<{ customer_id: string; writers: string[] }>(
      'SELECT customer_id, array_agg(DISTINCT writer ORDER BY writer) AS writers FROM customer_writes GROUP BY customer_id',
    );
    const owners = new Map(touchpoints.filter((t) => t.customerId !== undefined).map((t) => [t.customerId!, partitionOf(t) % 2 === 0 ? 'instance-a' : 'instance-b']));
    expect(writers.length).toBe(owners.size);
    for (const { customer_id, writers: names } of writers) expect([customer_id, names]).toEqual([customer_id, [owners.get(customer_id)]]);

    // Cohort cells too: both instances added to the same cells, each to the parts of its own partitions.
    const cellWriters = await setup.query<{ part: number; writers: string[] }>('SELECT part, array_agg(DISTINCT writer ORDER BY writer) AS writers FROM cell_writes GROUP BY part ORDER BY part');
    expect(cellWriters).toEqual([0, 1, 2, 3].map((part) => ({ part, writers: [part % 2 === 0 ? 'instance-a' : 'instance-b'] })));
    const [{ shared }] = (await setup.query<{ shared: string }>(
      'SELECT count(*) AS shared FROM (SELECT 1 FROM cell_writes GROUP BY cohort_period, period_offset HAVING count(DISTINCT writer) = 2) s',
    )) as [{ shared: string }];
    expect(Number(shared)).toBeGreaterThan(0);

    const { inputs, latest } = groupByCustomer(touchpoints);
    const expected = projectAsOf(inputs, latest, DEFAULT_CONFIG);
    const actual = await exportProjection(setup, DEFAULT_CONFIG);
    expect(actual.asOf).toBe(latest);
    expect(actual.customers).toEqual(expected.customers);
    expect(actual.cohorts).toEqual(expected.cohorts);
    // A replay keeps each customer with its owner: the owner looks for its due churns by partition.
    const partitions = () => setup.query('SELECT customer_id, owner_partition FROM customers ORDER BY customer_id');
    const before = await partitions();
    expect(before.every((r) => r['owner_partition'] !== null)).toBe(true);
    await replay(setup, DEFAULT_CONFIG);
    expect(await partitions()).toEqual(before);
    expect((await exportProjection(setup, DEFAULT_CONFIG)).customers).toEqual(expected.customers);

    // The instances did nudge each other's customers (or this test proves nothing about nudges).
    const inserted = async (table: string) =>
      Number((await setup.query<{ n: string }>('SELECT n_tup_ins AS n FROM pg_stat_user_tables WHERE relname = $1', [table]))[0]!.n);
    expect(await inserted('customer_nudges')).toBeGreaterThan(10);
    // And registrations handed their visitors' links to the visitors' owners.
    expect(await inserted('visitor_link_requests')).toBeGreaterThan(10);
  }, 120_000);

  test('an instance whose partitions were claimed by another cannot commit, and the new owner waits for its transaction in flight', async () => {
    const touchpoints = [...generateTouchpoints({ customers: 20, seed: 9, months: 3 })].filter((t) => t.customerId !== undefined);
    const [first, second] = [touchpoints.slice(0, 40), touchpoints.slice(40, 80)];
    const zombie = new Instance(await connect('zombie'));
    const successor = new Instance(await connect('successor'));
    await zombie.claim([0, 1]);
    await zombie.project(0, first, 40);

    // The zombie's transaction in flight holds its claims: the successor's claim waits for it.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const claimsLocked = new Promise<void>((resolve) => (locked = resolve));
    const inFlight = zombie.write(async (tx) => {
      await saveConsumerOffsets(tx, GROUP, TOPIC, new Map([[0, 41]]));
      locked();
      await held;
    });
    await claimsLocked;
    let claimed = false;
    const claiming = successor.claim([0]).then(() => (claimed = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(claimed).toBe(false);
    release();
    await inFlight;
    await claiming;
    expect(successor.claims).toEqual([{ partition: 0, epoch: 2 }]);

    const count = async () => Number((await successor.db.query<{ n: string }>('SELECT count(*) AS n FROM lifecycle_events'))[0]!.n);
    const offsets = () => successor.db.query('SELECT partition, next_offset, epoch FROM consumer_offsets ORDER BY partition');
    const [eventsBefore, offsetsBefore] = [await count(), await offsets()];
    await expect(zombie.project(0, second, 80)).rejects.toBeInstanceOf(FencedError);
    // Partition 1 is still the zombie's, but a transaction of it checks all its claims.
    await expect(zombie.project(1, second, 40)).rejects.toThrow(/partitions 0 of touchpoints.by-customer were claimed by another projector instance/);
    expect(await count()).toBe(eventsBefore);
    expect(await offsets()).toEqual(offsetsBefore);
    expect(offsetsBefore).toEqual([
      { partition: 0, next_offset: 41, epoch: 2 },
      { partition: 1, next_offset: 0, epoch: 1 },
    ]);

    // The successor goes on from the offset the zombie committed before it lost the partition.
    await successor.project(0, second, 80);
    expect(await count()).toBeGreaterThan(eventsBefore);
  }, 60_000);

  test('an embedded-style writer and projector instances are never let into one database', async () => {
    const batch = [...generateTouchpoints({ customers: 20, seed: 5, months: 3 })];
    const count = async (db: SqlDatabase) => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM lifecycle_events'))[0]!.n);

    // A database of projectors: `ingest --database` (the embedded ownership) is refused, nothing written.
    const instance = new Instance(await connect('projector'));
    await instance.claim([0, 1]);
    await instance.project(0, batch.filter((t) => partitionOf(t) === 0), 10);
    const before = await count(instance.db);
    const ingest = await connect('ingest');
    await expect(ingestLines(ingest, batch.map((t) => Buffer.from(JSON.stringify(t))), { config: DEFAULT_CONFIG })).rejects.toThrow(
      /written by Kafka projectors \(group lifecycle-projector.touchpoints, topic touchpoints.by-customer\).*lifecycle produce/,
    );
    await expect(ingest.transaction((tx) => advanceWatermark(tx, Date.now(), DEFAULT_CONFIG))).rejects.toBeInstanceOf(MixedWritersError);
    expect(await count(instance.db)).toBe(before);

    // A database that `ingest --database` wrote to: no instance claims partitions in it.
    await drop();
    ({ url, drop } = await createTestDatabase());
    const embedded = await connect('embedded');
    await ingestLines(embedded, batch.map((t) => Buffer.from(JSON.stringify(t))), { config: DEFAULT_CONFIG });
    const latecomer = new Instance(await connect('latecomer'));
    await expect(latecomer.claim([0])).rejects.toThrow(/holds customers written without Kafka .*project into a database of its own/);
    expect(await embedded.query('SELECT * FROM consumer_offsets')).toEqual([]);
  }, 60_000);
});
