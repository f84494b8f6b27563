import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lifecycleExit } from '../support/cli.js';
import { bearer, get, startService } from './support.js';

// `lifecycle keys create` as an operator uses it: a secret printed once, its hash in the key file.
describe('lifecycle keys create', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-keys-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const secretOf = (stdout: string) => /^secret: (lck_\S+)$/m.exec(stdout)![1]!;

  test('prints the secret once and the entry to add; with --file adds it (readable by its owner only); an id twice is refused', async () => {
    const printed = await lifecycleExit(['keys', 'create', '--id', 'analyst', '--scopes', 'read']);
    expect(printed.code).toBe(0);
    const entry = JSON.parse(/^entry: +(.*)$/m.exec(printed.stdout)![1]!);
    expect(entry).toEqual({ id: 'analyst', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), scopes: ['read'] });
    expect(printed.stderr).toContain('The secret is shown this once');

    const file = join(dir, 'keys.json');
    const first = await lifecycleExit(['keys', 'create', '--id', 'analyst', '--scopes', 'read', '--file', file]);
    const second = await lifecycleExit(['keys', 'create', '--id', 'loader', '--scopes', 'ingest,read', '--file', file]);
    expect([first.code, second.code]).toEqual([0, 0]);
    expect(JSON.parse(await readFile(file, 'utf8')).map((k: { id: string; scopes: string[] }) => [k.id, k.scopes])).toEqual([
      ['analyst', ['read']],
      ['loader', ['ingest', 'read']],
    ]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, 'utf8');
    for (const run of [first, second]) expect(text).not.toContain(secretOf(run.stdout));

    const again = await lifecycleExit(['keys', 'create', '--id', 'analyst', '--scopes', 'read', '--file', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`lifecycle: ${file} already has a key with the id "analyst"`);

    // The printed secret opens the service that reads the file.
    const service = await startService(['serve', '--data-dir', join(dir, 'store'), '--port', '0', '--metrics-port', '0', '--auth-keys', file]);
    try {
      expect((await get(`${service.address}/customers`, bearer(secretOf(first.stdout)))).status).toBe(200);
      expect((await get(`${service.address}/customers`, bearer(secretOf(printed.stdout)))).status).toBe(401); // never added
    } finally {
      await service.stop();
    }
  });

  test.each([
    [['keys', 'create', '--id', 'x'], "error: required option '--scopes <list>' not specified"],
    [['keys', 'create', '--id', 'x', '--scopes', 'write'], '--scopes must be one or more of ingest, read'],
    [['keys', 'create', '--id', 'two words', '--scopes', 'read'], '--id must be 1–64 letters'],
    [['serve', '--auth-key', 'keys.json'], "error: unknown option '--auth-key'"],
    [['serve', '--rate-limit', '0'], '--rate-limit must be at least 1'],
    [['start', '--export-concurrency', 'two'], '--export-concurrency must be a whole number'],
  ])('lifecycle %j: exit 2, naming what is wrong', async (args, message) => {
    const { code, stderr } = await lifecycleExit(args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
  });
});
