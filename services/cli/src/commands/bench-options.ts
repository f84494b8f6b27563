import { access, constants } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { UsageError } from '../settings.js';

// What `lifecycle bench`'s options need, apart from the bench itself: the CLI loads the bench
// (kafkajs, pg) only when it runs.

/** Parts of the bench that `--stage` runs alone. */
export const BENCH_PARTS = ['embedded', 'kafka'] as const;
export type BenchPart = (typeof BENCH_PARTS)[number];

const instanceList = z
  .string()
  .transform((value) => value.split(',').map((n) => (n.trim() === '' ? Number.NaN : Number(n))))
  .pipe(z.array(z.number().int().min(1).max(16)).min(1))
  .refine((counts) => counts[0] === 1 && counts.every((n, i) => i === 0 || n > counts[i - 1]!));

/** `--instances 1,2,4`: the single projector first, since the other Kafka rows are its. */
export function parseInstanceCounts(value: string): number[] {
  const parsed = instanceList.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError('expected instance counts ascending from 1, each at most 16, comma-separated, e.g. 1,2,4');
  return parsed.data;
}

/** `--json FILE` is checked before the run, not after ten minutes of it. */
export async function assertWritable(file: string): Promise<void> {
  const dir = dirname(resolve(file));
  await access(dir, constants.W_OK).catch((error: unknown) => {
    throw new UsageError(`--json: cannot write into ${dir}: ${(error as Error).message}`);
  });
}

/** The PostgreSQL server of the bench's Kafka part when neither --database nor the environment names one. */
export const DEFAULT_BENCH_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';
