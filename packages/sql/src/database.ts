import type { DirectoryLock } from './directory-lock.js';

/** The little of SQL the stores need, satisfied by PGlite (embedded) and PostgreSQL (pg). */
export interface SqlExecutor {
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs one or more statements without parameters (DDL). */
  exec(sql: string): Promise<void>;
  /** Loads rows written in COPY's text format (see `copyRows`) into `columns` of `table`. */
  copyIn(table: string, columns: readonly string[], text: string): Promise<void>;
}

export interface SqlDatabase extends SqlExecutor {
  /** Runs `work` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** Where the data lives, for logs and errors (never a password). */
  readonly description: string;
  /** The one-writer lock of an embedded store's directory. */
  readonly lock?: DirectoryLock;
  /**
   * The embedded store's stand-in for autovacuum's ANALYZE, which PGlite does not run: gathers
   * the planner's statistics again when a table grew by a tenth since they were gathered.
   * PostgreSQL has autovacuum, and no such method.
   */
  refreshStatistics?(): Promise<void>;
}

/** A schema change, applied once, in `id` order, recorded in `schema_migrations`. */
export interface Migration {
  readonly id: string;
  readonly sql: string;
}

// Several processes (projector instances) may start on one database at once.
const MIGRATION_LOCK = 0x6d6967726174;

/** Applies the migrations not yet applied, in `id` order, in one transaction under a lock. */
export async function migrate(db: SqlDatabase, migrations: readonly Migration[]): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const applied = new Set((await tx.query<{ id: string }>('SELECT id FROM schema_migrations')).map((r) => r.id));
    for (const migration of [...migrations].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      if (applied.has(migration.id)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (id) VALUES ($1)', [migration.id]);
    }
  });
}
