import { spawnSync } from 'node:child_process';

/**
 * Checks for the Debian tools some tests need (`.ci/run` installs them): `binaries` maps each to
 * the arguments that make it print its version. The tests run when all are on PATH, and in CI
 * (CI=true) also when one is missing, so that there its absence fails them; elsewhere this says
 * on stderr what is skipped and which package gives the tool.
 */
export function requireBinaries(what: string, binaries: Record<string, string[]>, debianPackage: string): { run: boolean; missing: string[] } {
  const missing = Object.entries(binaries)
    .filter(([binary, args]) => spawnSync(binary, args, { stdio: 'ignore' }).status !== 0)
    .map(([binary]) => binary);
  const inCi = process.env['CI'] === 'true';
  if (missing.length > 0 && !inCi) process.stderr.write(`${what}: ${missing.join(' and ')} not found, SKIPPED (apt-get install ${debianPackage})\n`);
  return { run: missing.length === 0 || inCi, missing };
}
