import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { requireBinaries } from '../support/binaries.js';

// `promtool check config`, `check rules`, `test rules` and the runbook anchors, through the same
// script a developer runs by hand. promtool comes from Debian's `prometheus` package, which
// `.ci/run` installs: in CI its absence is a failure, elsewhere the tests say they skipped.
const script = join(import.meta.dirname, '../../infra/prometheus/check.sh');
const promtool = requireBinaries('prometheus-rules (the rule tests)', { promtool: ['--version'] }, 'prometheus');

(promtool.run ? describe : describe.skip)('Prometheus configuration and alert rules', () => {
  test('promtool checks the config and rules and the rule unit tests pass', () => {
    const run = spawnSync('bash', [script], { encoding: 'utf8', timeout: 120_000 });
    const output = `${run.stdout}\n${run.stderr}`;
    if (run.status !== 0) throw new Error(`infra/prometheus/check.sh exited with ${run.status}:\n${output}`);
    expect(output).toContain('SUCCESS');
    expect(output).toContain('check.sh: all checks passed');
    // Every alert the rules define reached the runbook check.
    for (const alert of ['LifecycleChurnSpike', 'LifecycleProjectorStalled', 'LifecycleDeadLetterSurge']) {
      expect(output).toContain(`${alert} -> RUNBOOK.md#runbook-${alert.toLowerCase()}`);
    }
  });
});
