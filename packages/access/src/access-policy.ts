import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { AccessConfigError, readApiKeyFile } from './api-keys.js';
import { KeyRing, reloadKeysOnSighup } from './key-ring.js';

/**
 * Who may call a service: the holders of the keys of a key file, or anyone (a service on the
 * loopback interface without keys, as `npm start` is out of the box; or `--insecure-no-auth`).
 */
export type Access = { readonly kind: 'keys'; readonly ring: KeyRing; readonly file: string } | { readonly kind: 'open'; readonly why: 'loopback' | 'insecure' };

/** True for an interface only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare) || bare === '0:0:0:0:0:0:0:1';
  return false;
}

export interface AccessSettings {
  /** The interface the service listens on. */
  host: string;
  /** `--auth-keys FILE` (or LIFECYCLE_AUTH_KEYS_FILE). */
  keysFile?: string | undefined;
  /** `--insecure-no-auth`: serve anyone beyond the loopback interface, knowingly. */
  insecureNoAuth?: boolean;
  /** The command, for the message that says how to fix a refusal. */
  command: string;
}

/**
 * Decides a service's access at start (SPEC §9): keys when a key file is given (on any host; it
 * is re-read on SIGHUP), else open on the loopback interface, else refused with a message that
 * says how to make a key, unless `--insecure-no-auth` (which says so in the log at every start).
 */
export async function resolveAccess(settings: AccessSettings, logger: Logger): Promise<Access> {
  if (settings.keysFile !== undefined && settings.insecureNoAuth) {
    throw new AccessConfigError('--auth-keys and --insecure-no-auth contradict each other: give one of them');
  }
  if (settings.keysFile !== undefined) {
    const ring = new KeyRing(await readApiKeyFile(settings.keysFile));
    reloadKeysOnSighup(ring, settings.keysFile, logger);
    logger.info({ keyFile: settings.keysFile, keys: ring.ids }, 'API keys required (the key file is re-read on SIGHUP)');
    return { kind: 'keys', ring, file: settings.keysFile };
  }
  if (isLoopbackHost(settings.host)) return { kind: 'open', why: 'loopback' };
  if (settings.insecureNoAuth) {
    logger.warn({ host: settings.host }, `--insecure-no-auth: anyone who can reach ${settings.host} reads and writes business data without a key`);
    return { kind: 'open', why: 'insecure' };
  }
  throw new AccessConfigError(
    `--host ${settings.host} is not a loopback interface, and no API keys are configured: anyone who can reach it would read (and write) business data. ` +
      `Create a key (lifecycle keys create --id analyst --scopes read --file keys.json), then start with --auth-keys keys.json ` +
      `(or LIFECYCLE_AUTH_KEYS_FILE=keys.json), e.g. lifecycle ${settings.command} --host ${settings.host} --auth-keys keys.json; ` +
      `--insecure-no-auth serves without keys anyway.`,
  );
}
