import type { Migration } from '@lifecycle/sql';
import { adImpressionsReadModel, IMPRESSIONS_COMPLETE } from './ad-impressions.js';
import { COHORT_CELL_DAYS_COMPLETE, cohortCellDaysReadModel } from './cohort-cell-days.js';
import { cohortCellsReadModel } from './cohort-cells.js';
import { customersReadModel } from './customers.js';
import type { ReadModel } from './read-model.js';
import { stageChangesReadModel } from './stage-changes.js';

/**
 * The analyst views over `cohort_cells`, as migration 0108 created them; migration 0111 creates
 * them again (unchanged) over `cohort_cells`, which became a view of the partitions' parts.
 */
const ANALYST_COHORT_VIEWS = `
      -- The cohort table of export cohorts: cumulative converted, retention = active / size.
      CREATE VIEW analyst_cohorts AS
        SELECT c.label AS cohort, g.k AS period_index, p.label AS period, s.size,
               sum(coalesce(cell.converted, 0)) OVER w AS converted,
               coalesce(cell.active, 0) AS active, coalesce(cell.churned, 0) AS churned, coalesce(cell.reactivated, 0) AS reactivated,
               round(coalesce(cell.active, 0)::numeric / s.size, 4) AS retention_rate
        FROM (SELECT cohort_period, customers AS size FROM cohort_cells WHERE period_offset = 0 AND customers > 0) s
        JOIN lifecycle_periods c ON c.period = s.cohort_period
        CROSS JOIN LATERAL generate_series(0, (SELECT max(period) FROM lifecycle_periods) - s.cohort_period) AS g(k)
        JOIN lifecycle_periods p ON p.period = s.cohort_period + g.k
        LEFT JOIN cohort_cells cell ON cell.cohort_period = s.cohort_period AND cell.period_offset = g.k
        WINDOW w AS (PARTITION BY s.cohort_period ORDER BY g.k);

      -- Revenue per cohort, period and currency, cumulative, and per customer (LTV, minor units).
      CREATE VIEW analyst_cohort_revenue AS
        WITH currencies AS (
          SELECT DISTINCT cohort_period, key AS currency FROM cohort_cells, jsonb_each_text(payments) WHERE value::numeric > 0
        ),
        grid AS (
          SELECT a.cohort, a.period_index, a.period, a.size, s.cohort_period, cur.currency,
                 coalesce((cell.revenue ->> cur.currency)::bigint, 0) AS revenue
          FROM analyst_cohorts a
          JOIN (SELECT period AS cohort_period, label FROM lifecycle_periods) s ON s.label = a.cohort
          JOIN currencies cur ON cur.cohort_period = s.cohort_period
          LEFT JOIN cohort_cells cell ON cell.cohort_period = s.cohort_period AND cell.period_offset = a.period_index
        )
        SELECT cohort, period_index, period, currency, revenue,
               sum(revenue) OVER w AS cumulative_revenue,
               round(sum(revenue) OVER w / size::numeric, 2) AS ltv
        FROM grid
        WINDOW w AS (PARTITION BY cohort_period, currency ORDER BY period_index);`;

/**
 * Read models (SPEC §7) and the projection's bookkeeping. Analysts query `customers` and
 * `cohort_cells` (labels included); the other tables let a batch be projected incrementally.
 */
