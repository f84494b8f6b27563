import type { LifecycleConfig } from '@lifecycle/contracts';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';

const IN_LIST = '= ANY($1::text[])';

/** A visitor's owner (SPEC §5): the customer of the earliest registration carrying it. */
export interface VisitorLink {
  anonymousId: string;
  customerId: string;
  linkAt: number;
  registrationId: string;
}

interface LinkRecord {
  anonymous_id: string;
  customer_id: string;
  link_at: number | string;
  registration_id: string;
}

const toLink = (r: LinkRecord): VisitorLink => ({ anonymousId: r.anonymous_id, customerId: r.customer_id, linkAt: Number(r.link_at), registrationId: r.registration_id });

export async function loadVisitorLinks(sql: SqlExecutor, anonymousIds: readonly string[]): Promise<Map<string, VisitorLink>> {
  if (anonymousIds.length === 0) return new Map();
  const rows = await sql.query<LinkRecord>(`SELECT * FROM visitor_links WHERE anonymous_id ${IN_LIST}`, [anonymousIds]);
  return new Map(rows.map((r) => [r.anonymous_id, toLink(r)]));
}

export async function linksOfCustomers(sql: SqlExecutor, customerIds: readonly string[]): Promise<VisitorLink[]> {
  if (customerIds.length === 0) return [];
  return (await sql.query<LinkRecord>(`SELECT * FROM visitor_links WHERE customer_id ${IN_LIST}`, [customerIds])).map(toLink);
}

export async function saveVisitorLinks(sql: SqlExecutor, links: readonly VisitorLink[]): Promise<void> {
  const records = links.map((l) => ({ anonymous_id: l.anonymousId, customer_id: l.customerId, link_at: l.linkAt, registration_id: l.registrationId }));
  await bulkInsert(
    sql,
    'visitor_links',
    { anonymous_id: 'text', customer_id: 'text', link_at: 'bigint', registration_id: 'text' },
    records,
    'ON CONFLICT (anonymous_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, link_at = EXCLUDED.link_at, registration_id = EXCLUDED.registration_id',
  );
}

/**
 * Asks the owner of each link's visitor (by the partition of the by-customer topic that holds
 * the visitor's impressions) to apply it: a registration recorded once leaves one request.
 */
export async function requestVisitorLinks(sql: SqlExecutor, links: readonly (VisitorLink & { visitorPartition: number })[]): Promise<void> {
  const records = links.map((l) => ({ registration_id: l.registrationId, anonymous_id: l.anonymousId, customer_id: l.customerId, link_at: l.linkAt, visitor_partition: l.visitorPartition }));
  await bulkInsert(
    sql,
    'visitor_link_requests',
    { registration_id: 'text', anonymous_id: 'text', customer_id: 'text', link_at: 'bigint', visitor_partition: 'integer' },
    records,
    'ON CONFLICT (registration_id) DO NOTHING',
  );
}

/** Takes the link requests for the visitors of `partitions`. */
export async function takeVisitorLinkRequests(sql: SqlExecutor, partitions: readonly number[]): Promise<VisitorLink[]> {
  const rows = await sql.query<LinkRecord>(
    'DELETE FROM visitor_link_requests WHERE visitor_partition = ANY($1::integer[]) RETURNING anonymous_id, customer_id, link_at, registration_id',
    [partitions],
  );
  return rows.map(toLink);
}

/**
 * Whether one instance left work for another that it has not taken yet (a nudge, a link
 * request): a group is settled only once there is none.
 */
export async function handoffsPending(sql: SqlExecutor): Promise<boolean> {
  const [row] = await sql.query<{ pending: boolean }>('SELECT EXISTS (SELECT 1 FROM customer_nudges) OR EXISTS (SELECT 1 FROM visitor_link_requests) AS pending');
  return row!.pending;
}

/** The projection's position: the latest event time applied, and the settings it applied them with. */
export interface ProjectionState {
  /** The largest of the scopes' watermarks (see `saveWatermark`). */
  watermark: number | null;
  config: LifecycleConfig | null;
  /** Changes with every `replay`: what a process holds of the read models from before it is stale. */
  generation: string | null;
}

const WATERMARK = 'watermark';

