import { bodyTooLarge } from '@lifecycle/access';

export interface BodyLimits {
  /** The whole body, in bytes: beyond it the request is refused (413). */
  maxBytes: number;
  /** One NDJSON line, in bytes: the rest of a longer line is dropped, so it is still read, and rejected as too large. */
  maxLineBytes: number;
}

const LF = 0x0a;

/**
 * An NDJSON body streamed with bounded memory (SPEC §9): the bytes pass through as they come,
 * except that a line longer than `maxLineBytes` is cut to its first `maxLineBytes` bytes (a
 * touchpoint may have 64 KiB: the cut line is still dead-lettered as too large, and the lines
 * after it are read), and a body over `maxBytes` ends in a 413.
 */
export async function* boundedNdjson(chunks: AsyncIterable<Uint8Array>, limits: BodyLimits): AsyncGenerator<Uint8Array> {
  let total = 0;
  let line = 0; // bytes of the current line so far
  for await (const chunk of chunks) {
    total += chunk.byteLength;
    if (total > limits.maxBytes) throw bodyTooLarge(limits.maxBytes);
    // The chunk goes whole, unless a line in it runs past the limit: then the part past the limit is left out.
    let kept = 0; // where the part of the chunk still to be passed on starts
    let start = 0;
    while (start < chunk.byteLength) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.byteLength : lf;
      const room = Math.max(0, limits.maxLineBytes - line);
      if (end - start > room) {
        if (start + room > kept) yield chunk.subarray(kept, start + room);
        kept = end;
      }
      line += end - start;
      if (lf === -1) break;
      line = 0;
      start = lf + 1;
    }
    if (kept < chunk.byteLength) yield kept === 0 ? chunk : chunk.subarray(kept);
  }
}
