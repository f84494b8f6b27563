import type { LifecycleConfig } from '@lifecycle/contracts';
import type { ExportJob } from './export-jobs.js';

/**
 * The messages between the API's event loop and an export worker, on one MessagePort per job.
 * A worker on the embedded store asks the event loop to run its SQL (PGlite is one instance per
 * data directory, in the main thread); on PostgreSQL it has a connection of its own.
 */
export interface WorkerSettings {
  config: LifecycleConfig;
  /** PostgreSQL: the worker's own connection. Absent: its SQL is run by the main thread. */
  databaseUrl?: string;
}

export interface JobMessage {
  job: ExportJob;
}

/** Worker → main. */
export type FromWorker =
  | { type: 'query'; id: number; sql: string; params: readonly unknown[] }
  | { type: 'head'; contentType: string; headers: Record<string, string> }
  | { type: 'chunk'; bytes: Uint8Array }
  | { type: 'end' }
  | { type: 'error'; message: string };

/** Main → worker. `pull` asks for the next piece of the body: a slow client slows the worker, nothing piles up. */
export type ToWorker = { type: 'rows'; id: number; rows: unknown[] } | { type: 'query-error'; id: number; message: string } | { type: 'pull' } | { type: 'cancel' };
