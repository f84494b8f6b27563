import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newApiKey } from '@lifecycle/access';
import { parseExposition } from '../support/exposition.js';
import { bearer, generatedStore, get, startService, until, writeKeyFile, type Service } from './support.js';

// `lifecycle serve` behind API keys, as a spawned process on a real port (SPEC §9).
describe('lifecycle serve with API keys', () => {
  const reader = newApiKey('reader', ['read']);
  const writer = newApiKey('writer', ['ingest']);
  const both = newApiKey('loader', ['ingest', 'read']);
  const rotated = newApiKey('reader-2026', ['read']);
  const secrets = [reader, writer, both, rotated].map((k) => k.secret);
  let dir: string;
  let dataDir: string;
  let keyFile: string;
  let service: Service;
  const url = (path: string) => service.address + path;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-access-'));
    dataDir = join(dir, 'store');
    await generatedStore(dir, dataDir, 300);
    keyFile = join(dir, 'keys.json');
    await writeKeyFile(keyFile, [reader.key, writer.key, both.key]);
    service = await startService(['serve', '--data-dir', dataDir, '--port', '0', '--metrics-port', '0', '--auth-keys', keyFile]);
  }, 180_000);

  afterAll(async () => {
    await service?.stop();
    // No secret in any line the process wrote, whatever the test did with its keys.
    const output = (service?.stdout() ?? '') + (service?.stderr() ?? '');
    for (const secret of secrets) expect(output).not.toContain(secret);
    await rm(dir, { recursive: true, force: true });
  });

  const DATA_ROUTES = ['/customers?limit=3', '/customers/c-3-0', '/cohorts', '/channels', '/churns', '/stages', '/referrals', '/churn-rate'];

  test.each(DATA_ROUTES)('%s: 401 without a key or with an unknown one, 403 with a key without the read scope, the same body; 200 with a read key', async (path) => {
    const missing = await get(url(path));
    const unknown = await get(url(path), bearer('lck_not-a-key'));
    const notBearer = await get(url(path), { authorization: `Basic ${Buffer.from(`x:${reader.secret}`).toString('base64')}` });
    const noScope = await get(url(path), bearer(writer.secret));
    expect([missing.status, unknown.status, notBearer.status, noScope.status]).toEqual([401, 401, 401, 403]);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="lifecycle"');
    // Nothing says which part was wrong.
    for (const refused of [unknown, notBearer, noScope]) expect(refused.text).toBe(missing.text);
    expect(JSON.parse(missing.text)).toEqual({ error: 'unauthorized', message: expect.stringContaining('Authorization: Bearer') });
    for (const key of [reader, both]) expect((await get(url(path), bearer(key.secret))).status).toBe(200);
  });

  test('/health, /metrics and the page stay open; the page and the answers carry the security headers', async () => {
    expect((await get(url('/health'))).status).toBe(200);
    expect((await get(`${service.metrics}/metrics`)).status).toBe(200);
    const page = await get(url('/'));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const refused = await get(url('/cohorts'));
    expect(refused.headers.get('x-content-type-options')).toBe('nosniff');
    expect(refused.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    // Plain HTTP: no HSTS (browsers ignore it there, and on localhost it would outlive the service).
    expect(refused.headers.get('strict-transport-security')).toBeNull();
  });

  test('refusals are counted by route pattern and reason; the request log names the key, never its secret', async () => {
    const before = await refusals();
    await get(url('/customers/someone'));
    await get(url('/customers/someone'), bearer('lck_unknown'));
    await get(url('/customers/someone'), bearer(writer.secret));
    await get(url('/customers/someone'), bearer(writer.secret));
    const after = await refusals();
    const added = (reason: string) => (after.get(`/customers/:id ${reason}`) ?? 0) - (before.get(`/customers/:id ${reason}`) ?? 0);
    expect([added('missing_key'), added('unknown_key'), added('missing_scope')]).toEqual([1, 1, 2]);
    // Label values are route patterns: never a customer id.
    expect([...after.keys()].every((key) => !key.includes('someone'))).toBe(true);

    await get(url('/stages'), bearer(reader.secret));
    const lines = await service.logged((line) => line['msg'] === 'request' && line['route'] === '/stages' && line['keyId'] === 'reader', 'the request line of /stages');
    expect(lines).toMatchObject({ method: 'GET', status: 200, keyId: 'reader' });
    expect(service.logs().find((line) => line['msg'] === 'request' && line['refused'] === 'missing_scope')).toMatchObject({ keyId: 'writer', status: 403 });
  });

  async function refusals(): Promise<Map<string, number>> {
    const text = (await get(`${service.metrics}/metrics`)).text;
    return new Map(parseExposition(text).filter((s) => s.name === 'lifecycle_http_refusals_total').map((s) => [`${s.labels['route']} ${s.labels['reason']}`, s.value]));
  }

  test('rotation without downtime: the key file is re-read on SIGHUP; a broken file keeps the keys held and says why', async () => {
    const reloads = () => service.logs().filter((line) => line['msg'] === 'API keys reloaded');
    const failures = () => service.logs().filter((line) => line['msg'] === 'API key file not reloaded: the keys held are kept');
    const hangUp = async (lines: () => Record<string, unknown>[], what: string) => {
      const seen = lines().length;
      service.child.kill('SIGHUP');
      return until(() => lines()[seen], what);
    };
    const status = async (secret: string) => (await get(url('/customers?limit=1'), bearer(secret))).status;

    // Step 1: the new key is added beside the old one; both work.
    await writeKeyFile(keyFile, [reader.key, rotated.key, writer.key, both.key]);
    expect(await hangUp(reloads, 'the reload')).toMatchObject({ keys: ['reader', 'reader-2026', 'writer', 'loader'] });
    expect([await status(reader.secret), await status(rotated.secret)]).toEqual([200, 200]);

    // Step 2: the old key is removed; it is refused from then on.
    await writeKeyFile(keyFile, [rotated.key, writer.key, both.key]);
    await hangUp(reloads, 'the second reload');
    expect([await status(reader.secret), await status(rotated.secret)]).toEqual([401, 200]);

    // A file broken by a careless edit: the keys held stay, the error is logged (without the file's text).
    await writeFile(keyFile, `[{"id": "oops", "sha256": "${reader.secret}", "scopes": ["read"]}`);
    expect(await hangUp(failures, 'the refused reload')).toMatchObject({ level: 50, keyFile, keys: ['reader-2026', 'writer', 'loader'], error: expect.stringContaining('is not valid JSON') });
    expect([await status(reader.secret), await status(rotated.secret)]).toEqual([401, 200]);
    expect(service.child.exitCode).toBeNull();
  });
});

