import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newApiKey } from '@lifecycle/access';
import { parseExposition } from '../support/exposition.js';
import { ensureBroker } from '../support/kafka.js';
import { bearer, get, startService, writeKeyFile, type Service } from './support.js';

// The HTTP ingest service (`lifecycle ingest-server`) with keys, in front of the real broker.
describe('lifecycle ingest-server with API keys', () => {
  const writer = newApiKey('producer-a', ['ingest']);
  const reader = newApiKey('analyst', ['read']);
  let dir: string;
  let service: Service;
  const post = async (body: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${service.address}/v1/touchpoints`, { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson', ...headers } });
    return { status: response.status, text: await response.text() };
  };
  const line = JSON.stringify({ id: `t-${randomBytes(4).toString('hex')}`, type: 'registration', occurredAt: '2025-03-01T10:00:00Z', customerId: 'c1', properties: {} });

  beforeAll(async () => {
    const brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-ingest-keys-'));
    await writeKeyFile(join(dir, 'keys.json'), [writer.key, reader.key]);
    const topic = `secured-${randomBytes(4).toString('hex')}`;
    service = await startService(['ingest-server', '--brokers', brokers, '--topic', topic, '--port', '0', '--metrics-port', '0', '--auth-keys', join(dir, 'keys.json')]);
  }, 300_000);
  afterAll(async () => {
    expect(await service?.stop()).toBe(0);
    const output = (service?.stdout() ?? '') + (service?.stderr() ?? '');
    for (const secret of [writer.secret, reader.secret]) expect(output).not.toContain(secret);
    await rm(dir, { recursive: true, force: true });
  });

  test('401 without a key or with an unknown one, 403 with a read key (the same body), 202 with an ingest key', async () => {
    const missing = await post(`${line}\n`);
    const unknown = await post(`${line}\n`, bearer('lck_nobody'));
    const readOnly = await post(`${line}\n`, bearer(reader.secret));
    expect([missing.status, unknown.status, readOnly.status]).toEqual([401, 401, 403]);
    expect(new Set([missing.text, unknown.text, readOnly.text]).size).toBe(1);
    const accepted = await post(`${line}\n`, bearer(writer.secret));
    expect(accepted.status).toBe(202);
    expect(JSON.parse(accepted.text)).toMatchObject({ lines: 1, accepted: 1 });
    expect((await get(`${service.address}/health`)).status).toBe(200);
  });

  // The client reads the 413 while it still sends: the service does not reset the connection
  // under it (which, before, failed Node's fetch with a broken pipe in about half the requests).
  test('a body over 10 MiB is a 413 every time, counted as too_large', async () => {
    const body = 'x'.repeat(10 * 1024 * 1024 + 1);
    for (let i = 0; i < 5; i += 1) {
      const tooLarge = await post(body, bearer(writer.secret));
      expect(tooLarge.status).toBe(413);
      expect(JSON.parse(tooLarge.text)).toMatchObject({ error: 'payload_too_large' });
    }
    const refusals = parseExposition((await get(`${service.metrics}/metrics`)).text).filter((s) => s.name === 'lifecycle_http_refusals_total');
    const count = (reason: string) => refusals.find((s) => s.labels['reason'] === reason && s.labels['route'] === '/v1/touchpoints')?.value;
    expect([count('missing_key'), count('unknown_key'), count('missing_scope'), count('too_large')]).toEqual([1, 1, 1, 5]);
  });
});
