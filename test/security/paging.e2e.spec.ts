import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newApiKey } from '@lifecycle/access';
import { lifecycle } from '../support/cli.js';
import { bearer, generatedStore, get, startService, writeKeyFile, type Service } from './support.js';

// GET /customers never builds all customers into one answer (SPEC §9): JSON comes in pages with a
// cursor, NDJSON and CSV are streamed (or paged, with a Link header). Checked against the CLI's
// export of the same store, on a spawned `serve` (its as-of answers come from a worker thread).
type Row = { customerId: string } & Record<string, unknown>;

// Ids whose code-point order differs from JavaScript's code-unit order (U+E000 sorts before an
// astral character by code unit, after it by code point), beside the generated ASCII ones.
const ODD_IDS = ['é', '\uE000-private', '😀-astral', '𝔸-math', 'A b', '~tilde', 'ZZ'];

const codePointOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('GET /customers in pages and streams', () => {
  const key = newApiKey('pager', ['read']);
  let dir: string;
  let dataDir: string;
  let service: Service;
  let latest: Map<string, Row>;
  let earlier: Map<string, Row>;
  let watermark: string;
  const EARLIER = '2024-09-15T00:00:00.000Z';

  const rowsOf = (ndjson: string): Row[] =>
    ndjson
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Row);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-paging-'));
    dataDir = join(dir, 'store');
    const file = join(dir, 'odd.ndjson');
    await appendFile(
      file,
      ODD_IDS.map((customerId, i) => JSON.stringify({ id: `odd-${i}`, type: 'registration', occurredAt: '2024-03-01T00:00:00Z', customerId, properties: { channel: 'search' } }) + '\n').join(''),
    );
    await generatedStore(dir, dataDir, 1200);
    await lifecycle(['ingest', file, '--data-dir', dataDir]);
    latest = new Map(rowsOf((await lifecycle(['export', 'customers', '--data-dir', dataDir])).stdout).map((row) => [row.customerId, row]));
    earlier = new Map(rowsOf((await lifecycle(['export', 'customers', '--data-dir', dataDir, '--as-of', EARLIER])).stdout).map((row) => [row.customerId, row]));
    expect(earlier.size).toBeLessThan(latest.size);
    await writeKeyFile(join(dir, 'keys.json'), [key.key]);
    // Pages of 3 rows make 400 requests: over the default rate limit of 600 a minute with the rest.
    service = await startService(['serve', '--data-dir', dataDir, '--port', '0', '--metrics-port', '0', '--auth-keys', join(dir, 'keys.json'), '--rate-limit', '100000']);
    watermark = JSON.parse((await get(`${service.address}/health`)).text).watermark;
  }, 240_000);
  afterAll(async () => {
    await service?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const read = (path: string) => get(service.address + path, bearer(key.secret));

  /** Follows `next` from `first` to the end: every page's rows, in order. */
  async function pagesFrom(first: string): Promise<{ rows: Row[]; pages: number }> {
    const rows: Row[] = [];
    let pages = 0;
    for (let path: string | null = first; path !== null; ) {
      const answer = await read(path);
      expect(answer.status).toBe(200);
      const page = JSON.parse(answer.text) as { customers: Row[]; next: string | null };
      rows.push(...page.customers);
      pages += 1;
      path = page.next;
    }
    return { rows, pages };
  }

  /** Every customer exactly once, in code-point order, each row the export's. */
  function expectAll(rows: Row[], expected: Map<string, Row>): void {
    const ids = rows.map((row) => row.customerId);
    expect(new Set(ids).size).toBe(ids.length); // nothing repeated
    expect([...ids].sort(codePointOrder)).toEqual(ids);
    expect(new Map(rows.map((row) => [row.customerId, row]))).toEqual(expected); // nothing missed, nothing else
  }

  test('JSON at the latest instant: pages of `limit` rows linked by `next`, every customer once', async () => {
    const { rows, pages } = await pagesFrom('/customers?limit=97');
    expectAll(rows, latest);
    expect(pages).toBe(Math.ceil(latest.size / 97));
    // JSON without a limit is a page too: of 500.
    const first = JSON.parse((await read('/customers')).text) as { customers: Row[]; next: string };
    expect(first.customers).toHaveLength(500);
    expect(first.next).toBe(`/customers?limit=500&after=${encodeURIComponent(first.customers[499]!.customerId)}`);
  });

  test('JSON as of an earlier instant (computed in a worker): the same paging, the export as of then', async () => {
    const { rows } = await pagesFrom(`/customers?asOf=${EARLIER}&limit=250`);
    expectAll(rows, earlier);
  });

  test('the read model and the computation cut the same pages (as of the watermark, the odd ids included)', async () => {
    const fromReadModel = await pagesFrom('/customers?limit=3');
    // Each computed page is a whole computation: bigger pages keep the test short.
    const computed = await pagesFrom(`/customers?asOf=${encodeURIComponent(watermark)}&limit=41`);
    expect(computed.rows.map((row) => row.customerId)).toEqual(fromReadModel.rows.map((row) => row.customerId));
    const odd = fromReadModel.rows.map((row) => row.customerId).filter((id) => ODD_IDS.includes(id));
    expect(odd).toEqual([...ODD_IDS].sort(codePointOrder));
  });

  test('NDJSON and CSV without a limit: every customer, streamed', async () => {
    const ndjson = await read('/customers?format=ndjson');
    expect(ndjson.headers.get('content-type')).toBe('application/x-ndjson');
    expect(ndjson.headers.get('transfer-encoding')).toBe('chunked');
    expectAll(rowsOf(ndjson.text), latest);
    const asOf = await read(`/customers?format=ndjson&asOf=${EARLIER}`);
    expectAll(rowsOf(asOf.text), earlier);

    const csv = (await read('/customers?format=csv')).text.split('\r\n');
    const currencies = [...new Set([...latest.values()].flatMap((row) => Object.keys(row['revenue'] as object)))].sort();
    expect(csv[0]).toBe(`customerId,stage,acquiredAt,cohort,channel,convertedAt,churnedAt,churnReason,payments,reactivations,referrals,${currencies.map((c) => `revenue_${c}`).join(',')}`);
    expect(csv.filter((line) => line.startsWith('customerId,'))).toHaveLength(1); // one header, not one per page
    expect(csv).toHaveLength(latest.size + 2); // header, rows, the empty string after the last CRLF
  });

  test('NDJSON with a limit: pages linked by a Link header', async () => {
    const rows: Row[] = [];
    for (let path: string | undefined = '/customers?format=ndjson&limit=400'; path !== undefined; ) {
      const answer = await read(path);
      rows.push(...rowsOf(answer.text));
      path = /^<([^>]+)>; rel="next"$/.exec(answer.headers.get('link') ?? '')?.[1];
    }
    expectAll(rows, latest);
  });

  test.each([
    ['/customers?limit=0', 'limit must be a whole number from 1 to 5000; got "0"'],
    ['/customers?limit=5001', 'limit must be a whole number from 1 to 5000; got "5001"'],
    ['/customers?after=%00', 'after must be a customer id'],
    ['/customers?lmit=5', 'unknown query parameter "lmit"; known: asOf, format, limit, after'],
  ])('%s is a 400 naming the parameter', async (path, message) => {
    const answer = await read(path);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toEqual({ error: 'bad_request', message: expect.stringContaining(message) });
  });
});