describe('the rate limit', () => {
  const first = newApiKey('first', ['read']);
  const second = newApiKey('second', ['read']);
  let dir: string;
  let service: Service;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-rate-'));
    await writeKeyFile(join(dir, 'keys.json'), [first.key, second.key]);
    // An empty store: the point is the count of requests, not their answers.
    service = await startService(['serve', '--data-dir', join(dir, 'store'), '--port', '0', '--metrics-port', '0', '--auth-keys', join(dir, 'keys.json'), '--rate-limit', '3']);
  }, 120_000);
  afterAll(async () => {
    await service?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('is per key: the fourth request of a minute is a 429 with Retry-After; another key and the probes go on', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(`${service.address}/customers?limit=1`, bearer(first.secret))).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await get(`${service.address}/customers?limit=1`, bearer(first.secret));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(JSON.parse(limited.text)).toEqual({ error: 'rate_limited', message: expect.stringMatching(/^more than 3 requests in 60 s: retry in/) });
    expect((await get(`${service.address}/customers?limit=1`, bearer(second.secret))).status).toBe(200);
    for (let i = 0; i < 6; i++) expect((await get(`${service.address}/health`)).status).toBe(200);
    const metrics = parseExposition((await get(`${service.metrics}/metrics`)).text);
    expect(metrics.find((s) => s.name === 'lifecycle_http_refusals_total' && s.labels['reason'] === 'rate_limited')).toMatchObject({ labels: { route: '/customers' }, value: 2 });
  });
});
