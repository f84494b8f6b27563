import { randomBytes } from 'node:crypto';
import { access, rename, writeFile } from 'node:fs/promises';
import { AccessConfigError, newApiKey, parseKeyRequest, readApiKeyFile, type ApiKey } from '@lifecycle/access';

/**
 * `lifecycle keys create`: a new API key. Its secret is printed once and kept nowhere; the key
 * file gets its SHA-256 (with `--file`, the entry is added there; else it is printed to add).
 */
export async function createKeyCommand(options: { id: string; scopes: string[]; file?: string }): Promise<void> {
  const request = parseKeyRequest(options.id, options.scopes);
  const { secret, key } = newApiKey(request.id, request.scopes);
  const entry = JSON.stringify(key);
  if (options.file !== undefined) {
    await addToKeyFile(options.file, key);
    process.stdout.write(`secret: ${secret}\nadded to ${options.file}: ${entry}\n`);
    process.stderr.write(
      `The secret is shown this once: give it to the client (Authorization: Bearer <secret>). Running services load ${options.file} again on SIGHUP (kill -HUP <pid>).\n`,
    );
    return;
  }
  process.stdout.write(`secret: ${secret}\nentry:  ${entry}\n`);
  process.stderr.write(
    'The secret is shown this once: give it to the client (Authorization: Bearer <secret>). Add the entry to the key file (a JSON array; --file FILE does it), then start with --auth-keys FILE or send the running services SIGHUP.\n',
  );
}

/** Adds `key` to the key file (made if absent), refusing an id it holds already; written whole, then renamed into place. */
async function addToKeyFile(file: string, key: ApiKey): Promise<void> {
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  const keys = exists ? await readApiKeyFile(file) : [];
  if (keys.some((k) => k.id === key.id)) throw new AccessConfigError(`${file} already has a key with the id ${JSON.stringify(key.id)}: pick another id, or remove that entry first`);
  const text = `[\n${[...keys, key].map((k) => `  ${JSON.stringify(k)}`).join(',\n')}\n]\n`;
  // A service reading the file on SIGHUP sees the old file or the new one, never half of it.
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await rename(temporary, file);
}
