import { isBlankLine, parseTouchpoint, type FieldIssue, type LifecycleConfig, type RejectionReason, type Touchpoint, type TouchpointType } from '@lifecycle/contracts';
import type { SqlDatabase } from '@lifecycle/sql';
import { isolatePoison, storeRejection } from './poison.js';
import { conflictRejection, projectBatch, type BatchOutcome } from './projector.js';
import { crashBeforeCommit } from './test-faults.js';
import { KeyedState } from './keyed-state.js';

/** A rejected input line, as written to the dead-letter destination. */
export interface DeadLetter {
  /** 1-based line number in its source. */
  line: number;
  reason: RejectionReason;
  issues: FieldIssue[];
  /** The line as received (cut at 4 KiB: an oversized payload is not worth keeping whole). */
  raw: string;
  /** For `store_rejected`: the touchpoint's id. */
  id?: string;
  /** The touchpoint's type, when it is one of the six. */
  type?: TouchpointType;
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
  /** Called with the summary so far after each line (progress on a terminal). */
  onProgress?: (summary: Readonly<IngestSummary>) => void;
}

/** Touchpoints per transaction when the caller does not say (`lifecycle ingest --batch-size`). */
export const DEFAULT_BATCH_SIZE = 100_000;

const RAW_LIMIT = 4096;

const rawText = (raw: string | Uint8Array) =>
  (typeof raw === 'string' ? raw : Buffer.from(raw.buffer, raw.byteOffset, Math.min(raw.byteLength, RAW_LIMIT)).toString('utf8')).slice(0, RAW_LIMIT);

interface Item {
  touchpoint: Touchpoint;
  line: number;
  raw: string | Uint8Array;
}

/**
 * Validates, deduplicates and projects NDJSON lines batch by batch. Invalid lines never stop
 * it: they become dead letters with their line number and reason, as does a valid touchpoint
 * that the store refuses (found by splitting its batch: the rest of the batch is stored). Blank
 * lines are skipped.
 */
export async function ingestLines(
  db: SqlDatabase,
  lines: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: IngestOptions,
): Promise<IngestSummary> {
  // Large batches: each statement and the bookkeeping of a batch are paid once per batch.
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const summary: IngestSummary = { lines: 0, accepted: 0, duplicates: 0, rejected: {} };
  const keyed = new KeyedState();
  let batch: Item[] = [];
  let letters: DeadLetter[] = [];
  const reject = (letter: DeadLetter) => {
    letters.push(letter);
    summary.rejected[letter.reason] = (summary.rejected[letter.reason] ?? 0) + 1;
  };

  const project = async (items: readonly Item[]) => {
    const outcome = await keyed.transaction(db, async (tx) => {
      const result = await projectBatch(tx, items.map((b) => b.touchpoint), options.config, keyed);
      crashBeforeCommit('chunk');
      return result;
    });
    summary.accepted += outcome.accepted.length;
    summary.duplicates += outcome.duplicates.length;
    const conflicting = new Set(outcome.conflicts);
    for (const item of items) {
      if (conflicting.has(item.touchpoint)) {
        reject({ line: item.line, ...conflictRejection(item.touchpoint), raw: rawText(item.raw) });
      }
    }
    options.onBatch?.(outcome);
  };
  const quarantine = async (item: Item, error: unknown) => {
    reject({ line: item.line, id: item.touchpoint.id, type: item.touchpoint.type, ...storeRejection(error), raw: rawText(item.raw) });
  };

  const flush = async () => {
    const current = batch;
    batch = [];
    await isolatePoison(current, project, quarantine);
    if (letters.length > 0) {
      await options.onDeadLetters?.(letters);
      letters = [];
    }
  };

  for await (const raw of lines) {
    summary.lines += 1;
    options.onProgress?.(summary);
    if (isBlankLine(raw)) continue;
    const parsed = parseTouchpoint(raw);
    if (parsed.ok) batch.push({ touchpoint: parsed.touchpoint, line: summary.lines, raw });
    else reject({ line: summary.lines, ...parsed.rejection, raw: rawText(raw) });
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  // For the reads that follow (exports, the API, the next batches of a later ingest).
  if (summary.accepted > 0) await db.refreshStatistics?.();
  return summary;
}
