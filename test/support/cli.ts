import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

// Drives the built CLI as separate processes, as an operator would.
const run = promisify(execFile);
/** The built `lifecycle` command. */
export const cli = join(import.meta.dirname, '../../services/cli/dist/main.js');
export const lifecycle = (args: string[]) => run(process.execPath, [cli, ...args], { maxBuffer: 256 << 20 });

/** Runs the CLI to its end, whatever its exit code: `code` is the exit code, null when a signal ended it. */
export async function lifecycleExit(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { maxBuffer: 256 << 20, env: options.env ?? process.env, ...(options.cwd ? { cwd: options.cwd } : {}) });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, signal, stdout, stderr } = error as { code: unknown; signal: unknown; stdout: string; stderr: string };
    if (typeof code === 'number') return { code, stdout, stderr };
    if (typeof signal === 'string') return { code: null, stdout, stderr };
    throw error; // the process did not run
  }
}
