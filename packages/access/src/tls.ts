import { createSecureContext } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { AccessConfigError } from './api-keys.js';

/** A certificate chain and its private key, PEM, as fastify's `https` option takes them. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/**
 * Reads `--tls-cert` and `--tls-key` (both or neither) and checks that they make a TLS context,
 * so that a wrong file is reported at start, naming the option, rather than at the first client.
 */
export async function readTlsFiles(certFile: string | undefined, keyFile: string | undefined): Promise<TlsFiles | undefined> {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    throw new AccessConfigError(`--tls-cert and --tls-key go together: ${certFile === undefined ? '--tls-cert' : '--tls-key'} is missing`);
  }
  const read = async (option: string, file: string) => {
    try {
      return await readFile(file);
    } catch (error) {
      throw new AccessConfigError(`${option}: cannot read ${file}: ${(error as Error).message}`);
    }
  };
  const files = { cert: await read('--tls-cert', certFile), key: await read('--tls-key', keyFile) };
  try {
    createSecureContext(files);
  } catch (error) {
    // OpenSSL's reason (e.g. "key values mismatch", "no start line") is the useful part.
    throw new AccessConfigError(`--tls-cert ${certFile} and --tls-key ${keyFile} do not make a TLS certificate and its key: ${(error as Error).message}`);
  }
  return files;
}
