import type { Migration } from '@lifecycle/sql';

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
];

/** Tables rebuilt by `replay` (the event streams stay). */
export const READ_MODEL_TABLES = ['customers', 'stage_changes', 'cohort_cells', 'touchpoint_ids', 'visitor_links', 'projection_state'] as const;