export async function loadProjectionState(sql: SqlExecutor): Promise<ProjectionState> {
  const rows = await sql.query<{ key: string; value: unknown }>('SELECT key, value FROM projection_state');
  let watermark: number | null = null;
  let config: LifecycleConfig | null = null;
  let generation: string | null = null;
  for (const { key, value } of rows) {
    if (key === 'config') config = value as LifecycleConfig;
    else if (key === 'generation') generation = value as string;
    else if (key === WATERMARK || key.startsWith(`${WATERMARK}:`)) watermark = Math.max(watermark ?? Number.NEGATIVE_INFINITY, Number(value));
  }
  return { watermark, config, generation };
}

/** Starts a new generation of the read models (`replay`). */
export async function saveGeneration(sql: SqlExecutor, generation: string): Promise<void> {
  await sql.query("INSERT INTO projection_state (key, value) VALUES ('generation', $1::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [
    JSON.stringify(generation),
  ]);
}

/** Records the settings the read models are projected with, unless some are recorded already. */
export async function saveConfig(sql: SqlExecutor, config: LifecycleConfig): Promise<void> {
  // DO NOTHING, not an update: instances would queue on the one row's lock at every commit.
  await sql.query("INSERT INTO projection_state (key, value) VALUES ('config', $1::jsonb) ON CONFLICT (key) DO NOTHING", [JSON.stringify(config)]);
}

/**
 * Records how far each of `scopes` has seen event time, in one statement: the embedded store and
 * `replay` have one scope (undefined); each Kafka partition has its own, written only by its
 * owner, so instances never wait on each other's watermark. T is the largest of them (SPEC §3:
 * churn by event time).
 */
export async function saveWatermark(sql: SqlExecutor, watermark: number, scopes: readonly (string | undefined)[]): Promise<void> {
  if (scopes.length === 0) return;
  const keys = [...new Set(scopes.map((scope) => (scope === undefined ? WATERMARK : `${WATERMARK}:${scope}`)))].sort();
  await sql.query(
    'INSERT INTO projection_state (key, value) SELECT key, $2::jsonb FROM unnest($1::text[]) AS key ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',
    [keys, JSON.stringify(watermark)],
  );
}

/** The next offset to consume per partition, as committed with the read models. */
export async function loadConsumerOffsets(sql: SqlExecutor, groupId: string, topic: string): Promise<Map<number, number>> {
  const rows = await sql.query<{ partition: number; next_offset: number | string }>(
    'SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
    [groupId, topic],
  );
  return new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
}

/** A partition's ownership as taken by `takePartitions`. */
export interface PartitionClaim {
  partition: number;
  epoch: number;
}

/** The partitions' claims are held by a newer owner: this instance lost them. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
}

/** An embedded-style writer and Kafka projectors on one database: nothing would fence one from the other. */
export class MixedWritersError extends Error {
  override readonly name = 'MixedWritersError';
}

// Taken shared by every transaction of an embedded-style writer and exclusively by a projector
// claiming partitions: whichever of the two comes second sees what the first committed.
const WRITERS_LOCK = 7_140_512_201;

/**
 * Refuses an embedded-style write (`ingest --database`, all customers and no partition) to a
 * database that Kafka projectors write to: they own their partitions' customers, and nothing
 * fences such a writer from them. Checked in each of its transactions.
 */
export async function assertNoProjectors(sql: SqlExecutor): Promise<void> {
  await sql.query('SELECT pg_advisory_xact_lock_shared($1)', [WRITERS_LOCK]);
  const [claim] = await sql.query<{ group_id: string; topic: string }>('SELECT group_id, topic FROM consumer_offsets LIMIT 1');
  if (claim !== undefined) {
    throw new MixedWritersError(
      `this database is written by Kafka projectors (group ${claim.group_id}, topic ${claim.topic}); a writer of its own ` +
        '(`ingest --database`) would write customers that no projector owns, with nothing to keep the two apart: ' +
        'send the lines through Kafka (`lifecycle produce`), or ingest into a database of its own',
    );
  }
}

/** The other side of `assertNoProjectors`: refuses to claim partitions in a database an embedded-style writer wrote customers to. */
export async function assertNoEmbeddedWriters(sql: SqlExecutor): Promise<void> {
  await sql.query('SELECT pg_advisory_xact_lock($1)', [WRITERS_LOCK]);
  const [customer] = await sql.query<{ customer_id: string }>('SELECT customer_id FROM customers WHERE owner_partition IS NULL LIMIT 1');
  if (customer !== undefined) {
    throw new MixedWritersError(
      `this database holds customers written without Kafka (\`ingest --database\`), ${JSON.stringify(customer.customer_id)} among them, ` +
        'which no projector instance would own: project into a database of its own',
    );
  }
}

