#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigMismatchError, DEFAULT_BATCH_SIZE, enableTestFaults, type CrashPoint } from '@lifecycle/projection';
import { MixedWritersError } from '@lifecycle/readmodel';
import { DirectoryInUseError } from '@lifecycle/sql';
import { EXPORT_KINDS, type ExportKind } from './commands/export.js';
import type { SqlFormat } from './commands/sql.js';
import { BENCH_PARTS, DEFAULT_BENCH_SERVER, assertWritable, parseInstanceCounts, type BenchPart } from './commands/bench-options.js';
import type { ExportOptions, ServerSecurityOptions } from './commands/servers.js';
import { logger } from './logger.js';
import { endWithSupervisor, isHeapCapped, runUnderHeapCap } from './heap-cap.js';
import {
  DEAD_LETTER_FILE,
  UsageError,
  brokersOf,
  dataDirOf,
  databaseUrlOf,
  eventStoreConnectionOf,
  loadConfig,
  parseAsOf,
  positiveInteger,
  scopeList,
  storeLocation,
} from './settings.js';
import { join, resolve } from 'node:path';

const asArgument = (parse: (value: string) => number) => (value: string) => {
  try {
    return parse(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};
const integer = (name: string) => asArgument(positiveInteger(name));
const rate = (name: string) =>
  asArgument((value) => {
    const n = Number(value);
    if (!(n >= 0 && n <= 1)) throw new UsageError(`${name} must be a number from 0 to 1; got ${JSON.stringify(value)}`);
    return n;
  });

const dataDirOption = () => new Option('--data-dir <dir>', 'embedded store directory').default('.lifecycle');
const databaseOption = () => new Option('--database <url>', 'PostgreSQL instead of the embedded store (env LIFECYCLE_DATABASE_URL)');
const configOption = () => new Option('--config <file>', 'JSON file with the lifecycle settings (SPEC §3)');
const brokersOption = () => new Option('--brokers <list>', 'Kafka bootstrap servers host:port,… (env LIFECYCLE_KAFKA_BROKERS, default 127.0.0.1:9092)');
const topicOption = () => new Option('--topic <name>', 'input topic').default('touchpoints');
const partitionsOption = () => new Option('--partitions <n>', 'partitions of the topics when they are created').argParser(integer('--partitions')).default(4);

const atLeastOne = (name: string) =>
  asArgument((value) => {
    const n = positiveInteger(name)(value);
    if (n < 1) throw new UsageError(`${name} must be at least 1; got ${JSON.stringify(value)}`);
    return n;
  });

/** Where an HTTP service listens and who may call it (README "Security"). */
function withServerSecurity(command: Command): Command {
  return command
    .option('--host <host>', 'HTTP interface; beyond the loopback interface, API keys are required (or --insecure-no-auth)', '127.0.0.1')
    .option('--auth-keys <file>', 'JSON file of API keys {"id","sha256","scopes"} (env LIFECYCLE_AUTH_KEYS_FILE); re-read on SIGHUP')
    .option('--insecure-no-auth', 'serve without keys on a non-loopback --host (anyone who reaches it reads and writes)', false)
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--rate-limit <n>', 'requests per minute per key (per client address without one)', atLeastOne('--rate-limit'), 600)
    .option('--request-timeout <seconds>', 'longest a request may take to arrive whole', atLeastOne('--request-timeout'), 300);
}

/** How many read-model computations run at once (503 beyond) and for how long at most. */
function withExportLimits(command: Command): Command {
  return command
    .option('--export-concurrency <k>', 'read-model computations (as-of exports) at once, each in a worker thread; more are refused with 503', atLeastOne('--export-concurrency'), 2)
    .option('--export-timeout <seconds>', 'longest a computation may run before it is stopped (503)', atLeastOne('--export-timeout'), 60);
}

interface StoreOptions {
  dataDir: string;
  database?: string;
  config?: string;
}

const program = new Command('lifecycle')
  .description('Event-sourced customer lifecycle projections')
  .showHelpAfterError()
  .configureOutput({ writeErr: (text) => process.stderr.write(text) })
  // Commander would exit 1 on its own usage errors; throw instead so the catch below exits 2. Set
  // before the .command(...) calls: subcommands copy it when they are created.
  .exitOverride();

program
  .command('ingest')
  .description('validate, deduplicate, store and project touchpoints (NDJSON file, or - for stdin)')
  .argument('<file>', 'NDJSON file of touchpoints, or - for stdin')
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .option('--dead-letters <file>', 'where rejected lines go (default: DIR/dead-letter.ndjson, or ./dead-letter.ndjson with --database)')
  .addOption(configOption())
  .option('--batch-size <n>', 'touchpoints per transaction (fewer: less memory, slower)', atLeastOne('--batch-size'), DEFAULT_BATCH_SIZE)
  .option('--heap-cap <MiB>', "caps the JavaScript heap: the work runs in a child process started with this limit, and again with twice the limit if it is reached (0: node's own limit, in this process)", integer('--heap-cap'), 0)
  .action(async (file: string, options: StoreOptions & { deadLetters?: string; batchSize: number; heapCap: number }) => {
    const location = storeLocation(options);
    const deadLetters = options.deadLetters ?? ('dataDir' in location ? join(location.dataDir, DEAD_LETTER_FILE) : resolve(DEAD_LETTER_FILE));
    // Read here also under a cap: a bad file is one usage error, before any child starts.
    const config = await loadConfig(options.config);
    if (options.heapCap > 0 && !isHeapCapped()) {
      await runUnderHeapCap({ heapCapMb: options.heapCap, restartable: file !== '-', deadLetters, source: file });
      return;
    }
    const { ingestCommand } = await import('./commands/ingest.js');
    await ingestCommand(file, location, deadLetters, config, options.batchSize);
  });

program
  .command('export')
  .description('customers, cohorts, channel economics, churns by reason, customers by stage or the referral loop as NDJSON (SPEC §7)')
  .argument('<what>', EXPORT_KINDS.join(' | '), (value: string) => {
    if (!(EXPORT_KINDS as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${EXPORT_KINDS.join(', ')}`);
    return value;
  })
  .option('--as-of <instant>', 'ISO-8601 instant with Z or offset (default: the latest occurredAt seen)')
  .addOption(new Option('--by <dimension>', 'cohorts: one cohort table per acquisition channel').choices(['channel']))
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .addOption(configOption())
  .action(async (what: ExportKind, options: StoreOptions & { asOf?: string; by?: 'channel' }) => {
    if (options.by !== undefined && what !== 'cohorts') throw new UsageError(`--by applies to cohorts, not ${what}`);
    const { exportCommand } = await import('./commands/export.js');
    await exportCommand(what, options.by === 'channel', storeLocation(options), await loadConfig(options.config), parseAsOf(options.asOf));
  });

program
  .command('replay')
  .description('rebuild the read models from the event streams alone')
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .addOption(configOption())
  .action(async (options: StoreOptions) => {
    const { replayCommand } = await import('./commands/replay.js');
    await replayCommand(storeLocation(options), await loadConfig(options.config));
  });

program
  .command('mirror-eventstore')
  .description('copy the event streams to EventStoreDB, each event exactly once, from where the last run with this --name stopped')
  .option('--eventstore <url>', 'EventStoreDB connection string, e.g. esdb://127.0.0.1:2113?tls=false (env LIFECYCLE_EVENTSTORE_URL)')
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .option('--name <name>', 'the checkpoint kept in the store: one name per target', 'eventstoredb')
  .option('--follow', 'keep mirroring new events until SIGINT/SIGTERM', false)
  .option('--batch-size <n>', 'events read and appended per page', integer('--batch-size'), 1000)
  .option('--poll-interval <ms>', 'with --follow, the pause between polls once caught up', integer('--poll-interval'), 1000)
  .action(async (options: StoreOptions & { eventstore?: string; name: string; follow: boolean; batchSize: number; pollInterval: number }) => {
    const eventstore = eventStoreConnectionOf(options.eventstore);
    if (options.name.trim() === '') throw new UsageError('--name must not be empty');
    if (options.batchSize < 1) throw new UsageError('--batch-size must be at least 1');
    const { mirrorEventStoreCommand } = await import('./commands/mirror.js');
    await mirrorEventStoreCommand({
      location: storeLocation(options),
      eventstore,
      name: options.name,
      follow: options.follow,
      batchSize: options.batchSize,
      pollIntervalMs: options.pollInterval,
    });
  });

program
  .command('produce')
  .description('validate touchpoints and publish them to Kafka (invalid ones to the dead-letter topic)')
  .argument('<file>', 'NDJSON file of touchpoints, or - for stdin')
  .addOption(brokersOption())
  .addOption(topicOption())
  .addOption(partitionsOption())
  .action(async (file: string, options: { brokers?: string; topic: string; partitions: number }) => {
    const { produceCommand } = await import('./commands/produce.js');
    await produceCommand(file, { brokers: brokersOf(options.brokers), topic: options.topic, partitions: options.partitions });
  });

program
  .command('project')
  .description('a projector instance: Kafka → event streams and read models in PostgreSQL (or the embedded store)')
  .addOption(brokersOption())
  .addOption(topicOption())
  .addOption(partitionsOption())
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .addOption(configOption())
  .option('--instance-id <id>', 'stable name of this instance (default: the host name)')
  .option('--group <id>', 'consumer group (default: lifecycle-projector.<topic>)')
  .option('--until-idle', 'exit once the consumer group has caught up', false)
  .option('--chunk-size <n>', 'touchpoints per read-model transaction', integer('--chunk-size'))
  .option('--commit-interval <ms>', 'longest a consumed touchpoint waits for its transaction (default 50)', integer('--commit-interval'))
  .option('--wall-clock-after-idle <seconds>', 'with no input for this long and nothing left to consume, move T to the wall clock so due churns are recorded (default: off, T is event time)', integer('--wall-clock-after-idle'))
  .option('--metrics-port <n>', 'port of GET /metrics and /health (0: any)', integer('--metrics-port'), 9464)
  .option('--host <host>', 'interface of the metrics server', '127.0.0.1')
  .action(async (options: StoreOptions & { brokers?: string; topic: string; partitions: number; instanceId?: string; group?: string; untilIdle: boolean; chunkSize?: number; commitInterval?: number; wallClockAfterIdle?: number; metricsPort: number; host: string }) => {
    if (options.chunkSize === 0) throw new UsageError('--chunk-size must be at least 1');
    const { runProjector } = await import('@lifecycle/projector');
    await runProjector({
      brokers: brokersOf(options.brokers),
      topic: options.topic,
      partitions: options.partitions,
      location: storeLocation(options),
      config: await loadConfig(options.config),
      ...(options.instanceId !== undefined ? { instanceId: options.instanceId } : {}),
      ...(options.group !== undefined ? { groupId: options.group } : {}),
      untilIdle: options.untilIdle,
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
      ...(options.commitInterval !== undefined ? { commitIntervalMs: options.commitInterval } : {}),
      ...(options.wallClockAfterIdle !== undefined ? { wallClockAfterIdleMs: options.wallClockAfterIdle * 1000 } : {}),
      metricsPort: options.metricsPort,
      host: options.host,
    }, logger);
  });

program
  .command('sql')
  .description('run one read-only SQL statement against the store (the analyst views: README "Read models in SQL")')
  .argument('<statement>', 'e.g. "SELECT * FROM analyst_cohorts"')
  .addOption(new Option('--format <format>', 'table, csv or ndjson').choices(['table', 'csv', 'ndjson']).default('table'))
  .addOption(dataDirOption())
  .addOption(databaseOption())
  .action(async (statement: string, options: StoreOptions & { format: SqlFormat }) => {
    const { sqlCommand } = await import('./commands/sql.js');
    await sqlCommand(statement, storeLocation(options), options.format);
  });

withExportLimits(
  withServerSecurity(
    program
      .command('serve')
      .description('the read-model API service')
      .addOption(dataDirOption())
      .addOption(databaseOption())
      .addOption(configOption())
      .option('--port <n>', 'HTTP port', integer('--port'), 3000)
      .option('--metrics-port <n>', 'port of GET /metrics', integer('--metrics-port'), 9466),
  ),
).action(async (options: StoreOptions & { port: number; metricsPort: number } & ServerSecurityOptions & ExportOptions) => {
  const { serveCommand } = await import('./commands/servers.js');
  await serveCommand({ ...options, location: storeLocation(options), config: await loadConfig(options.config) });
});

withServerSecurity(
  program
    .command('ingest-server')
    .description('the HTTP ingest service: POST /v1/touchpoints → Kafka')
    .addOption(brokersOption())
    .addOption(topicOption())
    .addOption(partitionsOption())
    .option('--port <n>', 'HTTP port', integer('--port'), 8080)
    .option('--metrics-port <n>', 'port of GET /metrics', integer('--metrics-port'), 9465),
).action(async (options: { brokers?: string; topic: string; partitions: number; port: number; metricsPort: number } & ServerSecurityOptions) => {
  const { ingestServerCommand } = await import('./commands/servers.js');
  await ingestServerCommand({ ...options, brokers: brokersOf(options.brokers) });
});

program
  .command('keys')
  .description('API keys of the HTTP services (README "Security")')
  .command('create')
  .description('a new API key: prints its secret once, and the entry of the key file (its SHA-256)')
  .requiredOption('--id <id>', 'the key\'s name, logged with each request it makes (e.g. analyst-2025)')
  .requiredOption('--scopes <list>', 'what it may do: read, ingest, or read,ingest', scopeList)
  .option('--file <file>', 'add the entry to this key file (made if absent)')
  .action(async (options: { id: string; scopes: string[]; file?: string }) => {
    const { createKeyCommand } = await import('./commands/keys.js');
    await createKeyCommand(options);
  });

program
  .command('generate')
  .description('a realistic synthetic touchpoint stream as NDJSON on stdout')
  .requiredOption('--customers <n>', 'number of customers', integer('--customers'))
  .option('--seed <n>', 'random seed: same seed, same stream', integer('--seed'), 1)
  .option('--start <instant>', 'simulation start (ISO-8601)')
  .option('--months <n>', 'simulated months', integer('--months'))
  .option('--duplicate-rate <r>', 'share of lines delivered twice', rate('--duplicate-rate'), 0)
  .option('--invalid-rate <r>', 'share of invalid lines added', rate('--invalid-rate'), 0)
  .option('--late-rate <r>', 'share of lines delivered late', rate('--late-rate'), 0)
  .action(async (options: { customers: number; seed: number; start?: string; months?: number; duplicateRate: number; invalidRate: number; lateRate: number }) => {
    if (options.start !== undefined) parseAsOf(options.start);
    const { generateCommand } = await import('./commands/generate.js');
    await generateCommand(options);
  });

withExportLimits(
  withServerSecurity(
    program
      .command('start')
      .description('the whole job in one process: ingest (a file or a generated stream), summarise, serve the API')
      .option('--file <file>', 'NDJSON touchpoints to ingest instead of a generated stream')
      .option('--customers <n>', 'customers to generate', integer('--customers'), 2000)
      .option('--seed <n>', 'random seed of the generated stream', integer('--seed'), 1)
      .option('--port <n>', 'HTTP port (0: any free port)', integer('--port'), 3000)
      .addOption(dataDirOption())
      .addOption(configOption()),
  ),
).action(async (options: { file?: string; customers: number; seed: number; port: number; dataDir: string; config?: string } & ServerSecurityOptions & ExportOptions) => {
  const { startCommand } = await import('./commands/start.js');
  await startCommand({ ...options, dataDir: dataDirOf(options.dataDir), config: await loadConfig(options.config) });
});

program
  .command('bench')
  .description('every performance goal measured in one run through the real commands (embedded ingest, replay, as-of export, Kafka projector), with a met/not met table')
  .option('--touchpoints <n>', 'lines of the noisy dataset that ingest and replay work on (the first N generated from --customers)', integer('--touchpoints'), 600_000)
  .option('--customers <n>', 'customers the dataset is generated from (the as-of export folds them)', integer('--customers'), 100_000)
  .option('--seed <n>', 'random seed', integer('--seed'), 7)
  .addOption(new Option('--stage <part>', 'run one part only (kafka: fails instead of skipping without a broker or PostgreSQL)').choices(BENCH_PARTS))
  .option('--json <file>', 'also write the results as JSON to this file')
  .addOption(brokersOption())
  .addOption(
    new Option(
      '--database <url>',
      `PostgreSQL server of the kafka part, which creates and drops databases lifecycle_bench_<random> on it (env LIFECYCLE_DATABASE_URL, default ${DEFAULT_BENCH_SERVER})`,
    ),
  )
  .option('--kafka-touchpoints <n>', 'touchpoints pre-filled on the topic of each projector run', integer('--kafka-touchpoints'), 100_000)
  .option('--kafka-seconds <n>', 'length of the latency run (0: none)', integer('--kafka-seconds'), 20)
  .option('--kafka-rate <n>', 'touchpoints/s of the latency run (default: half the projector\'s measured rate)', integer('--kafka-rate'))
  .option('--kafka-chunk-size <n>', 'the projector\'s touchpoints per PostgreSQL transaction (default: its own)', integer('--kafka-chunk-size'))
  .option('--kafka-commit-interval <ms>', 'the projector\'s --commit-interval (default: its own)', integer('--kafka-commit-interval'))
  .addOption(new Option('--instances <list>', 'projector instance counts of the scaling runs, ascending from 1, at most 16').argParser(parseInstanceCounts).default([1, 2, 4], '1,2,4'))
  // The bench's own child process for the pure stages, so that their peak RSS is theirs alone.
  .addOption(new Option('--pure <file>').hideHelp())
  .action(
    async (options: {
      touchpoints: number;
      customers: number;
      seed: number;
      stage?: BenchPart;
      json?: string;
      brokers?: string;
      database?: string;
      kafkaTouchpoints: number;
      kafkaSeconds: number;
      kafkaRate?: number;
      kafkaChunkSize?: number;
      kafkaCommitInterval?: number;
      instances: number[];
      pure?: string;
    }) => {
      if (options.pure !== undefined) {
        const { benchPureCommand } = await import('./commands/bench.js');
        await benchPureCommand(options.pure);
        return;
      }
      if (options.touchpoints < 1) throw new UsageError('--touchpoints must be at least 1');
      if (options.customers < 1) throw new UsageError('--customers must be at least 1');
      if (options.kafkaTouchpoints < 1) throw new UsageError('--kafka-touchpoints must be at least 1');
      if (options.kafkaRate === 0) throw new UsageError('--kafka-rate must be at least 1 (use --kafka-seconds 0 to skip the latency run)');
      if (options.kafkaChunkSize === 0) throw new UsageError('--kafka-chunk-size must be at least 1');
      if (options.json !== undefined) await assertWritable(options.json);
      const serverUrl = databaseUrlOf(options.database) ?? DEFAULT_BENCH_SERVER;
      const { benchCommand } = await import('./commands/bench.js');
      await benchCommand({
        touchpoints: options.touchpoints,
        customers: options.customers,
        seed: options.seed,
        ...(options.stage !== undefined ? { stage: options.stage } : {}),
        ...(options.json !== undefined ? { json: options.json } : {}),
        kafka: {
          brokers: brokersOf(options.brokers),
          serverUrl,
          touchpoints: options.kafkaTouchpoints,
          latencySeconds: options.kafkaSeconds,
          latencyRate: options.kafkaRate,
          chunkSize: options.kafkaChunkSize,
          commitIntervalMs: options.kafkaCommitInterval,
          instances: options.instances,
        },
      });
    },
  );

// Test-only fault injection (README, "Tests").
const storeRejects = process.env['LIFECYCLE_TEST_STORE_REJECTS'];
const crashSetting = process.env['LIFECYCLE_TEST_CRASH_BEFORE_COMMIT'];
const crash = /^(chunk|advance):([1-9]\d*)$/.exec(crashSetting ?? '');
if (crashSetting && !crash) {
  process.stderr.write(`lifecycle: LIFECYCLE_TEST_CRASH_BEFORE_COMMIT must be chunk:N or advance:N (N ≥ 1); got ${JSON.stringify(crashSetting)}\n`);
  process.exit(2);
}
enableTestFaults({
  ...(storeRejects ? { storeRejects: new Set(storeRejects.split(',')) } : {}),
  ...(crash ? { crashBeforeCommit: { point: crash[1] as CrashPoint, nth: Number(crash[2]) } } : {}),
});

// By name: @lifecycle/access (fastify's plugins) is loaded only by the commands that serve HTTP.
const isAccessConfigError = (error: unknown): error is Error => error instanceof Error && error.name === 'AccessConfigError';

if (isHeapCapped()) endWithSupervisor();

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has already written its message (and the help): --help and `help` are exit code 0,
    // everything else it throws is a usage error.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (error instanceof UsageError || isAccessConfigError(error) || error instanceof ConfigMismatchError || error instanceof MixedWritersError || error instanceof DirectoryInUseError) {
    process.stderr.write(`lifecycle: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    logger.error({ err: error }, 'lifecycle failed');
    process.exitCode = 1;
  }
}
