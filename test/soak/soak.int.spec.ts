import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireBinaries } from '../support/binaries.js';
import { POSTGRES_URL } from '../support/postgres.js';

// The fault soak (`npm run soak`, README "Reliability") in its short version, so that CI runs the
// harness end to end: 3 cycles through the built command, with the faults whose machinery is the
// most involved (a projector dying inside its commit, the broker bounced on its data, the HTTP
// ingest killed under a request). The broker is the soak's own (free ports, its own state), so
// bouncing it disturbs no other test; the database is its own and `pg_terminate_backend` only
// reaches it. Never here: the restart of the shared PostgreSQL server (`--postgres-restart`),
// which would cut every other test running beside this one.
const soakMain = join(import.meta.dirname, '../../services/cli/dist/soak-main.js');
const run = promisify(execFile);
const kcat = requireBinaries('soak', { kcat: ['-V'] }, 'kcat');

interface Report {
  ok: boolean;
  cycles: { run: number; survived: number };
  faultsByKind: Record<string, number>;
  recoverySeconds: { p50: number | null; max: number | null };
  input: { lines: number; byPath: Record<string, { lines: number }> };
  faults: { kind: string; detail: string; survived: boolean; error?: string }[];
  verification: { ok: boolean; checks?: { name: string; ok: boolean; detail: string; difference?: unknown }[]; error?: string };
}

async function soak(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [soakMain, ...args], { maxBuffer: 64 << 20, env: { ...process.env, LOG_LEVEL: 'warn' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('the fault soak', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-soak-test-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a misspelled option or an unknown fault kind is a usage error (exit 2) naming it', async () => {
    const misspelled = await soak(['--cycles', '3', '--cylces', '2']);
    expect(misspelled.code).toBe(2);
    expect(misspelled.stderr).toContain('--cylces');
    const unknown = await soak(['--cycles', '3', '--faults', 'kill,meteor']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('"meteor"');
    const noCycles = await soak(['--cycles', '0']);
    expect(noCycles.code).toBe(2);
    expect(noCycles.stderr).toContain('--cycles');
  });

  (kcat.run ? test : test.skip)(
    '3 cycles under live input: every fault recovered from, then the read models equal an embedded ingest of the same lines, each line exactly once',
    async () => {
      const json = join(dir, 'report.json');
      const result = await soak([
        '--cycles', '3',
        '--seed', '11',
        '--minutes', '0.6', // cycles of 12 s: the recovery takes most of each
        '--rate', '150',
        '--faults', 'crash-in-commit,broker-restart,ingest-kill',
        '--database', POSTGRES_URL,
        '--json', json,
      ]);
      const report = JSON.parse(await readFile(json, 'utf8')) as Report;
      // On a failure, the report's own lines say which check and the first differing rows.
      expect({ code: result.code, summary: result.stdout.split('\n').filter((l) => /FAIL|FAILED|not done/.test(l)) }).toEqual({ code: 0, summary: [] });
      expect(report.ok).toBe(true);
      expect(report.cycles).toEqual({ run: 3, survived: 3 });
      expect(report.faultsByKind).toEqual({ 'crash-in-commit': 1, 'broker-restart': 1, 'ingest-kill': 1 });
      // Input went through all three clients.
      for (const path of ['produce', 'http', 'kcat']) expect(report.input.byPath[path]!.lines).toBeGreaterThan(0);
      const checks = report.verification.checks ?? [];
      expect(checks.filter((c) => !c.ok)).toEqual([]);
      // The checks that make it exactly-once are all there.
      for (const name of ['export customers', 'export cohorts --by channel', 'export referrals', 'exactly once', 'repartition stage', 'replay: export customers', 'wall clock: the due churns']) {
        expect(checks.some((c) => c.name.includes(name))).toBe(true);
      }
    },
    15 * 60_000,
  );
});
