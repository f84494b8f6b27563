import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { AccessConfigError, KeyRing, assertDeclaredLength, isLoopbackHost, newApiKey, parseKeyRequest, readApiKeyFile, resolveAccess, sha256Hex } from '@lifecycle/access';
import { ExportSlots, boundedNdjson, compareCodePoints } from '@lifecycle/api';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifecycle-access-unit-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A logger whose lines the test reads. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('API keys', () => {
  test('a new key: a secret of 256 random bits, and the entry with its SHA-256 only', () => {
    const { secret, key } = newApiKey('analyst', ['read']);
    expect(secret).toMatch(/^lck_[A-Za-z0-9_-]{43}$/);
    expect(key).toEqual({ id: 'analyst', sha256: sha256Hex(secret), scopes: ['read'] });
    expect(JSON.stringify(key)).not.toContain(secret.slice(4));
    expect(newApiKey('analyst', ['read']).secret).not.toBe(secret);
  });

  test('the ring knows each key by its secret only, and a replaced ring forgets the old keys', () => {
    const a = newApiKey('a', ['read']);
    const b = newApiKey('b', ['ingest', 'read']);
    const ring = new KeyRing([a.key, b.key]);
    expect(ring.authenticate(a.secret)?.id).toBe('a');
    expect(ring.authenticate(b.secret)?.scopes).toEqual(['ingest', 'read']);
    for (const wrong of ['', a.secret.slice(0, -1), `${a.secret} `, a.key.sha256, b.secret.toUpperCase()]) expect(ring.authenticate(wrong)).toBeUndefined();
    ring.replace([b.key]);
    expect(ring.authenticate(a.secret)).toBeUndefined();
    expect(ring.ids).toEqual(['b']);
  });

  test('an uppercase hash in the file is the same hash', async () => {
    const { secret, key } = newApiKey('upper', ['read']);
    const file = join(dir, 'upper.json');
    await writeFile(file, JSON.stringify([{ ...key, sha256: key.sha256.toUpperCase() }]));
    expect(new KeyRing(await readApiKeyFile(file)).authenticate(secret)?.id).toBe('upper');
  });

  test.each([
    ['an id with a space', 'bad id', ['read'], '--id must be'],
    ['no scope', 'ok', [], '--scopes must be one or more of ingest, read'],
    ['an unknown scope', 'ok', ['read', 'admin'], 'got "read,admin"'],
  ])('keys create refuses %s', (_, id, scopes, message) => {
    expect(() => parseKeyRequest(id, scopes)).toThrow(AccessConfigError);
    expect(() => parseKeyRequest(id, scopes)).toThrow(message);
  });

  test('keys create sorts and dedupes the scopes', () => {
    expect(parseKeyRequest('k', ['read', 'ingest', 'read'])).toEqual({ id: 'k', scopes: ['ingest', 'read'] });
  });
});

describe('who may call a service', () => {
  test.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.10', false],
    ['10.0.0.1', false],
    ['example.com', false],
    ['127.0.0.1.example.com', false],
  ])('%s is loopback: %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  test('keys when a file is given (on any host); open on loopback without; refused beyond it; --insecure-no-auth warns', async () => {
    const file = join(dir, 'keys.json');
    await writeFile(file, JSON.stringify([newApiKey('k', ['read']).key]));
    const { logger, lines } = capturedLogger();
    const withKeys = await resolveAccess({ host: '0.0.0.0', keysFile: file, command: 'serve' }, logger);
    expect(withKeys.kind === 'keys' && withKeys.ring.ids).toEqual(['k']);
    expect(await resolveAccess({ host: '127.0.0.1', command: 'serve' }, logger)).toEqual({ kind: 'open', why: 'loopback' });
    await expect(resolveAccess({ host: '10.1.2.3', command: 'serve' }, logger)).rejects.toThrow(/--host 10\.1\.2\.3 is not a loopback interface.*lifecycle keys create/);
    expect(lines.some((line) => line['level'] === 40)).toBe(false);
    expect(await resolveAccess({ host: '10.1.2.3', insecureNoAuth: true, command: 'serve' }, logger)).toEqual({ kind: 'open', why: 'insecure' });
    expect(lines.filter((line) => line['level'] === 40)).toEqual([expect.objectContaining({ host: '10.1.2.3' })]);
    process.removeAllListeners('SIGHUP'); // the ring above listens for reloads
  });
});

describe('bounded bodies', () => {
  const limits = { maxBytes: 100, maxLineBytes: 8 };
  const through = async (chunks: string[], bounds = limits) => {
    const out: Buffer[] = [];
    for await (const piece of boundedNdjson((async function* () { for (const c of chunks) yield Buffer.from(c); })(), bounds)) out.push(Buffer.from(piece));
    return Buffer.concat(out).toString();
  };

  test('lines within the limit pass unchanged, however the chunks cut them', async () => {
    expect(await through(['ab\ncd', 'ef\n', 'gh'])).toBe('ab\ncdef\ngh');
  });

  test('a line over the limit keeps its first bytes; the lines after it are whole', async () => {
    expect(await through(['0123456789abc\nok\n'])).toBe('01234567\nok\n');
    // Cut across chunks: the line's bytes are counted over all of them.
    expect(await through(['0123', '4567', '89', 'ab\nok', '\n'])).toBe('01234567\nok\n');
    expect(await through(['ok\n0123456789'])).toBe('ok\n01234567');
  });

  test('a body over its limit ends in a 413', async () => {
    await expect(through(['x\n'.repeat(60)])).rejects.toMatchObject({ statusCode: 413, code: 'payload_too_large' });
    expect(() => assertDeclaredLength('101', limits)).toThrow('at most 100 bytes');
    expect(() => assertDeclaredLength('100', limits)).not.toThrow();
    expect(() => assertDeclaredLength(undefined, limits)).not.toThrow();
  });

  test('property: the output is the input with every line cut to its first maxLineBytes bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: fc.constantFrom('a', 'b', '\n') }), { maxLength: 8 }), async (chunks) => {
        const expected = chunks
          .join('')
          .split('\n')
          .map((line) => line.slice(0, 8))
          .join('\n');
        expect(await through(chunks, { maxBytes: 10_000, maxLineBytes: 8 })).toBe(expected);
      }),
    );
  });
});

describe('pages and computations', () => {
  test('property: customer pages are in code-point order (UTF-8 bytes, PostgreSQL "C")', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(Math.sign(compareCodePoints(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 2000 },
    );
    // Above all where code units and code points disagree: U+E000–U+FFFF against astral characters.
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'é', '\uE000', '\uFFFD', '😀', '𝔸', '\u{10FFFF}') }), fc.string({ unit: fc.constantFrom('a', '\uE000', '😀') }), (a, b) => {
        expect(Math.sign(compareCodePoints(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 2000 },
    );
    expect(compareCodePoints('\uE000', '😀')).toBeLessThan(0);
    expect('\uE000' < '😀').toBe(false);
  });

  test('at most K slots; each given back once; the wait to retry from how long they took', () => {
    const slots = new ExportSlots(2);
    const first = slots.take()!;
    const second = slots.take()!;
    expect(slots.take()).toBeUndefined();
    first();
    first(); // twice is once
    expect(slots.running).toBe(1);
    expect(slots.take()).toBeDefined();
    expect(slots.take()).toBeUndefined();
    second();
    expect(slots.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(() => new ExportSlots(0)).toThrow('≥ 1');
  });
});
