import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newApiKey } from '@lifecycle/access';
import { bearer, get, startService, until, writeKeyFile, type Service } from './support.js';

// `npm start` (lifecycle start) with keys: the API, the page and POST /v1/touchpoints in one
// process, each route with its scope; the streamed ingest body bounded per line and in total.
describe('lifecycle start with API keys', () => {
  const reader = newApiKey('analyst', ['read']);
  const loader = newApiKey('loader', ['ingest']);
  let dir: string;
  let dataDir: string;
  let service: Service;
  const touchpoint = (id: string, customerId: string) => JSON.stringify({ id, type: 'registration', occurredAt: '2025-02-01T00:00:00Z', customerId, properties: {} });
  const post = async (body: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${service.address}/v1/touchpoints`, { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson', ...headers } });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-start-keys-'));
    dataDir = join(dir, 'store');
    await writeKeyFile(join(dir, 'keys.json'), [reader.key, loader.key]);
    service = await startService(['start', '--customers', '50', '--port', '0', '--data-dir', dataDir, '--auth-keys', join(dir, 'keys.json')]);
    await until(() => service.stdout().includes('press Ctrl-C to stop') || undefined, 'the summary');
  }, 120_000);
  afterAll(async () => {
    expect(await service?.stop()).toBe(0);
    const output = (service?.stdout() ?? '') + (service?.stderr() ?? '');
    for (const secret of [reader.secret, loader.secret]) expect(output).not.toContain(secret);
    await rm(dir, { recursive: true, force: true });
  });

  test('says how to send touchpoints with a key', () => {
    expect(service.stdout()).toContain(`more touchpoints: curl --data-binary @touchpoints.ndjson -H 'Authorization: Bearer <key>' ${service.address}/v1/touchpoints`);
  });

  test('POST /v1/touchpoints needs the ingest scope; the read models need the read scope', async () => {
    const body = `${touchpoint('k1', 'keyed-1')}\n`;
    expect((await post(body)).status).toBe(401);
    expect((await post(body, bearer(reader.secret))).status).toBe(403);
    const accepted = await post(body, bearer(loader.secret));
    expect(accepted).toMatchObject({ status: 200, body: { lines: 1, accepted: 1 } });
    expect((await get(`${service.address}/customers/keyed-1`, bearer(loader.secret))).status).toBe(403);
    expect((await get(`${service.address}/customers/keyed-1`, bearer(reader.secret))).status).toBe(200);
    expect((await get(`${service.address}/metrics`)).status).toBe(200);
    expect((await get(`${service.address}/`)).status).toBe(200);
    const logged = await service.logged((line) => line['msg'] === 'request' && line['route'] === '/v1/touchpoints' && line['status'] === 200, 'the ingest request line');
    expect(logged).toMatchObject({ method: 'POST', keyId: 'loader' });
  });

  test('a line over 1 MiB is cut there and dead-lettered as too large; the lines after it are ingested', async () => {
    const huge = `{"id":"huge","type":"registration","customerId":"h","padding":"${'x'.repeat(3 * 1024 * 1024)}"}`;
    const answer = await post(`${touchpoint('b1', 'bounded-1')}\n${huge}\n${touchpoint('b2', 'bounded-2')}\n`, bearer(loader.secret));
    expect(answer).toMatchObject({ status: 200, body: { lines: 3, accepted: 2, rejected: { payload_too_large: 1 } } });
    const letters = (await readFile(join(dataDir, 'dead-letter.ndjson'), 'utf8')).trimEnd().split('\n');
    const letter = JSON.parse(letters.at(-1)!) as { reason: string; line?: number };
    expect(letter.reason).toBe('payload_too_large');
    expect(letters.at(-1)!.length).toBeLessThan(1.2 * 1024 * 1024); // the cut line, not 3 MiB
  });

  test('a body declared over 1 GiB is refused with 413 before it is read', async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const sent = request(`${service.address}/v1/touchpoints`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', 'content-length': String(2 * 1024 ** 3), ...bearer(loader.secret) },
      });
      sent.on('response', (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => {
          resolve({ status: response.statusCode!, body });
          sent.destroy();
        });
      });
      sent.on('error', reject);
      sent.flushHeaders();
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({ error: 'payload_too_large', message: expect.stringContaining('at most 1073741824 bytes') });
  });
});
