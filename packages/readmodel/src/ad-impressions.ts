import type { Touchpoint, TouchpointOf } from '@lifecycle/contracts';
import type { ImpressionFact } from '@lifecycle/domain';
import { copyRows, type SqlExecutor } from '@lifecycle/sql';
import { turn } from './event-loop.js';
import type { ReadModel } from './read-model.js';

const COLUMNS = ['channel', 'at', 'cost_currency', 'cost_amount'];
/** Set (in projection_state) once the table holds every recorded impression. */
export const IMPRESSIONS_COMPLETE = 'ad_impressions_complete';

const isImpression = (t: Touchpoint): t is TouchpointOf<'ad_impression'> => t.type === 'ad_impression';

interface ImpressionRecord {
  channel: string;
  at: number;
  cost_currency: string | null;
  cost_amount: number | null;
}

const record = (channel: string, occurredAt: string, cost: { currency: string; amountMinor: number } | undefined): ImpressionRecord => ({
  channel,
  at: Date.parse(occurredAt),
  cost_currency: cost?.currency ?? null,
  cost_amount: cost?.amountMinor ?? null,
});

const toFact = (r: { channel: string; at: number | string; cost_currency: string | null; cost_amount: number | string | null }): ImpressionFact => ({
  channel: r.channel,
  at: Number(r.at),
  ...(r.cost_currency !== null ? { cost: { currency: r.cost_currency, amountMinor: Number(r.cost_amount) } } : {}),
});

/** The impressions recorded in the event streams (a scan of every touchpoint event). */
async function recordedImpressions(sql: SqlExecutor): Promise<ImpressionRecord[]> {
  const rows = await sql.query<{ channel: string; occurred_at: string; cost: { currency: string; amountMinor: number } | null }>(
    `SELECT data->'properties'->>'channel' AS channel, data->>'occurredAt' AS occurred_at, data->'properties'->'cost' AS cost
     FROM lifecycle_events WHERE event_type = 'TouchpointRecorded' AND data->>'type' = 'ad_impression'`,
  );
  return rows.map((r) => record(r.channel, r.occurred_at, r.cost ?? undefined));
}

/**
 * `ad_impressions`: every recorded `ad_impression`, of a customer or of a visitor never linked,
 * as channel economics count them (SPEC §4): its channel, instant and cost. Written for the
 * touchpoints each transaction accepts (each is accepted once), and by `replay` for every
 * recorded one.
 */
export const adImpressionsReadModel: ReadModel = {
  tables: ['ad_impressions'],
  write: (sql, changes) =>
    copyRows(
      sql,
      'ad_impressions',
      COLUMNS,
      changes.touchpoints.filter(isImpression).map((t) => record(t.properties.channel, t.occurredAt, t.properties.cost)),
    ),
  async replayed(sql) {
    await sql.query(`INSERT INTO projection_state (key, value) VALUES ($1, 'true') ON CONFLICT (key) DO NOTHING`, [IMPRESSIONS_COMPLETE]);
  },
};

/**
 * Every recorded impression up to `asOf`: from `ad_impressions`, or, in a store whose events
 * predate that table (until its `replay`), from the event streams.
 *
 * Read a few table blocks a statement (a TID range scan; the table has no key to page by, and
 * `ORDER BY ctid LIMIT n` sorts the rest of the table for every page), with a turn of the event
 * loop between them: the embedded store runs each statement on it, and one that read every
 * impression held the process up for a second. The ranges do not overlap, and rows are only
 * inserted (or truncated by `replay`): every row there when the read starts is read once.
 */
export async function readImpressions(sql: SqlExecutor, asOf: number, blocksPerPage = 8): Promise<ImpressionFact[]> {
  const [complete] = await sql.query<{ key: string }>('SELECT key FROM projection_state WHERE key = $1', [IMPRESSIONS_COMPLETE]);
  if (complete === undefined) return (await recordedImpressions(sql)).filter((r) => r.at <= asOf).map(toFact);
  const [size] = await sql.query<{ blocks: number | string }>("SELECT pg_relation_size('ad_impressions') / current_setting('block_size')::int AS blocks");
  const facts: ImpressionFact[] = [];
  // ~140 rows a block: a page of 8 is ~1 100 rows, 20–40 ms on the embedded store.
  for (let first = 0, end = Number(size!.blocks); first < end; first += blocksPerPage) {
    const rows = await sql.query<{ channel: string; at: string; cost_currency: string | null; cost_amount: string | null }>(
      'SELECT channel, at, cost_currency, cost_amount FROM ad_impressions WHERE ctid >= $1::tid AND ctid < $2::tid AND at <= $3',
      [`(${first},0)`, `(${first + blocksPerPage},0)`, asOf],
    );
    for (const r of rows) facts.push(toFact(r));
    await turn();
  }
  return facts;
}