/**
 * Claims partitions for a new owner: each one's epoch moves up by one, so that the previous
 * owner, should it still run, can no longer commit (`assertClaims`). Waits for a transaction of
 * the previous owner that holds a partition's row, so the offsets returned include it.
 */
export async function takePartitions(sql: SqlExecutor, groupId: string, topic: string, partitions: readonly number[]): Promise<PartitionClaim[]> {
  if (partitions.length === 0) return [];
  await assertNoEmbeddedWriters(sql);
  // In partition order: two new owners claiming overlapping sets cannot deadlock.
  const rows = await sql.query<{ partition: number; epoch: number }>(
    `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, epoch)
     SELECT $1, $2, p, 0, 1 FROM unnest($3::integer[]) AS p ORDER BY p
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET epoch = consumer_offsets.epoch + 1
     RETURNING partition, epoch`,
    [groupId, topic, [...partitions].sort((a, b) => a - b)],
  );
  return rows.map((r) => ({ partition: r.partition, epoch: r.epoch }));
}

/**
 * Locks the claimed partitions' rows for the rest of the transaction, or throws FencedError
 * when another owner claimed one since: the first statement of every write of a projector
 * instance, so a lost owner writes nothing.
 */
export async function assertClaims(sql: SqlExecutor, groupId: string, topic: string, claims: readonly PartitionClaim[]): Promise<void> {
  if (claims.length === 0) return;
  const sorted = [...claims].sort((a, b) => a.partition - b.partition);
  const held = await sql.query<{ partition: number }>(
    `SELECT o.partition FROM consumer_offsets o
     JOIN unnest($3::integer[], $4::integer[]) AS c(partition, epoch) ON c.partition = o.partition AND c.epoch = o.epoch
     WHERE o.group_id = $1 AND o.topic = $2 ORDER BY o.partition FOR UPDATE OF o`,
    [groupId, topic, sorted.map((c) => c.partition), sorted.map((c) => c.epoch)],
  );
  if (held.length !== claims.length) {
    const lost = sorted.filter((c) => !held.some((h) => h.partition === c.partition)).map((c) => c.partition);
    throw new FencedError(`partitions ${lost.join(', ')} of ${topic} were claimed by another projector instance (group ${groupId}): this one no longer owns them`);
  }
}

/** Moves the claimed partitions' offsets forward (never back), in the transaction that `assertClaims` locked them in. */
export async function saveConsumerOffsets(sql: SqlExecutor, groupId: string, topic: string, offsets: ReadonlyMap<number, number>): Promise<void> {
  const records = [...offsets].map(([partition, next_offset]) => ({ group_id: groupId, topic, partition, next_offset }));
  await bulkInsert(
    sql,
    'consumer_offsets',
    { group_id: 'text', topic: 'text', partition: 'integer', next_offset: 'bigint' },
    records,
    'ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset)',
  );
}

/**
 * Asks the owners of `customers` (by partition) to re-fold them. Each nudge is a row of its own,
 * never a conflict with one already there: an owner that takes nudges meanwhile neither waits for
 * this transaction nor takes its nudge before it commits, and takes it in its next transaction
 * (relying on a nudge already there lost the wake-up when the owner took it first, as the fault
 * soak found: test/soak/lost-nudge.int.spec.ts; locking that row made instances wait on each other).
 */
export async function nudgeCustomers(sql: SqlExecutor, customers: ReadonlyMap<string, number>): Promise<void> {
  const records = [...customers].map(([customer_id, owner_partition]) => ({ customer_id, owner_partition }));
  await bulkInsert(sql, 'customer_nudges', { customer_id: 'text', owner_partition: 'integer' }, records);
}

/** Takes the nudges for the customers of `partitions` (all of them when null): each nudged customer once. */
export async function takeNudges(sql: SqlExecutor, partitions: readonly number[] | null): Promise<string[]> {
  const rows =
    partitions === null
      ? await sql.query<{ customer_id: string }>('DELETE FROM customer_nudges RETURNING customer_id')
      : await sql.query<{ customer_id: string }>('DELETE FROM customer_nudges WHERE owner_partition = ANY($1::integer[]) RETURNING customer_id', [partitions]);
  return [...new Set(rows.map((r) => r.customer_id))];
}
