import type { LifecycleConfig } from '@lifecycle/contracts';
import { bulkInsert, type SqlExecutor } from '@lifecycle/sql';

const IN_LIST = '= ANY($1::text[])';

/** Where each accepted touchpoint id was recorded, for deduplication across batches. */
export async function findTouchpoints(sql: SqlExecutor, ids: readonly string[]): Promise<Map<string, unknown>> {
  if (ids.length === 0) return new Map();
  const rows = await sql.query<{ id: string; data: unknown }>(
    `SELECT t.id, e.data FROM touchpoint_ids t
     JOIN lifecycle_events e ON e.stream_id = t.stream_id AND e.revision = t.revision
     WHERE t.id ${IN_LIST}`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.data]));
}

export async function saveTouchpointIds(sql: SqlExecutor, records: readonly { id: string; stream_id: string; revision: number }[]): Promise<void> {
  await bulkInsert(sql, 'touchpoint_ids', { id: 'text', stream_id: 'text', revision: 'integer' }, records);
}

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

/** The projection's position: the latest event time applied, and the settings it applied them with. */
export interface ProjectionState {
  watermark: number | null;
  config: LifecycleConfig | null;
}

export async function loadProjectionState(sql: SqlExecutor): Promise<ProjectionState> {
  const rows = await sql.query<{ key: string; value: unknown }>('SELECT key, value FROM projection_state');
  const values = new Map(rows.map((r) => [r.key, r.value]));
  return {
    watermark: values.has('watermark') ? Number(values.get('watermark')) : null,
    config: (values.get('config') as LifecycleConfig | undefined) ?? null,
  };
}

export async function saveProjectionState(sql: SqlExecutor, state: ProjectionState): Promise<void> {
  await bulkInsert(
    sql,
    'projection_state',
    { key: 'text', value: 'jsonb' },
    [
      { key: 'watermark', value: state.watermark },
      { key: 'config', value: state.config },
    ],
    'ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',
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
