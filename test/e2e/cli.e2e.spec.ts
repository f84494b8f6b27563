import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseLifecycleConfig, parseTouchpoint, type Touchpoint } from '@lifecycle/contracts';
import { openLifecycleStore } from '@lifecycle/projection';
import { loadProjectionState, readCohortRows, readCustomerRows } from '@lifecycle/readmodel';
import { oracleExport } from '../oracle/batch-oracle.js';
import { cli, lifecycle, lifecycleExit } from '../support/cli.js';

const failing = async (args: string[]) => {
  try {
    await lifecycle(args);
  } catch (error) {
    return error as { code: number; stderr: string };
  }
  throw new Error(`lifecycle ${args.join(' ')} should have failed`);
};

interface StoredEvent {
  position: number;
  stream_id: string;
  revision: number;
  event_type: string;
  data: Record<string, unknown>;
}

/** The read models and streams of a data directory, read from its tables (closed before returning: one process per directory). */
async function readStore(dataDir: string) {
  const db = await openLifecycleStore({ dataDir });
  try {
    const state = await loadProjectionState(db);
    if (state.watermark === null || state.config === null) throw new Error(`${dataDir} holds no projection`);
    return {
      state,
      rows: await readCustomerRows(db),
      cohorts: await readCohortRows(db, state.watermark, state.config),
      customers: await db.query(
        'SELECT customer_id, stage, acquired_at, cohort, channel, converted_at, churned_at, churn_reason, payments, reactivations, referrals, revenue, next_deadline, history FROM customers ORDER BY customer_id',
      ),
      cohortCells: await db.query('SELECT * FROM cohort_cells ORDER BY cohort_period, period_offset'),
      stageChanges: await db.query('SELECT * FROM stage_changes ORDER BY customer_id, seq'),
      events: (await db.query<StoredEvent>('SELECT position, stream_id, revision, event_type, data FROM lifecycle_events ORDER BY position')).map((e) => ({ ...e, position: Number(e.position) })),
    };
  } finally {
    await db.close();
  }
}

