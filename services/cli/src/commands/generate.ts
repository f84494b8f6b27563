import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { writeLines } from '../lines.js';

export interface GenerateCommandOptions {
  customers: number;
  seed: number;
  start?: string;
  months?: number;
  duplicateRate: number;
  invalidRate: number;
  lateRate: number;
}

/** A synthetic touchpoint stream as NDJSON on stdout. */
export async function generateCommand(options: GenerateCommandOptions): Promise<void> {
  const touchpoints = generateTouchpoints({ customers: options.customers, seed: options.seed, start: options.start, months: options.months });
  const noisy = options.duplicateRate > 0 || options.invalidRate > 0 || options.lateRate > 0;
  const lines = noisy
    ? withDeliveryNoise(touchpoints, { seed: options.seed, duplicateRate: options.duplicateRate, invalidRate: options.invalidRate, lateRate: options.lateRate })
    : (function* () {
        for (const t of touchpoints) yield JSON.stringify(t);
      })();
  await writeLines(lines);
}
