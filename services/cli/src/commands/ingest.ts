import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LifecycleConfig } from '@lifecycle/contracts';
import { assertStoreConfig, ingestLines, openLifecycleStore, type IngestSummary, type StoreLocation } from '@lifecycle/projection';
import type { LifecycleMetrics } from '@lifecycle/observability';
import type { SqlDatabase } from '@lifecycle/sql';
import { readLines } from '../lines.js';
import { logger } from '../logger.js';
import { progress } from '../progress.js';

/**
 * Ingests NDJSON lines into an open store; rejected lines are appended to `deadLetters` with
 * their source, line number and reason. Progress goes to a terminal, if stderr is one.
 */
export async function ingestInto(
  db: SqlDatabase,
  deadLetters: string,
  source: string,
  lines: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  config: LifecycleConfig,
  { metrics, batchSize }: { metrics?: LifecycleMetrics; batchSize?: number } = {},
): Promise<IngestSummary & { deadLetters: string }> {
  await mkdir(dirname(deadLetters), { recursive: true });
  const bar = progress(`ingest ${source}`, 'lines');
  try {
    const summary = await ingestLines(db, lines, {
      config,
      ...(batchSize !== undefined ? { batchSize } : {}),
      onDeadLetters: (letters) => {
        // id conflicts are counted with their batch (recordBatch), like the projector's.
        for (const letter of letters) if (letter.reason !== 'id_conflict') metrics?.recordRejection(letter.reason, letter.type);
        return appendFile(deadLetters, letters.map((l) => JSON.stringify({ source, ...l }) + '\n').join(''));
      },
      onBatch: (outcome) => {
        metrics?.recordBatch(outcome);
        logger.debug({ accepted: outcome.accepted.length, stageChanges: outcome.stageChanges.length }, 'batch projected');
      },
      onProgress: (sofar) => bar.update(sofar.lines, () => `${sofar.accepted.toLocaleString('en-US')} accepted`),
    });
    return { ...summary, deadLetters };
  } finally {
    bar.done();
  }
}

export async function ingestCommand(source: string, location: StoreLocation, deadLetters: string, config: LifecycleConfig, batchSize: number): Promise<void> {
  const lines = await readLines(source);
  const db = await openLifecycleStore(location);
  try {
    await assertStoreConfig(db, config);
    const summary = await ingestInto(db, deadLetters, source, lines, config, { batchSize });
    logger.info({ source, ...summary }, 'ingest finished');
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await db.close();
  }
}
