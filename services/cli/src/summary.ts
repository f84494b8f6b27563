import { STAGES, type CohortRow, type CustomerRow } from '@lifecycle/contracts';

const pad = (text: string, width: number) => text.padStart(width);

/** Customers by stage, as a small text table. */
export function stageTable(customers: readonly CustomerRow[]): string {
  const counts = new Map<string, number>(STAGES.map((s) => [s, 0]));
  for (const c of customers) counts.set(c.stage, (counts.get(c.stage) ?? 0) + 1);
  const lines = [`customers by stage (${customers.length} customers)`];
  for (const stage of STAGES) lines.push(`  ${stage.padEnd(10)} ${pad(String(counts.get(stage)), 8)}`);
  return lines.join('\n');
}

/** Retention (active / size, %) per cohort and period index: the latest `maxCohorts` cohorts. */
export function retentionTable(cohorts: readonly CohortRow[], maxCohorts = 12, maxPeriods = 12): string {
  const byCohort = new Map<string, CohortRow[]>();
  for (const row of cohorts) byCohort.set(row.cohort, [...(byCohort.get(row.cohort) ?? []), row]);
  const labels = [...byCohort.keys()].slice(-maxCohorts);
  const periods = Math.min(maxPeriods, Math.max(0, ...labels.map((l) => byCohort.get(l)!.length)));
  const width = 6;
  const header = `${'cohort'.padEnd(10)} ${pad('size', 6)} ` + Array.from({ length: periods }, (_, k) => pad(`+${k}`, width)).join('');
  const lines = ['retention by cohort (active / size, %)', header];
  for (const label of labels) {
    const rows = byCohort.get(label)!;
    const cells = rows.slice(0, periods).map((r) => pad(r.size === 0 ? '-' : ((100 * r.active) / r.size).toFixed(0), width));
    lines.push(`${label.padEnd(10)} ${pad(String(rows[0]!.size), 6)} ${cells.join('')}`);
  }
  return lines.join('\n');
}
