const LF = 0x0a;
const CR = 0x0d;

/**
 * The lines of an NDJSON byte stream, as bytes: decoding is left to `parseTouchpoint`, which
 * rejects a line that is not UTF-8 instead of letting a decoder replace its bad bytes. A CR
 * before the LF is dropped; a last line without LF is a line.
 */
export async function* ndjsonLines(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Buffer> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    const buffer = rest.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([rest, chunk]);
    let start = 0;
    for (let end = buffer.indexOf(LF); end !== -1; end = buffer.indexOf(LF, start)) {
      yield withoutCr(buffer.subarray(start, end));
      start = end + 1;
    }
    // A copy: the stream may reuse its chunk's memory.
    rest = Buffer.from(buffer.subarray(start));
  }
  if (rest.length > 0) yield withoutCr(rest);
}

const withoutCr = (line: Buffer) => (line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, -1) : line);

/** True for a line of nothing but JSON whitespace (skipped, not an error). */
export function isBlankLine(line: string | Uint8Array): boolean {
  if (typeof line === 'string') return line.trim() === '';
  for (const byte of line) if (byte !== 0x20 && byte !== 0x09 && byte !== CR && byte !== LF) return false;
  return true;
}
