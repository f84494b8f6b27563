import type { LifecycleConfig } from '@lifecycle/contracts';
import { openLifecycleStore, replay, type StoreLocation } from '@lifecycle/projection';
import { logger } from '../logger.js';
import { progress } from '../progress.js';

export async function replayCommand(location: StoreLocation, config: LifecycleConfig): Promise<void> {
  const db = await openLifecycleStore(location);
  try {
    const started = performance.now();
    const bar = progress('replay', 'customers');
    const outcome = await replay(db, config, (done, all) => bar.update(done, () => `of ${all.toLocaleString('en-US')}`)).finally(() => bar.done());
    const seconds = (performance.now() - started) / 1000;
    logger.info({ ...outcome, seconds }, 'replay finished');
    process.stdout.write(`${JSON.stringify({ ...outcome, seconds: Number(seconds.toFixed(3)) }, null, 2)}\n`);
  } finally {
    await db.close();
  }
}
