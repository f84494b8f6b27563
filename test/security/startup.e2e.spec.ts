import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newApiKey } from '@lifecycle/access';
import { lifecycleExit } from '../support/cli.js';
import { bearer, get, startService, writeKeyFile } from './support.js';

// How a service starts (SPEC §9): loopback without keys is open, any other interface needs keys;
// a key file or TLS files that are not right stop it at once, exit 2, saying what to fix.
let dir: string;
const reader = newApiKey('reader', ['read']);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifecycle-startup-'));
  await writeKeyFile(join(dir, 'keys.json'), [reader.key]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('a service beyond the loopback interface without keys refuses to start', () => {
  test.each([
    ['serve', ['serve', '--port', '0', '--metrics-port', '0']],
    ['start', ['start', '--customers', '10', '--port', '0']],
    ['ingest-server', ['ingest-server', '--port', '0', '--metrics-port', '0', '--brokers', '127.0.0.1:1']],
  ])('%s --host 0.0.0.0: exit 2, how to make a key, nothing opened', async (command, args) => {
    const dataDir = join(dir, `refused-${command}`);
    const { code, stdout, stderr } = await lifecycleExit([...args, '--host', '0.0.0.0', ...(command === 'ingest-server' ? [] : ['--data-dir', dataDir])]);
    expect(code).toBe(2);
    expect(stderr).toContain(`lifecycle: --host 0.0.0.0 is not a loopback interface, and no API keys are configured`);
    expect(stderr).toContain('lifecycle keys create --id analyst --scopes read --file keys.json');
    expect(stderr).toContain(`lifecycle ${command} --host 0.0.0.0 --auth-keys keys.json`);
    expect(stdout).toBe('');
    expect(existsSync(dataDir)).toBe(false);
  });

  test('--insecure-no-auth serves anyone anyway, and says so at start', async () => {
    const service = await startService(['serve', '--data-dir', join(dir, 'insecure'), '--host', '0.0.0.0', '--port', '0', '--metrics-port', '0', '--insecure-no-auth']);
    try {
      expect(service.logs().find((line) => line['level'] === 40)).toMatchObject({ host: '0.0.0.0', msg: expect.stringContaining('--insecure-no-auth: anyone who can reach 0.0.0.0') });
      const port = new URL(service.address).port;
      expect((await get(`http://127.0.0.1:${port}/customers`)).status).toBe(200);
    } finally {
      await service.stop();
    }
  });

  test('keys given on the loopback interface are required there too (LIFECYCLE_AUTH_KEYS_FILE as well as --auth-keys)', async () => {
    const service = await startService(['serve', '--data-dir', join(dir, 'env-keys'), '--port', '0', '--metrics-port', '0'], { ...process.env, LIFECYCLE_AUTH_KEYS_FILE: join(dir, 'keys.json') });
    try {
      expect((await get(`${service.address}/customers`)).status).toBe(401);
      expect((await get(`${service.address}/customers`, bearer(reader.secret))).status).toBe(200);
    } finally {
      await service.stop();
    }
  });
});

describe('a key file that is not right stops the service at start, exit 2', () => {
  const secret = newApiKey('pasted', ['read']).secret;
  test.each([
    ['missing', undefined, 'cannot read the API key file'],
    ['not JSON', `${secret}\n`, 'is not valid JSON'],
    ['not an array', '{"id": "a"}', 'is not a JSON array of'],
    ['a secret where its hash goes', JSON.stringify([{ id: 'pasted', sha256: secret, scopes: ['read'] }]), 'the SHA-256 of the secret as 64 hex digits'],
    ['an unknown scope', JSON.stringify([{ ...reader.key, scopes: ['write'] }]), 'scopes'],
    ['no key', '[]', 'the file holds no key'],
    ['an id twice', JSON.stringify([reader.key, { ...newApiKey('reader', ['read']).key }]), 'the id "reader" is used twice'],
    ['an unknown field', JSON.stringify([{ ...reader.key, secret }]), 'Unrecognized key'],
  ])('%s', async (name, text, message) => {
    const file = join(dir, `bad-${name.replace(/\W+/g, '-')}.json`);
    if (text !== undefined) await writeFile(file, text);
    const { code, stderr } = await lifecycleExit(['serve', '--data-dir', join(dir, 'never'), '--port', '0', '--metrics-port', '0', '--auth-keys', file]);
    expect(code).toBe(2);
    expect(stderr).toContain(`lifecycle: `);
    expect(stderr).toContain(message);
    expect(stderr).toContain(file);
    // The message never repeats the file's text: it could hold a secret pasted by mistake.
    expect(stderr).not.toContain(secret);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  test('--auth-keys with --insecure-no-auth contradict each other', async () => {
    const { code, stderr } = await lifecycleExit(['serve', '--port', '0', '--auth-keys', join(dir, 'keys.json'), '--insecure-no-auth']);
    expect(code).toBe(2);
    expect(stderr).toContain('--auth-keys and --insecure-no-auth contradict each other');
  });
});

describe('TLS', () => {
  let certificate: string;
  let key: string;
  beforeAll(() => {
    // A self-signed certificate for localhost, valid one day; and a second key that does not match it.
    certificate = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', certificate], { stdio: 'ignore' });
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(dir, 'other-key.pem')], { stdio: 'ignore' });
  });

  /** GET over HTTPS trusting only the test's certificate. */
  async function httpsGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
    const ca = await readFile(certificate);
    return new Promise((resolve, reject) => {
      request(url, { ca, headers, servername: 'localhost' }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, text }));
      })
        .on('error', reject)
        .end();
    });
  }

  test('--tls-cert and --tls-key: HTTPS, the keys checked as over HTTP, HSTS sent; plain HTTP is not answered', async () => {
    const service = await startService([
      'serve', '--data-dir', join(dir, 'tls'), '--port', '0', '--metrics-port', '0', '--auth-keys', join(dir, 'keys.json'), '--tls-cert', certificate, '--tls-key', key,
    ]);
    try {
      expect(service.address).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const address = service.address.replace('127.0.0.1', 'localhost');
      expect((await httpsGet(`${address}/customers`)).status).toBe(401);
      const answer = await httpsGet(`${address}/customers`, bearer(reader.secret));
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.text)).toEqual({ customers: [], next: null });
      expect(answer.headers['strict-transport-security']).toBe('max-age=31536000');
      expect((await httpsGet(`${address}/health`)).status).toBe(200);
      await expect(fetch(service.address.replace('https:', 'http:') + '/health')).rejects.toThrow();
    } finally {
      await service.stop();
    }
  });

  test.each([
    ['a certificate without its key', () => ['--tls-cert', certificate], '--tls-cert and --tls-key go together: --tls-key is missing'],
    ['a key without its certificate', () => ['--tls-key', key], '--tls-cert and --tls-key go together: --tls-cert is missing'],
    ['a file that is not there', () => ['--tls-cert', join(dir, 'nothing.pem'), '--tls-key', key], '--tls-cert: cannot read /'],
    ['a key of another certificate', () => ['--tls-cert', certificate, '--tls-key', join(dir, 'other-key.pem')], 'do not make a TLS certificate and its key'],
    ['a certificate that is not PEM', () => ['--tls-cert', join(dir, 'keys.json'), '--tls-key', key], 'do not make a TLS certificate and its key'],
  ])('%s: exit 2, naming the option', async (_, files, message) => {
    const { code, stderr } = await lifecycleExit(['serve', '--data-dir', join(dir, 'never'), '--port', '0', '--metrics-port', '0', ...files()]);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).not.toContain('    at '); // a message, not a stack
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});
