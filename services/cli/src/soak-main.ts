#!/usr/bin/env node
import { access, constants } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { DEFAULT_FAULTS, FAULT_KINDS, formatReport, runSoak, type FaultKind } from './commands/soak.js';
import { logger } from './logger.js';

/**
 * `npm run soak -- --cycles N [--seed S] [--minutes M] …`: the fault soak (README, "Reliability").
 * An entry point of its own beside `lifecycle` (main.ts): it drives `lifecycle` commands in
 * child processes, as an operator would, and breaks them.
 */

const DEFAULT_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';

// Options as commander reads them (strings), checked once here; a bad one names itself, exit 2.
const faultList = z
  .string()
  .transform((value) => value.split(',').map((k) => k.trim()))
  .pipe(z.array(z.enum(FAULT_KINDS, { error: (issue) => `unknown fault kind ${JSON.stringify(issue.input)}; one of ${FAULT_KINDS.join(', ')}` })).min(1));
const Options = z
  .object({
    cycles: z.coerce.number({ error: '--cycles must be a whole number ≥ 1' }).int('--cycles must be a whole number ≥ 1').min(1, '--cycles must be at least 1').max(1_000),
    seed: z.coerce.number({ error: '--seed must be a whole number' }).int('--seed must be a whole number').min(0).max(2 ** 31),
    minutes: z.coerce.number({ error: '--minutes must be a number' }).positive('--minutes must be more than 0').max(24 * 60).optional(),
    rate: z.coerce.number({ error: '--rate must be a number' }).int('--rate must be a whole number').min(10, '--rate must be at least 10 touchpoints/s').max(5_000, '--rate must be at most 5000 touchpoints/s (2 shared cores)'),
    faults: faultList.optional(),
    postgresRestart: z.boolean(),
    database: z.string().url('--database must be a postgres:// URL').optional(),
    json: z.string().min(1),
    recoveryTimeout: z.coerce.number({ error: '--recovery-timeout must be a number of seconds' }).int().min(10, '--recovery-timeout must be at least 10 s'),
    keep: z.boolean(),
  })
  .strict();

class UsageError extends Error {}

const program = new Command('soak')
  .description('fault soak of the distributed mode (SPEC §6.2): live noisy input, one fault per cycle, recovery times, then exactly-once checked against an embedded ingest of the same lines')
  .showHelpAfterError()
  .exitOverride()
  .requiredOption('--cycles <n>', 'fault cycles (one fault each)')
  .option('--seed <n>', 'random seed: the faults, their moments and the input', '1')
  .option('--minutes <m>', `spread the cycles over this many minutes (default: 25 s per cycle; at least 12 s each)`)
  .option('--rate <n>', 'touchpoints/s of live input over the three clients (produce, HTTP ingest, kcat)', '200')
  .option('--faults <list>', `fault kinds, comma-separated (default: ${DEFAULT_FAULTS.join(',')}; all: ${FAULT_KINDS.join(',')})`)
  .option('--postgres-restart', 'also restart the PostgreSQL server itself (pg_ctlcluster … main restart): never while other tests use it', false)
  .option('--database <url>', `PostgreSQL server on which lifecycle_soak_<random> is created and dropped (env LIFECYCLE_DATABASE_URL, default ${DEFAULT_SERVER})`)
  .option('--json <file>', 'where the report goes as JSON', 'soak-report.json')
  .option('--recovery-timeout <s>', 'a fault not recovered from within this many seconds fails its cycle', '180')
  .option('--keep', 'keep the database, the broker and the work files (to look at a failure)', false)
  .action(async (raw: Record<string, unknown>) => {
    const parsed = Options.safeParse(raw);
    if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => i.message).join('; '));
    const o = parsed.data;
    let faults: FaultKind[] = o.faults ?? [...DEFAULT_FAULTS];
    if (o.postgresRestart && !faults.includes('postgres-restart')) faults = [...faults, 'postgres-restart'];
    const json = resolve(o.json);
    await access(dirname(json), constants.W_OK).catch((error: unknown) => {
      throw new UsageError(`--json: cannot write into ${dirname(json)}: ${(error as Error).message}`);
    });
    const report = await runSoak(
      {
        cycles: o.cycles,
        seed: o.seed,
        minutes: o.minutes,
        rate: o.rate,
        faults,
        serverUrl: o.database ?? process.env['LIFECYCLE_DATABASE_URL'] ?? DEFAULT_SERVER,
        json,
        recoveryTimeoutSeconds: o.recoveryTimeout,
        keep: o.keep,
      },
      logger.child({ component: 'soak' }),
    );
    process.stdout.write(`${formatReport(report)}\nreport: ${json}\n`);
    process.exitCode = report.ok ? 0 : 1;
  });

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) process.exitCode = error.exitCode === 0 ? 0 : 2;
  else if (error instanceof UsageError) {
    process.stderr.write(`soak: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    logger.error({ err: error }, 'soak failed');
    process.exitCode = 1;
  }
}
