import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

// Drives the built CLI as separate processes, as an operator would.
const run = promisify(execFile);
/** The built `lifecycle` command. */
export const cli = join(import.meta.dirname, '../../services/cli/dist/main.js');
export const lifecycle = (args: string[]) => run(process.execPath, [cli, ...args], { maxBuffer: 256 << 20 });
