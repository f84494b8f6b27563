import { cpus, loadavg, totalmem } from 'node:os';

/**
 * One line of the bench's table. `value` is what the JSON file keeps for comparing runs; `shown`
 * is how the table prints it. `met` is null when the row has no goal or was not measured.
 */
export interface BenchRow {
  /** Stable across runs and sizes, for comparing JSON files. */
  id: string;
  measure: string;
  value: number | Record<string, number> | null;
  unit: string;
  shown: string;
  goal: string | null;
  met: boolean | null;
  /** How the value was obtained and what stands beside it, printed under the row. */
  notes: string[];
}

/** The rows of one part of the bench (embedded, kafka) and everything it measured. */
export interface PartResult {
  goals: BenchRow[];
  context: BenchRow[];
  details: unknown;
}

export const skippedRow = (id: string, measure: string, goal: string, reason: string): BenchRow => ({
  id,
  measure,
  value: null,
  unit: '',
  shown: 'skipped',
  goal,
  met: null,
  notes: [reason],
});

/** Progress on stderr, so that stdout holds only the table. */
export const progress = (text: string) => process.stderr.write(`bench: ${text}\n`);

export const thousands = (n: number) => Math.round(n).toLocaleString('en-US');
export const round1 = (n: number) => Math.round(n * 10) / 10;
export const round3 = (n: number) => Math.round(n * 1000) / 1000;
export const mib = (kib: number) => Math.round(kib / 1024);

/** The 1-minute load average: other work on the machine slows every figure, so each run says how busy it was. */
export const load = () => round1(loadavg()[0] ?? 0);

export function machine() {
  const all = cpus();
  return { cores: all.length, cpu: all[0]?.model ?? 'unknown', memoryMiB: Math.round(totalmem() / 2 ** 20), node: process.version, platform: process.platform };
}

const verdict = (met: boolean | null) => (met === null ? '' : met ? 'met' : 'NOT MET');

/** The table: measure, value, goal, met; each row's notes indented under it. */
export function formatTable(sections: { title: string; rows: BenchRow[] }[]): string[] {
  const all = sections.flatMap((s) => s.rows);
  const widths = {
    measure: Math.max(7, ...all.map((r) => r.measure.length)),
    value: Math.max(5, ...all.map((r) => r.shown.length)),
    goal: Math.max(4, ...all.map((r) => (r.goal ?? '').length)),
  };
  const line = (measure: string, value: string, goal: string, met: string) =>
    `${measure.padEnd(widths.measure)}  ${value.padStart(widths.value)}  ${goal.padEnd(widths.goal)}  ${met}`.trimEnd();
  const out: string[] = [];
  for (const section of sections) {
    if (section.rows.length === 0) continue;
    out.push('', section.title, line('measure', 'value', 'goal', 'met'), '-'.repeat(widths.measure + widths.value + widths.goal + 13));
    for (const row of section.rows) {
      out.push(line(row.measure, row.shown, row.goal ?? '', verdict(row.met)));
      for (const note of row.notes) out.push(`    ${note}`);
    }
  }
  return out;
}
