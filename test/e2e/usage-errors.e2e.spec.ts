import { spawn } from 'node:child_process';
import { cli, lifecycleExit as run } from '../support/cli.js';

// Exit codes of the README: 0 success, 2 usage or configuration error, 1 anything else. Commander's
// own errors would exit 1 unless main.ts maps them, so each kind is checked on the built CLI.

describe('usage errors of the lifecycle command exit with code 2', () => {
  test.each([
    ['a missing argument', ['ingest'], "error: missing required argument 'file'", 'Usage: lifecycle ingest'],
    ['an unknown option', ['ingest', 'f', '--dat-dir', 'x'], "error: unknown option '--dat-dir'", 'Usage: lifecycle ingest'],
    ['an unknown command', ['ingets'], "error: unknown command 'ingets'", 'Usage: lifecycle'],
    ['an invalid argument', ['export', 'foo'], 'must be one of customers, cohorts, channels, churns, stages, referrals', 'Usage: lifecycle export'],
    ['an invalid option value', ['generate', '--customers', 'abc'], "option '--customers <n>' argument 'abc' is invalid", 'Usage: lifecycle generate'],
    ['a missing required option', ['generate'], "error: required option '--customers <n>' not specified", 'Usage: lifecycle generate'],
    ['no command at all', [], 'Commands:', 'Usage: lifecycle'],
  ])('%s: lifecycle %j', async (_, args, message, usage) => {
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain(usage); // the help after the error
    expect(stdout).toBe('');
  });

  test('a value the command itself rejects (UsageError, not commander) is 2 too, without the help', async () => {
    const { code, stderr } = await run(['generate', '--customers', '1', '--start', 'yesterday']);
    expect(code).toBe(2);
    expect(stderr).toContain('lifecycle: --as-of must be an ISO-8601 instant');
    expect(stderr).not.toContain('Usage:');
  });
});

describe('help exits with code 0 on stdout', () => {
  test.each([[['--help']], [['-h']], [['help']], [['help', 'ingest']], [['ingest', '--help']]])('lifecycle %j', async (args) => {
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: lifecycle/);
    expect(stderr).toBe('');
  });

  test('a reader that goes away early (`generate | head -1`) ends generate quietly, with 0', async () => {
    const child = spawn(process.execPath, [cli, 'generate', '--customers', '20000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.stdout.destroy();
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
