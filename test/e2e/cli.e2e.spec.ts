import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLifecycleConfig, parseTouchpoint, type Touchpoint } from '@lifecycle/contracts';
import { oracleExport } from '../oracle/batch-oracle.js';
import { cli, lifecycle } from '../support/cli.js';

const failing = async (args: string[]) => {
  try {
    await lifecycle(args);
  } catch (error) {
    return error as { code: number; stderr: string };
  }
  throw new Error(`lifecycle ${args.join(' ')} should have failed`);
};

describe('the lifecycle command, end to end', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-e2e-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('generate → ingest in two runs → export equals the batch oracle; invalid lines are dead letters', async () => {
    const { stdout } = await lifecycle(['generate', '--customers', '150', '--seed', '3', '--duplicate-rate', '0.05', '--invalid-rate', '0.02', '--late-rate', '0.05']);
    const lines = stdout.trimEnd().split('\n');
    const half = Math.floor(lines.length / 2);
    await writeFile(join(dir, 'a.ndjson'), lines.slice(half).join('\n') + '\n');
    await writeFile(join(dir, 'b.ndjson'), lines.slice(0, half).join('\n') + '\n');
    const dataDir = join(dir, 'data');
    const first = JSON.parse((await lifecycle(['ingest', join(dir, 'a.ndjson'), '--data-dir', dataDir])).stdout);
    const second = JSON.parse((await lifecycle(['ingest', join(dir, 'b.ndjson'), '--data-dir', dataDir])).stdout);

    const verdicts = lines.map((line) => parseTouchpoint(line));
    const invalid = verdicts.filter((v) => !v.ok).length;
    const valid = verdicts.flatMap((v) => (v.ok ? [v.touchpoint] : [])) as Touchpoint[];
    const distinct = new Set(valid.map((t) => t.id)).size;
    expect(first.accepted + second.accepted).toBe(distinct);
    expect(first.duplicates + second.duplicates).toBe(valid.length - distinct);
    const rejected = (s: { rejected: Record<string, number> }) => Object.values(s.rejected).reduce((a, b) => a + b, 0);
    expect(rejected(first) + rejected(second)).toBe(invalid);

    const letters = (await readFile(join(dataDir, 'dead-letter.ndjson'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(letters).toHaveLength(invalid);
    for (const letter of letters) {
      const source = letter.source === join(dir, 'a.ndjson') ? lines.slice(half) : lines.slice(0, half);
      expect(source[letter.line - 1]!.startsWith(letter.raw.slice(0, 100))).toBe(true);
      expect(letter.issues.length).toBeGreaterThan(0);
    }

    const expected = oracleExport(valid, parseLifecycleConfig({}));
    const customers = (await lifecycle(['export', 'customers', '--data-dir', dataDir])).stdout;
    const cohorts = (await lifecycle(['export', 'cohorts', '--data-dir', dataDir])).stdout;
    expect(customers).toBe(expected.customers.map((r) => JSON.stringify(r) + '\n').join(''));
    expect(cohorts).toBe(expected.cohorts.map((r) => JSON.stringify(r) + '\n').join(''));

    const asOf = '2024-04-30T23:59:59.999Z';
    const earlier = (await lifecycle(['export', 'customers', '--data-dir', dataDir, '--as-of', asOf])).stdout;
    expect(earlier).toBe(oracleExport(valid, parseLifecycleConfig({}), asOf).customers.map((r) => JSON.stringify(r) + '\n').join(''));
  });

  test('bad settings, options and files fail with exit code 2 and a message naming them', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ churn: { inactivityDays: 'sixty' } }));
    const config = await failing(['export', 'customers', '--data-dir', join(dir, 'x'), '--config', join(dir, 'bad.json')]);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('churn.inactivityDays');
    const asOf = await failing(['export', 'cohorts', '--data-dir', join(dir, 'x'), '--as-of', '2024-01-01']);
    expect(asOf.code).toBe(2);
    expect(asOf.stderr).toContain('--as-of');
    const missing = await failing(['ingest', join(dir, 'nope.ndjson'), '--data-dir', join(dir, 'x')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.ndjson');
  });

  test('ingesting with other settings than the store was projected with says to replay', async () => {
    const dataDir = join(dir, 'settings');
    const { stdout } = await lifecycle(['generate', '--customers', '5', '--seed', '1']);
    await writeFile(join(dir, 's.ndjson'), stdout);
    await writeFile(join(dir, 'weekly.json'), JSON.stringify({ cohort: { granularity: 'week' } }));
    await lifecycle(['ingest', join(dir, 's.ndjson'), '--data-dir', dataDir]);
    const error = await failing(['ingest', join(dir, 's.ndjson'), '--data-dir', dataDir, '--config', join(dir, 'weekly.json')]);
    expect(error.code).toBe(2);
    expect(error.stderr).toContain('replay');
    await lifecycle(['replay', '--data-dir', dataDir, '--config', join(dir, 'weekly.json')]);
    const cohorts = (await lifecycle(['export', 'cohorts', '--data-dir', dataDir, '--config', join(dir, 'weekly.json')])).stdout;
    expect(cohorts.split('\n')[0]).toMatch(/"cohort":"\d{4}-W\d{2}"/);
  });

  test('start ingests, prints a summary, serves the API and stops cleanly on SIGINT', async () => {
    const child = spawn(process.execPath, [cli, 'start', '--customers', '40', '--port', '0', '--data-dir', join(dir, 'start')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /serving the read models at (http:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]!);
      });
      child.on('exit', (code) => reject(new Error(`start exited with ${code}: ${output}`)));
    });
    expect(output).toContain('customers by stage');
    expect(output).toContain('retention by cohort');
    const cohorts = (await (await fetch(`${address}/cohorts`)).json()) as { cohort: string }[];
    expect(cohorts.length).toBeGreaterThan(0);
    const customers = (await (await fetch(`${address}/customers`)).json()) as { customerId: string }[];
    const one = (await (await fetch(`${address}/customers/${encodeURIComponent(customers[0]!.customerId)}`)).json()) as { customer: { stage: string }; stream: { type: string }[] };
    expect(one.stream.map((e) => e.type)).toContain('TouchpointRecorded');
    expect((await fetch(`${address}/customers/nobody`)).status).toBe(404);
    expect((await fetch(`${address}/cohorts?format=csv`)).headers.get('content-type')).toContain('text/csv');
    const metrics = await (await fetch(`${address}/metrics`)).text();
    const accepted = [...metrics.matchAll(/^lifecycle_touchpoints_total\{[^}]*outcome="accepted"[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    const byStage = [...metrics.matchAll(/^lifecycle_customers\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(accepted).toBe(Number(/accepted (\d+)/.exec(output)![1]));
    expect(byStage).toBe(customers.length);
    const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGINT');
    expect(await exit).toBe(0);
  });
});
