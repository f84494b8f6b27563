import { createReadStream } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { ndjsonLines } from '@lifecycle/contracts';
import { UsageError } from './settings.js';

/**
 * Lines of a file, or of stdin for `-`, as bytes: a line that is not UTF-8 is rejected as such
 * by the contract, not silently repaired by a decoder.
 */
export async function readLines(source: string): Promise<AsyncIterable<Buffer>> {
  if (source !== '-') {
    try {
      await access(source, constants.R_OK);
    } catch (error) {
      throw new UsageError(`cannot read ${source}: ${(error as Error).message}`);
    }
  }
  return ndjsonLines(source === '-' ? process.stdin : createReadStream(source));
}

/** Writes lines to stdout, waiting when the pipe is full; stops quietly if the reader went away. */
export async function writeLines(lines: Iterable<string>): Promise<void> {
  ignoreClosedStdout();
  let buffer = '';
  for (const line of lines) {
    buffer += line + '\n';
    if (buffer.length >= 1 << 16) {
      if (!(await write(buffer))) return;
      buffer = '';
    }
  }
  if (buffer) await write(buffer);
}

/**
 * A reader that went away (`generate | head`) is reported to the write's callback and also as an
 * 'error' event, possibly after the last write returned, which would end the process with a stack
 * trace if nobody listened: listened to for the life of the process.
 */
function ignoreClosedStdout(): void {
  if (process.stdout.listeners('error').includes(onStdoutError)) return;
  process.stdout.on('error', onStdoutError);
}

function onStdoutError(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') throw error;
}

function write(chunk: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (process.stdout.destroyed) return resolve(false);
    const ok = process.stdout.write(chunk, (error) => {
      if (error) resolve(false);
    });
    if (ok) resolve(true);
    else process.stdout.once('drain', () => resolve(true));
  });
}
