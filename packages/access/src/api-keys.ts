import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/** What a key allows (SPEC §9): writing touchpoints, reading the read models and the page. */
export const SCOPES = ['ingest', 'read'] as const;
export type Scope = (typeof SCOPES)[number];

/** A configuration mistake the operator must fix (bad key file, TLS files, host without keys): exit code 2. */
export class AccessConfigError extends Error {
  override readonly name = 'AccessConfigError';
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const ApiKeySchema = z.strictObject({
  id: z.string().regex(KEY_ID, 'an id is 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
  // The file holds hashes only: a leaked file (or a backup of it) gives nobody a key.
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'the SHA-256 of the secret as 64 hex digits (lifecycle keys create prints it)')
    .transform((hex) => hex.toLowerCase()),
  scopes: z.array(z.enum(SCOPES)).min(1, 'at least one scope: ingest, read'),
});

/** One entry of the key file: the key's name (logged), the hash of its secret, what it may do. */
export type ApiKey = z.infer<typeof ApiKeySchema>;

/** The key file: a JSON array of keys, at least one, ids and secrets each used once. */
export const ApiKeyFileSchema = z
  .array(ApiKeySchema)
  .min(1, 'the file holds no key; add one (lifecycle keys create --id ID --scopes read)')
  .superRefine((keys, context) => {
    const ids = new Set<string>();
    const hashes = new Set<string>();
    for (const [index, key] of keys.entries()) {
      if (ids.has(key.id)) context.addIssue({ code: 'custom', path: [index, 'id'], message: `the id ${JSON.stringify(key.id)} is used twice` });
      // Two entries with one secret would make the logged id (and the scopes) ambiguous.
      if (hashes.has(key.sha256)) context.addIssue({ code: 'custom', path: [index, 'sha256'], message: 'this secret is already another entry’s' });
      ids.add(key.id);
      hashes.add(key.sha256);
    }
  });

/** Hex SHA-256 of a secret, as the key file holds it. */
export const sha256Hex = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** Reads and checks a key file; every mistake is an AccessConfigError that names the file and the entry. */
export async function readApiKeyFile(file: string): Promise<ApiKey[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new AccessConfigError(`cannot read the API key file ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the text, which could be a secret pasted by mistake.
    throw new AccessConfigError(`the API key file ${file} is not valid JSON (a JSON array of {"id", "sha256", "scopes"} is expected)`);
  }
  const parsed = ApiKeyFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new AccessConfigError(
      `the API key file ${file} is not a JSON array of {"id", "sha256", "scopes": ["ingest" | "read", …]}:\n${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/** Checks a key id and scopes given on the command line (`keys create`). */
export function parseKeyRequest(id: string, scopes: readonly string[]): { id: string; scopes: Scope[] } {
  if (!KEY_ID.test(id)) throw new AccessConfigError(`--id must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit; got ${JSON.stringify(id)}`);
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0) {
    throw new AccessConfigError(`--scopes must be one or more of ${SCOPES.join(', ')} (comma-separated); got ${JSON.stringify(scopes.join(','))}`);
  }
  return { id, scopes: [...new Set(scopes as Scope[])].sort() };
}

/**
 * A new key: its secret (shown once, stored nowhere) and the entry for the key file. 32 random
 * bytes, so that hashing with one unsalted SHA-256 is enough: nobody can guess or brute-force it.
 */
export function newApiKey(id: string, scopes: readonly Scope[]): { secret: string; key: ApiKey } {
  const secret = `lck_${randomBytes(32).toString('base64url')}`;
  return { secret, key: { id, sha256: sha256Hex(secret), scopes: [...scopes] } };
}
