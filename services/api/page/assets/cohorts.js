/** Rows of /cohorts grouped into cohorts (or (cohort, channel) pairs), shared by the heatmap and LTV. */

/**
 * @typedef {{cohort: string, channel?: string, periodIndex: number, period: string, size: number,
 *   converted: number, active: number, churned: number, reactivated: number, revenue: Record<string, number>}} CohortRow
 * @typedef {{cohort: string, channel: string | undefined, size: number, cells: CohortRow[]}} CohortGroup
 */

/**
 * One group per cohort (per (cohort, channel) for `?by=channel` rows), in the API's order; its
 * cells are its rows by period index.
 * @param {CohortRow[]} rows
 * @returns {CohortGroup[]}
 */
export function groupCohorts(rows) {
  const groups = [];
  let current;
  for (const row of rows) {
    if (current === undefined || current.cohort !== row.cohort || current.channel !== row.channel) {
      current = { cohort: row.cohort, channel: row.channel, size: row.size, cells: [] };
      groups.push(current);
    }
    current.cells.push(row);
  }
  return groups;
}

/** The period unit of a cohort label: `2024-01` month, `2024-W05` ISO week, `2024-01-31` day. */
export function periodUnit(cohort) {
  if (/W\d\d$/.test(cohort)) return 'weeks';
  return /^\d{4}-\d\d-\d\d$/.test(cohort) ? 'days' : 'months';
}
