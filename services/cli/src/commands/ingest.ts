import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { ingestLines, openLifecycleStore, type IngestSummary, type StoreLocation } from '@lifecycle/projection';
import { readLines } from '../lines.js';
import type { LifecycleMetrics } from '@lifecycle/observability';
import { logger } from '../logger.js';

/**
 * Ingests NDJSON lines into a store; rejected lines are appended to `deadLetters` with their
 * source, line number and reason.
 */
export async function ingestInto(
  location: StoreLocation,
  deadLetters: string,
  source: string,
  lines: AsyncIterable<string> | Iterable<string>,
  config: LifecycleConfig,
  metrics?: LifecycleMetrics,
): Promise<IngestSummary & { deadLetters: string }> {
  await mkdir(dirname(deadLetters), { recursive: true });
  const db = await openLifecycleStore(location);
  try {
    const summary = await ingestLines(db, lines, {
      config,
      onDeadLetters: (letters) => {
        for (const letter of letters) metrics?.recordRejection(letter.reason);
        return appendFile(deadLetters, letters.map((l) => JSON.stringify({ source, ...l }) + '\n').join(''));
      },
      onBatch: (outcome) => {
        metrics?.recordBatch(outcome);
        logger.debug({ accepted: outcome.accepted.length, stageChanges: outcome.stageChanges.length }, 'batch projected');
      },
    });
    return { ...summary, deadLetters };
  } finally {
    await db.close();
  }
}

export async function ingestCommand(source: string, location: StoreLocation, deadLetters: string, config: LifecycleConfig): Promise<void> {
  const summary = await ingestInto(location, deadLetters, source, await readLines(source), config);
  logger.info({ source, ...summary }, 'ingest finished');
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}
