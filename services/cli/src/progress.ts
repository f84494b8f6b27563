/** How often a progress line is rewritten. */
const EVERY_MS = 1_000;

export interface Progress {
  /** `count` units done so far; `detail` is shown after the rate (computed only when the line is rewritten: ingest calls this for every line). */
  update(count: number, detail?: () => string): void;
  /** Clears the line. */
  done(): void;
}

/**
 * A progress line for long runs (`ingest`, `replay`, `produce`) on stderr: the count and the rate,
 * rewritten each second, when stderr is a terminal. Piped or in CI it prints nothing: the final
 * summary on stdout is what a script reads.
 */
export function progress(label: string, unit: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  const started = performance.now();
  let shown = started;
  let written = false;
  return {
    update(count, detail) {
      const now = performance.now();
      if (now - shown < EVERY_MS) return;
      shown = now;
      const rate = Math.round(count / ((now - started) / 1000));
      stream.write(`\r\x1b[K${label}: ${count.toLocaleString('en-US')} ${unit}, ${rate.toLocaleString('en-US')}/s${detail ? `, ${detail()}` : ''}`);
      written = true;
    },
    done() {
      if (written) stream.write('\r\x1b[K');
    },
  };
}
