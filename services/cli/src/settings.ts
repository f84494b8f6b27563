import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, EARLIEST_INSTANT, InstantSchema, LATEST_INSTANT, parseLifecycleConfig, type LifecycleConfig } from '@lifecycle/contracts';

/** A mistake in how the command was called: reported without a stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const DEFAULT_DATA_DIR = '.lifecycle';
export const DEAD_LETTER_FILE = 'dead-letter.ndjson';

/** Reads `--config FILE` (JSON with the settings of SPEC §3); defaults without it. */
export async function loadConfig(file: string | undefined): Promise<LifecycleConfig> {
  if (file === undefined) return parseLifecycleConfig({});
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return parseLifecycleConfig(json, `config file ${file}`);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * `--as-of ISO`: an instant as `occurredAt` takes it (Z or an offset, in the contract's range: an
 * as-of far past it would fold centuries of periods).
 */
export function parseAsOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!InstantSchema.safeParse(value).success) {
    throw new UsageError(
      `--as-of must be an ISO-8601 instant with Z or an offset, from ${EARLIEST_INSTANT} to before ${LATEST_INSTANT}, e.g. 2024-06-30T23:59:59Z; got ${JSON.stringify(value)}`,
    );
  }
  return Date.parse(value);
}

export const dataDirOf = (dir: string | undefined) => resolve(dir ?? DEFAULT_DATA_DIR);

/** A whole number option (`--customers 1000`), with a message naming the option. */
export function positiveInteger(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number ≥ 0; got ${JSON.stringify(value)}`);
    return n;
  };
}

/** `--database URL` (or LIFECYCLE_DATABASE_URL), checked to be a postgres:// URL; undefined when neither is set. */
export function databaseUrlOf(option: string | undefined): string | undefined {
  const url = option ?? process.env['LIFECYCLE_DATABASE_URL'];
  if (url === undefined || url === '') return undefined;
  if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`--database / LIFECYCLE_DATABASE_URL must be a postgres:// URL; got ${JSON.stringify(url)}`);
  return url;
}

/** Where the streams and read models live: `--database URL` (or LIFECYCLE_DATABASE_URL), else the data directory. */
export function storeLocation(options: { database?: string; dataDir?: string }): { databaseUrl: string } | { dataDir: string } {
  const url = databaseUrlOf(options.database);
  return url !== undefined ? { databaseUrl: url } : { dataDir: dataDirOf(options.dataDir) };
}

const brokerList = z
  .string()
  .transform((s) => s.split(',').map((b) => b.trim()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'each broker is host:port')).min(1));

/** `--brokers` (or LIFECYCLE_KAFKA_BROKERS), default 127.0.0.1:9092. */
export function brokersOf(option: string | undefined): string[] {
  const value = option ?? process.env['LIFECYCLE_KAFKA_BROKERS'] ?? '127.0.0.1:9092';
  const parsed = brokerList.safeParse(value);
  if (!parsed.success) throw new UsageError(`--brokers / LIFECYCLE_KAFKA_BROKERS must be host:port[,host:port…]; got ${JSON.stringify(value)}`);
  return parsed.data;
}

/** `--eventstore` (or LIFECYCLE_EVENTSTORE_URL): an EventStoreDB connection string, required. */
export function eventStoreConnectionOf(option: string | undefined): string {
  const value = (option ?? process.env['LIFECYCLE_EVENTSTORE_URL'] ?? '').trim();
  if (value === '') {
    throw new UsageError('--eventstore / LIFECYCLE_EVENTSTORE_URL is required: the EventStoreDB connection string, e.g. esdb://127.0.0.1:2113?tls=false');
  }
  // The value may hold a password: name only its scheme when it is wrong.
  if (!/^esdb(\+discover)?:\/\//.test(value)) {
    throw new UsageError(`--eventstore / LIFECYCLE_EVENTSTORE_URL must be an esdb:// or esdb+discover:// connection string (e.g. esdb://127.0.0.1:2113?tls=false); got one that starts with ${JSON.stringify(value.split(':')[0] ?? '')}`);
  }
  return value;
}

/** `--auth-keys FILE` (or LIFECYCLE_AUTH_KEYS_FILE): the API key file of a service; undefined when neither is set. */
export function authKeysFileOf(option: string | undefined): string | undefined {
  const file = option ?? process.env['LIFECYCLE_AUTH_KEYS_FILE'];
  return file === undefined || file === '' ? undefined : resolve(file);
}

/** `--scopes read,ingest`: the list as given (checked by the key's own rules). */
export const scopeList = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
