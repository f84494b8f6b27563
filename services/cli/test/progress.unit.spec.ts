import { jest } from '@jest/globals';
import { progress } from '../src/progress.js';

/** A stand-in for stderr that records what is written to it. */
const stream = (isTTY: boolean) => {
  const written: string[] = [];
  return { written, stream: { isTTY, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream };
};

describe('progress of long runs', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('on a terminal: the count and the rate, at most once a second, and the line cleared at the end', () => {
    const { written, stream: tty } = stream(true);
    const bar = progress('ingest f.ndjson', 'lines', tty);
    bar.update(10);
    expect(written).toEqual([]); // not a second yet
    jest.advanceTimersByTime(2_000);
    bar.update(50_000, () => '49,000 accepted');
    bar.update(50_001);
    expect(written).toEqual(['\r\x1b[Kingest f.ndjson: 50,000 lines, 25,000/s, 49,000 accepted']);
    bar.done();
    expect(written.at(-1)).toBe('\r\x1b[K');
  });

  test('piped or in CI: nothing at all', () => {
    const { written, stream: pipe } = stream(false);
    const bar = progress('replay', 'customers', pipe);
    jest.advanceTimersByTime(5_000);
    bar.update(1_000);
    bar.done();
    expect(written).toEqual([]);
  });
});