/** A stream's lifecycle events still in force: each LifecycleHistoryCorrected drops the revisions it retracts. */
function inForce(events: readonly StoredEvent[], stream: string): Record<string, unknown>[] {
  let kept: StoredEvent[] = [];
  for (const event of events) {
    if (event.stream_id !== stream || event.event_type === 'TouchpointRecorded') continue;
    if (event.event_type === 'LifecycleHistoryCorrected') {
      const retracted = new Set(event.data['retractedRevisions'] as number[]);
      kept = kept.filter((e) => !retracted.has(e.revision));
    } else kept.push(event);
  }
  return kept.map((e) => e.data);
}

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
    const ndjson = (rows: readonly object[]) => rows.map((r) => JSON.stringify(r) + '\n').join('');
    expect((await lifecycle(['export', 'channels', '--data-dir', dataDir])).stdout).toBe(ndjson(expected.channels));
    expect((await lifecycle(['export', 'cohorts', '--by', 'channel', '--data-dir', dataDir])).stdout).toBe(ndjson(expected.cohortsByChannel));

    // The analyst views through `lifecycle sql`, read-only.
    const sql = async (statement: string) => (await lifecycle(['sql', statement, '--format', 'ndjson', '--data-dir', dataDir])).stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(await sql('SELECT count(*)::int AS n FROM analyst_customers')).toEqual([{ n: expected.customers.length }]);
    expect(await sql('SELECT cohort, period_index, active FROM analyst_cohorts ORDER BY cohort, period_index')).toEqual(
      expected.cohorts.map((c) => ({ cohort: c.cohort, period_index: c.periodIndex, active: c.active })),
    );
    const refused = await failing(['sql', 'DELETE FROM customers', '--data-dir', dataDir]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('read-only transaction');
    expect(await sql('SELECT count(*)::int AS n FROM analyst_customers')).toEqual([{ n: expected.customers.length }]);

    const asOf = '2024-04-30T23:59:59.999Z';
    const earlier = (await lifecycle(['export', 'customers', '--data-dir', dataDir, '--as-of', asOf])).stdout;
    expect(earlier).toBe(ndjson(oracleExport(valid, parseLifecycleConfig({}), asOf).customers));
    expect((await lifecycle(['export', 'channels', '--data-dir', dataDir, '--as-of', asOf])).stdout).toBe(ndjson(oracleExport(valid, parseLifecycleConfig({}), asOf).channels));
    expect((await lifecycle(['export', 'cohorts', '--data-dir', dataDir, '--as-of', asOf])).stdout).toBe(ndjson(oracleExport(valid, parseLifecycleConfig({}), asOf).cohorts));
  });

  test('bad settings, options and files fail with exit code 2 and a message naming them', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ churn: { inactivityDays: 'sixty' } }));
    const config = await failing(['export', 'customers', '--data-dir', join(dir, 'x'), '--config', join(dir, 'bad.json')]);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('churn.inactivityDays');
    const asOf = await failing(['export', 'cohorts', '--data-dir', join(dir, 'x'), '--as-of', '2024-01-01']);
    expect(asOf.code).toBe(2);
    expect(asOf.stderr).toContain('--as-of');
    const by = await failing(['export', 'channels', '--by', 'channel', '--data-dir', join(dir, 'x')]);
    expect(by.code).toBe(2);
    expect(by.stderr).toContain('--by applies to cohorts, not channels');
    const missing = await failing(['ingest', join(dir, 'nope.ndjson'), '--data-dir', join(dir, 'x')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.ndjson');
  });

  test('replay with new settings re-projects the read models and appends the corrections to the streams', async () => {
    // `export --config NEW` folds from the streams whatever the read models hold, so this test
    // reads the read-model tables and the streams themselves.
    const { stdout } = await lifecycle(['generate', '--customers', '120', '--seed', '7', '--duplicate-rate', '0.03', '--late-rate', '0.05']);
    const lines = stdout.trimEnd().split('\n');
    const cut = Math.floor(lines.length * 0.85);
    const first = join(dir, 'replay-first.ndjson');
    const more = join(dir, 'replay-more.ndjson');
    await writeFile(first, lines.slice(0, cut).join('\n') + '\n');
    await writeFile(more, lines.slice(cut).join('\n') + '\n');
    const newSettings = join(dir, 'replay-new.json');
    await writeFile(newSettings, JSON.stringify({ churn: { inactivityDays: 30 }, cohort: { granularity: 'week', timeZone: 'America/New_York' } }));
    const replayed = join(dir, 'replayed');
    const scratch = join(dir, 'from-scratch');
    const run = (args: string[]) => lifecycleExit(args);

    expect((await run(['ingest', first, '--data-dir', replayed])).code).toBe(0);
    expect((await run(['ingest', first, '--data-dir', scratch, '--config', newSettings])).code).toBe(0);
    const refused = await run(['ingest', more, '--data-dir', replayed, '--config', newSettings]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('lifecycle replay');

    const before = await readStore(replayed);
    const target = await readStore(scratch);
    // The new settings matter for these data: some read-model rows and some histories differ.
    expect(before.customers).not.toEqual(target.customers);
    expect(before.cohortCells).not.toEqual(target.cohortCells);

    expect((await run(['replay', '--data-dir', replayed, '--config', newSettings])).code).toBe(0);
    const after = await readStore(replayed);
    // Same watermark and settings; a new generation, so that projectors holding customers read them again.
    expect(after.state).toEqual({ ...target.state, generation: expect.any(String) });
    expect(before.state.generation).toBeNull();
    expect(after.rows).toEqual(target.rows);
    expect(after.cohorts).toEqual(target.cohorts);
    expect(after.customers).toEqual(target.customers);
    expect(after.cohortCells).toEqual(target.cohortCells);
    expect(after.stageChanges).toEqual(target.stageChanges);

    // The streams: a correction exactly where the recorded history is not a prefix of the new one;
    // where it is, the new events only follow; everywhere, the history in force is the new one.
    const lastBefore = Math.max(...before.events.map((e) => e.position));
    const appended = after.events.filter((e) => e.position > lastBefore);
    expect(appended.filter((e) => e.event_type === 'TouchpointRecorded')).toEqual([]);
    const ids = [...new Set([...target.events.map((e) => e.stream_id)])].filter((s) => s.startsWith('customer-')).sort();
    const rewritten: string[] = [];
    const untouched: string[] = [];
    for (const stream of ids) {
      const old = inForce(before.events, stream);
      const next = inForce(target.events, stream);
      const prefix = old.length <= next.length && old.every((e, i) => isDeepStrictEqual(e, next[i]));
      if (!prefix) rewritten.push(stream);
      else if (old.length === next.length) untouched.push(stream);
      expect({ stream, history: inForce(after.events, stream) }).toEqual({ stream, history: next });
    }
    expect(rewritten.length).toBeGreaterThan(0);
    expect(untouched.length).toBeGreaterThan(0);
    const corrected = [...new Set(appended.filter((e) => e.event_type === 'LifecycleHistoryCorrected').map((e) => e.stream_id))].sort();
    expect(corrected).toEqual(rewritten);
    const touched = new Set(appended.map((e) => e.stream_id));
    expect(untouched.filter((s) => touched.has(s))).toEqual([]);

    // The store now holds the new settings: the old ones are refused, the new ones go on.
    const old = await run(['ingest', more, '--data-dir', replayed]);
    expect(old.code).toBe(2);
    expect(old.stderr).toContain('lifecycle replay');
    const accepted = await run(['ingest', more, '--data-dir', replayed, '--config', newSettings]);
    expect(accepted.code).toBe(0);
    expect(JSON.parse(accepted.stdout).accepted).toBeGreaterThan(0);
    expect((await run(['ingest', more, '--data-dir', scratch, '--config', newSettings])).code).toBe(0);
    const [end, scratchEnd] = [await readStore(replayed), await readStore(scratch)];
    expect(end.rows).toEqual(scratchEnd.rows);
    expect(end.cohorts).toEqual(scratchEnd.cohorts);
    expect(end.cohortCells).toEqual(scratchEnd.cohortCells);
  }, 180_000);

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
    // A page (README "HTTP API"): 40 customers fit in the first one.
    const { customers, next } = (await (await fetch(`${address}/customers`)).json()) as { customers: { customerId: string }[]; next: string | null };
    expect(next).toBeNull();
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
