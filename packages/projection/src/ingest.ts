import { parseTouchpoint, type FieldIssue, type LifecycleConfig, type RejectionReason, type Touchpoint } from '@lifecycle/contracts';
import type { SqlDatabase } from '@lifecycle/sql';
import { projectBatch, type BatchOutcome } from './projector.js';
import { StreamCache } from './stream-cache.js';

/** A rejected input line, as written to the dead-letter destination. */
export interface DeadLetter {
  /** 1-based line number in its source. */
  line: number;
  reason: RejectionReason;
  issues: FieldIssue[];
  /** The line as received (cut at 4 KiB: an oversized payload is not worth keeping whole). */
  raw: string;
}

export interface IngestSummary {
  lines: number;
  accepted: number;
  duplicates: number;
  rejected: Partial<Record<RejectionReason, number>>;
}

export interface IngestOptions {
  config: LifecycleConfig;
  /** Touchpoints per transaction. */
  batchSize?: number;
  /** Called with each batch's rejected lines, after the batch is committed. */
  onDeadLetters?: (letters: DeadLetter[]) => Promise<void>;
  onBatch?: (outcome: BatchOutcome) => void;
}

const RAW_LIMIT = 4096;

/**
 * Validates, deduplicates and projects NDJSON lines batch by batch. Invalid lines never stop
 * it: they become dead letters with their line number and reason. Blank lines are skipped.
 */
export async function ingestLines(db: SqlDatabase, lines: AsyncIterable<string> | Iterable<string>, options: IngestOptions): Promise<IngestSummary> {
  // Large batches: each statement and the bookkeeping of a batch are paid once per batch.
  const batchSize = options.batchSize ?? 100_000;
  const summary: IngestSummary = { lines: 0, accepted: 0, duplicates: 0, rejected: {} };
  const streams = new StreamCache();
  let batch: { touchpoint: Touchpoint; line: number; raw: string }[] = [];
  let letters: DeadLetter[] = [];
  const reject = (letter: DeadLetter) => {
    letters.push(letter);
    summary.rejected[letter.reason] = (summary.rejected[letter.reason] ?? 0) + 1;
  };

  const flush = async () => {
    if (batch.length > 0) {
      const current = batch;
      const outcome = await db.transaction((tx) => projectBatch(tx, current.map((b) => b.touchpoint), options.config, streams));
      summary.accepted += outcome.accepted.length;
      summary.duplicates += outcome.duplicates.length;
      const conflicting = new Set(outcome.conflicts);
      for (const item of current) {
        if (conflicting.has(item.touchpoint)) {
          reject({ line: item.line, reason: 'id_conflict', issues: [{ path: 'id', message: `touchpoint ${item.touchpoint.id} was already recorded with other content` }], raw: item.raw.slice(0, RAW_LIMIT) });
        }
      }
      options.onBatch?.(outcome);
      batch = [];
    }
    if (letters.length > 0) {
      await options.onDeadLetters?.(letters);
      letters = [];
    }
  };

  for await (const raw of lines) {
    summary.lines += 1;
    if (raw.trim() === '') continue;
    const parsed = parseTouchpoint(raw);
    if (parsed.ok) batch.push({ touchpoint: parsed.touchpoint, line: summary.lines, raw });
    else reject({ line: summary.lines, ...parsed.rejection, raw: raw.slice(0, RAW_LIMIT) });
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return summary;
}
