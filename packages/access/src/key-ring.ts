import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { readApiKeyFile, type ApiKey } from './api-keys.js';

interface HeldKey {
  readonly key: ApiKey;
  readonly digest: Buffer;
}

const hold = (keys: readonly ApiKey[]): HeldKey[] => keys.map((key) => ({ key, digest: Buffer.from(key.sha256, 'hex') }));

/**
 * The keys a service accepts now. Several at once, so that a key is rotated without downtime:
 * add the new one, move the clients, remove the old one, each step a SIGHUP.
 */
export class KeyRing {
  #keys: HeldKey[];

  constructor(keys: readonly ApiKey[]) {
    this.#keys = hold(keys);
  }

  /** The key whose secret this is, or undefined. */
  authenticate(secret: string): ApiKey | undefined {
    // The presented secret is hashed first, so that every comparison is of 32 bytes whatever was
    // sent, and compared with every key without stopping at a match: how long this takes says
    // nothing about which bytes (or which key) were right.
    const digest = createHash('sha256').update(secret, 'utf8').digest();
    let found: ApiKey | undefined;
    for (const held of this.#keys) {
      if (timingSafeEqual(held.digest, digest)) found = held.key;
    }
    return found;
  }

  /** The ids of the keys held, for logs (never a secret nor a hash). */
  get ids(): string[] {
    return this.#keys.map((held) => held.key.id);
  }

  replace(keys: readonly ApiKey[]): void {
    this.#keys = hold(keys);
  }
}

/**
 * Re-reads `file` into `ring` on every SIGHUP. A file that cannot be read or is not valid keeps
 * the keys held (a typo must not lock every client out, nor let anyone in) and is logged as an
 * error. Returns the function that stops listening.
 */
export function reloadKeysOnSighup(ring: KeyRing, file: string, logger: Logger): () => void {
  const reload = () => {
    readApiKeyFile(file).then(
      (keys) => {
        ring.replace(keys);
        logger.info({ keyFile: file, keys: ring.ids }, 'API keys reloaded');
      },
      (error: Error) => logger.error({ keyFile: file, keys: ring.ids, error: error.message }, 'API key file not reloaded: the keys held are kept'),
    );
  };
  process.on('SIGHUP', reload);
  return () => process.off('SIGHUP', reload);
}