export const readModelMigrations: readonly Migration[] = [
  {
    id: '0101_read_models',
    sql: `
      CREATE TABLE customers (
        customer_id text PRIMARY KEY,
        stage text NOT NULL,
        acquired_at timestamptz,
        cohort text,
        channel text,
        converted_at timestamptz,
        churned_at timestamptz,
        churn_reason text,
        payments integer NOT NULL,
        reactivations integer NOT NULL,
        referrals integer NOT NULL,
        revenue jsonb NOT NULL,
        -- Bookkeeping of the projection, not for analysts:
        next_deadline bigint,        -- epoch ms of the pending churn deadline, if any
        cohort_facts jsonb,          -- what the customer adds to cohort_cells
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX customers_next_deadline ON customers (next_deadline) WHERE next_deadline IS NOT NULL;
      CREATE INDEX customers_stage ON customers (stage);

      -- SPEC §4 cells: one cohort × period. Rows of the cohort table add up cells as of an instant.
      CREATE TABLE cohort_cells (
        cohort_period integer NOT NULL,
        period_offset integer NOT NULL,
        cohort text NOT NULL,
        period text NOT NULL,
        customers integer NOT NULL,
        converted integer NOT NULL,
        active integer NOT NULL,
        churned integer NOT NULL,
        reactivated integer NOT NULL,
        revenue jsonb NOT NULL,
        payments jsonb NOT NULL,
        PRIMARY KEY (cohort_period, period_offset)
      );

      CREATE TABLE touchpoint_ids (id text PRIMARY KEY, stream_id text NOT NULL, revision integer NOT NULL);
      CREATE TABLE visitor_links (
        anonymous_id text PRIMARY KEY,
        customer_id text NOT NULL,
        link_at bigint NOT NULL,
        registration_id text NOT NULL
      );
      CREATE INDEX visitor_links_customer ON visitor_links (customer_id);
      CREATE TABLE projection_state (key text PRIMARY KEY, value jsonb NOT NULL);`,
  },
  {
    id: '0102_consumer_offsets',
    sql: `
      -- Kafka offsets, committed in the same transaction as the read models they produced.
      CREATE TABLE consumer_offsets (
        group_id text NOT NULL,
        topic text NOT NULL,
        partition integer NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (group_id, topic, partition)
      );`,
  },
  {
    id: '0103_stage_changes',
    sql: `
      -- Each customer's stage history as of the watermark (replaced whenever it is re-projected),
      -- for the rolling churn rate (SPEC §4), which needs the stages at the start of a window.
      CREATE TABLE stage_changes (
        customer_id text NOT NULL,
        seq integer NOT NULL,
        at bigint NOT NULL,          -- epoch ms
        to_stage text NOT NULL,
        PRIMARY KEY (customer_id, seq)
      );
      CREATE INDEX stage_changes_at ON stage_changes (at);`,
  },
  {
    // Projector instances own the customers of their partitions and write concurrently, without
    // a shared lock (projector.ts): what they share is written so that no write overwrites
    // another's.
    id: '0104_ownership',
    sql: `
      -- Touchpoints are deduplicated by their events' deterministic ids (lifecycle_events_event_id).
      DROP TABLE touchpoint_ids;
      -- The partition of the by-customer topic that owns the customer (NULL: the embedded store).
      ALTER TABLE customers ADD COLUMN owner_partition integer;
      -- A customer that another instance's touchpoint affects (an impression of a visitor it owns,
      -- a visitor taken from it): its owner re-folds it.
      CREATE TABLE customer_nudges (customer_id text PRIMARY KEY, owner_partition integer NOT NULL);
      -- Fencing: an instance commits a partition's offsets only with the epoch it took when the
      -- partition was assigned to it; the next owner's epoch makes a lost owner's commits fail.
      ALTER TABLE consumer_offsets ADD COLUMN epoch integer NOT NULL DEFAULT 0;
      -- Cohort cells are changed by adding deltas (each instance adds its customers' changes).
      CREATE FUNCTION lifecycle_add_amounts(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
        SELECT coalesce(jsonb_object_agg(key, total), '{}'::jsonb)
        FROM (SELECT key, sum(value::numeric) AS total
              FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) amounts
              GROUP BY key) sums
      $$;`,
  },
  {
    // An export as of any instant reads each customer's history instead of folding its stream.
    // Rows written before this migration keep their cohort_facts (and no history) until they are
    // re-projected; exports fold the streams while any is left (`replay` re-projects them all).
    // JSON as text, not jsonb: nothing queries inside it, and a text column is read and written
    // without conversion (an as-of export reads every customer's).
    id: '0105_customer_history',
    sql: `ALTER TABLE customers ADD COLUMN history text;`,
  },
  {
    // Channel economics (SPEC §4) count every impression, linked to a customer or not. A store
    // with events from before this table reads them from the streams until its `replay`.
    id: '0106_ad_impressions',
    sql: `
      CREATE TABLE ad_impressions (channel text NOT NULL, at bigint NOT NULL, cost_currency text, cost_amount bigint);
      INSERT INTO projection_state (key, value) SELECT '${IMPRESSIONS_COMPLETE}', 'true' WHERE NOT EXISTS (SELECT 1 FROM lifecycle_events);`,
  },
  {
    // SPEC §4's rolling churn rate for a window ending at any instant, for psql as for the API:
    // customers with a churn in (T − W, T] over customers converted and not churned at T − W
    // (their latest stage change by then), from the stage histories; NULL without a base.
    id: '0107_churn_rate_function',
    sql: `
      CREATE FUNCTION lifecycle_churn_rate(asof timestamptz, win interval) RETURNS double precision LANGUAGE sql STABLE AS $$
        WITH bounds AS (
          SELECT round(extract(epoch FROM asof) * 1000)::bigint AS t, round(extract(epoch FROM asof - win) * 1000)::bigint AS s
        ),
        churned AS (
          SELECT count(DISTINCT c.customer_id) AS n FROM stage_changes c, bounds b WHERE c.to_stage = 'churned' AND c.at > b.s AND c.at <= b.t
        ),
        base AS (
          SELECT count(*) AS n FROM (
            SELECT DISTINCT ON (c.customer_id) c.to_stage FROM stage_changes c, bounds b WHERE c.at <= b.s ORDER BY c.customer_id, c.at DESC, c.seq DESC
          ) latest WHERE to_stage IN ('converted', 'retained', 'loyal', 'at_risk')
        )
        SELECT CASE WHEN base.n = 0 THEN NULL ELSE churned.n::double precision / base.n END FROM churned, base
      $$;`,
  },
  {
    // Views for analysts (psql, or PGlite's shell): the export's figures as of the watermark,
    // without the projection's bookkeeping. lifecycle_periods labels every period from the
    // earliest cohort's to the watermark's (analyst-views.ts), so a period in which nothing
    // happened has its row too, as in the export.
    id: '0108_analyst_views',
    sql: `
      CREATE TABLE lifecycle_periods (period integer PRIMARY KEY, label text NOT NULL);

      CREATE VIEW analyst_customers AS
        SELECT customer_id, stage, acquired_at, cohort, channel, converted_at, churned_at, churn_reason,
               payments, reactivations, referrals, revenue
        FROM customers;

${ANALYST_COHORT_VIEWS}

      CREATE VIEW analyst_stage_history AS
        SELECT customer_id, seq, to_timestamp(at / 1000.0) AS at, to_stage AS stage FROM stage_changes;

      CREATE VIEW analyst_impressions AS
        SELECT channel, to_timestamp(at / 1000.0) AS at, cost_currency, cost_amount FROM ad_impressions;`,
  },
  {
    // The analyst views of what comes from the customers' histories (JSON text, parsed by the
    // view: nothing is written twice, and a view costs only when it is queried). An instant is
    // put in its period by the periods' start instants (kept by savePeriods in the configured
    // zone), with width_bucket's binary search; rows of lifecycle_periods written by an earlier
    // version get their instants at the next transaction or replay.
    id: '0109_analyst_history_views',
    sql: `
      ALTER TABLE lifecycle_periods ADD COLUMN starts_at bigint, ADD COLUMN ends_at bigint;

      -- T of the read models: the largest watermark of any scope (bookkeeping.ts).
      CREATE FUNCTION lifecycle_watermark() RETURNS bigint LANGUAGE sql STABLE AS $$
        SELECT max((value #>> '{}')::numeric)::bigint FROM projection_state WHERE key = 'watermark' OR key LIKE 'watermark:%'
      $$;

      -- Sums currency → amount maps.
      CREATE AGGREGATE lifecycle_sum_amounts(jsonb) (SFUNC = lifecycle_add_amounts, STYPE = jsonb, INITCOND = '{}');

      -- Every paying event of every customer, in its period.
      CREATE VIEW analyst_payments AS
        WITH cut AS (SELECT min(period) AS first, array_agg(starts_at ORDER BY period) AS starts FROM lifecycle_periods)
        SELECT c.customer_id, c.cohort, c.channel, to_timestamp(f.at / 1000.0) AS at, p.label AS period, f.currency, f.amount_minor
        FROM customers c
        CROSS JOIN LATERAL (SELECT (e ->> 0)::bigint AS at, e ->> 1 AS currency, (e ->> 2)::bigint AS amount_minor
                            FROM jsonb_array_elements(c.history::jsonb -> 'payments') e) f
        CROSS JOIN cut
        JOIN lifecycle_periods p ON p.period = cut.first + width_bucket(f.at, cut.starts) - 1;

      -- export churns: churns by period and reason (a due churn not yet re-projected counts too).
      CREATE VIEW analyst_churns AS
        WITH cut AS (SELECT min(period) AS first, array_agg(starts_at ORDER BY period) AS starts FROM lifecycle_periods),
        churns AS (
          SELECT (e ->> 0)::bigint AS at, e ->> 1 AS reason
          FROM customers c
          CROSS JOIN LATERAL (SELECT c.history::jsonb AS h) x
          CROSS JOIN LATERAL (SELECT e FROM jsonb_array_elements(x.h -> 'churns') e
                              UNION ALL SELECT x.h -> 'pending' WHERE (x.h -> 'pending' ->> 0)::bigint <= (SELECT lifecycle_watermark())) ch
        )
        SELECT p.label AS period, churns.reason, count(*) AS churns
        FROM churns CROSS JOIN cut JOIN lifecycle_periods p ON p.period = cut.first + width_bucket(churns.at, cut.starts) - 1
        GROUP BY p.period, p.label, churns.reason
        ORDER BY p.period, churns.reason COLLATE "C";

      -- export referrals: per referrer, the customers whose first registration names it, how many
      -- converted, their revenue.
      CREATE VIEW analyst_referrals AS
        SELECT x.h -> 'registration' ->> 2 AS referrer, count(*) AS referred, count(c.converted_at) AS converted,
               lifecycle_sum_amounts(c.revenue) AS revenue
        FROM customers c CROSS JOIN LATERAL (SELECT c.history::jsonb AS h) x
        WHERE x.h -> 'registration' ->> 2 IS NOT NULL
        GROUP BY 1
        ORDER BY (x.h -> 'registration' ->> 2) COLLATE "C";

      -- export channels (SPEC §4): per channel and period, impressions and their cost, customers
      -- acquired, their revenue, CPM and CPA per currency of the cost (rounded halves up).
      CREATE VIEW analyst_channels AS
        WITH cut AS (SELECT min(period) AS first, array_agg(starts_at ORDER BY period) AS starts FROM lifecycle_periods),
        impressions AS (
          SELECT i.channel, cut.first + width_bucket(i.at, cut.starts) - 1 AS period, count(*) AS impressions
          FROM ad_impressions i CROSS JOIN cut GROUP BY 1, 2
        ),
        costs AS (
          SELECT i.channel, cut.first + width_bucket(i.at, cut.starts) - 1 AS period, i.cost_currency AS currency, sum(i.cost_amount) AS amount
          FROM ad_impressions i CROSS JOIN cut WHERE i.cost_currency IS NOT NULL GROUP BY 1, 2, 3
        ),
        acquired AS (
          SELECT c.channel, p.period, count(*) AS acquired FROM customers c JOIN lifecycle_periods p ON p.label = c.cohort GROUP BY 1, 2
        ),
        revenue AS (
          SELECT channel, period, jsonb_object_agg(currency, amount) AS revenue FROM (
            SELECT c.channel, cut.first + width_bucket((e ->> 0)::bigint, cut.starts) - 1 AS period, e ->> 1 AS currency, sum((e ->> 2)::bigint) AS amount
            FROM customers c CROSS JOIN LATERAL jsonb_array_elements(c.history::jsonb -> 'payments') e CROSS JOIN cut
            WHERE c.channel IS NOT NULL GROUP BY 1, 2, 3
          ) amounts GROUP BY 1, 2
        ),
        money AS (
          SELECT x.channel, x.period, jsonb_object_agg(x.currency, x.amount) AS cost,
                 jsonb_object_agg(x.currency, round(x.amount * 1000 / i.impressions)) AS cpm,
                 jsonb_object_agg(x.currency, round(x.amount / a.acquired)) AS cpa
          FROM costs x JOIN impressions i USING (channel, period) LEFT JOIN acquired a USING (channel, period)
          GROUP BY 1, 2
        ),
        cells AS (SELECT channel, period FROM impressions UNION SELECT channel, period FROM acquired UNION SELECT channel, period FROM revenue)
        SELECT k.channel, p.label AS period, coalesce(i.impressions, 0) AS impressions, coalesce(m.cost, '{}') AS cost,
               coalesce(a.acquired, 0) AS acquired, coalesce(r.revenue, '{}') AS revenue, coalesce(m.cpm, '{}') AS cpm,
               CASE WHEN a.acquired IS NULL THEN NULL ELSE coalesce(m.cpa, '{}') END AS cpa
        FROM cells k
        JOIN lifecycle_periods p ON p.period = k.period
        LEFT JOIN impressions i ON i.channel = k.channel AND i.period = k.period
        LEFT JOIN acquired a ON a.channel = k.channel AND a.period = k.period
        LEFT JOIN revenue r ON r.channel = k.channel AND r.period = k.period
        LEFT JOIN money m ON m.channel = k.channel AND m.period = k.period
        ORDER BY k.channel COLLATE "C", k.period;`,
  },
  {
    // Projector instances share no lock: a registration that takes a visitor of another
    // partition leaves a request for the visitor's owner, the one writer of that visitor's link
    // and impressions (SPEC §5), which applies it and nudges the customers whose visitors changed.
    id: '0110_visitor_link_requests',
    sql: `
      CREATE TABLE visitor_link_requests (
        registration_id text PRIMARY KEY,
        anonymous_id text NOT NULL,
        customer_id text NOT NULL,
        link_at bigint NOT NULL,
        visitor_partition integer NOT NULL
      );
      CREATE INDEX visitor_link_requests_partition ON visitor_link_requests (visitor_partition);`,
  },
  {
    // Projector instances no longer wait on each other's cohort cells: each adds its customers'
    // changes to parts of its own (the customer's partition of the by-customer topic; 0 in the
    // embedded store), and cohort_cells is their sum. The views over it are made again because
    // they referred to the table.
    id: '0111_cohort_cell_parts',
    sql: `
      DROP VIEW analyst_cohort_revenue;
      DROP VIEW analyst_cohorts;
      ALTER TABLE cohort_cells RENAME TO cohort_cell_parts;
      ALTER TABLE cohort_cell_parts ADD COLUMN part integer NOT NULL DEFAULT 0;
      ALTER TABLE cohort_cell_parts DROP CONSTRAINT cohort_cells_pkey, ADD PRIMARY KEY (cohort_period, period_offset, part);
      CREATE VIEW cohort_cells AS
        SELECT cohort_period, period_offset, min(cohort) AS cohort, min(period) AS period,
               sum(customers)::integer AS customers, sum(converted)::integer AS converted, sum(active)::integer AS active,
               sum(churned)::integer AS churned, sum(reactivated)::integer AS reactivated,
               lifecycle_sum_amounts(revenue) AS revenue, lifecycle_sum_amounts(payments) AS payments
        FROM cohort_cell_parts
        GROUP BY cohort_period, period_offset;
${ANALYST_COHORT_VIEWS}`,
  },
  {
    // A nudge is a row of its own (nudgeCustomers): the instance that leaves one and the owner
    // that takes them never wait on each other's row.
    id: '0112_nudge_rows',
    sql: `
      ALTER TABLE customer_nudges DROP CONSTRAINT customer_nudges_pkey;
      CREATE INDEX customer_nudges_owner ON customer_nudges (owner_partition);`,
  },
  {
    // The cohort table as of any instant without reading every customer (cohort-cell-days.ts).
    // A store that already has customers gets their steps at its next replay.
    id: '0113_cohort_cell_days',
    sql: `
      CREATE TABLE cohort_cell_days (
        cohort_period integer NOT NULL,
        period_offset integer NOT NULL,
        part integer NOT NULL,
        day integer NOT NULL,         -- UTC days since 1970-01-01 of the steps' instants
        customers integer NOT NULL,   -- the piece's steps summed
        converted integer NOT NULL,
        active integer NOT NULL,
        churned integer NOT NULL,
        reactivated integer NOT NULL,
        revenue json NOT NULL,
        payments json NOT NULL,
        steps json NOT NULL           -- [[at, customers, converted, active, churned, reactivated, revenue, payments], ...] by at
      );
      -- A day may have several pieces (a transaction adds one without reading the others).
      CREATE INDEX cohort_cell_days_key ON cohort_cell_days (cohort_period, period_offset, part, day);
      INSERT INTO projection_state (key, value) SELECT '${COHORT_CELL_DAYS_COMPLETE}', 'true' WHERE NOT EXISTS (SELECT 1 FROM customers);`,
  },
];

/** The read models the projection keeps, each written in every projector transaction, in this order. */
export const READ_MODELS: readonly ReadModel[] = [customersReadModel, stageChangesReadModel, cohortCellsReadModel, cohortCellDaysReadModel, adImpressionsReadModel];

/** Tables rebuilt by `replay` (the event streams stay): the read models' and the projection's bookkeeping. */
export const READ_MODEL_TABLES: readonly string[] = [...READ_MODELS.flatMap((m) => m.tables), 'lifecycle_periods', 'customer_nudges', 'visitor_links', 'visitor_link_requests', 'projection_state'];
