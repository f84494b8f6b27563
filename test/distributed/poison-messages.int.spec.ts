import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateTouchpoints } from '@lifecycle/generator';
import { openLifecycleStore, recordedTouchpoints } from '@lifecycle/projection';
import { createTestDatabase } from '../support/postgres.js';
import { createTopic, ensureBroker } from '../support/kafka.js';
import { cli, lifecycle } from '../support/cli.js';
import { projector, readMessages } from '../support/distributed.js';
import { requireBinaries } from '../support/binaries.js';

// Messages no store can hold (NUL, lone surrogates, bytes that are not UTF-8), and a valid one
// the store refuses anyway: none may stop a partition, and none may be lost or stored.
const kcat = requireBinaries('poison-messages', { kcat: ['-V'] }, 'kcat');

const STORE_REJECTS = 'LIFECYCLE_TEST_STORE_REJECTS';

interface DeadLetterLine {
  source: string;
  line: number;
  reason: string;
  issues: { path: string; message: string }[];
  raw: string;
  id?: string;
}

const deadLetterFile = async (dataDir: string): Promise<DeadLetterLine[]> =>
  (await readFile(join(dataDir, 'dead-letter.ndjson'), 'utf8'))
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as DeadLetterLine);

/** Customers and cohorts of a store, as `lifecycle export` prints them. */
async function exports(store: string[]): Promise<{ customers: string; cohorts: string }> {
  const customers = (await lifecycle(['export', 'customers', ...store])).stdout;
  const cohorts = (await lifecycle(['export', 'cohorts', ...store])).stdout;
  return { customers, cohorts };
}

/** Generated touchpoints, one JSON line each (no noise: every line is valid). */
const validLines = (seed: number) =>
  [...generateTouchpoints({ customers: 100, seed, months: 6 })].map((t) => ({ touchpoint: t, line: JSON.stringify(t) }));

(kcat.run ? describe : describe.skip)('poison messages produced by kcat', () => {
  let brokers: string;
  let dir: string;
  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-poison-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a NUL and a lone surrogate produced by kcat among valid lines', async () => {
    const valid = validLines(23);
    const withCustomer = valid.filter((v) => v.touchpoint.customerId !== undefined);
    // A copy of a valid line under a new id, with `bad` put into its customerId's JSON text.
    const poisoned = (at: number, id: string, bad: Buffer): Buffer => {
      const { touchpoint, line } = withCustomer[Math.floor(withCustomer.length * at)]!;
      const text = line.replace(`"id":${JSON.stringify(touchpoint.id)}`, `"id":"${id}"`);
      const field = `"customerId":${JSON.stringify(touchpoint.customerId)}`;
      const cut = text.indexOf(field) + field.length - 1; // before the closing quote
      expect(cut).toBeGreaterThan(field.length);
      return Buffer.concat([Buffer.from(text.slice(0, cut)), bad, Buffer.from(text.slice(cut))]);
    };
    const bad = [
      { bytes: poisoned(0.2, 'poison-nul', Buffer.from('\\u0000')), reason: 'invalid_field', path: 'customerId' },
      { bytes: poisoned(0.4, 'poison-surrogate', Buffer.from('\\ud800')), reason: 'invalid_field', path: 'customerId' },
      { bytes: poisoned(0.6, 'poison-nul-2', Buffer.from('a\\u0000b')), reason: 'invalid_field', path: 'customerId' },
      { bytes: poisoned(0.8, 'poison-utf8', Buffer.from([0xff, 0xfe])), reason: 'malformed_json', path: '' },
    ];
    // In the file the escapes are the six characters, not the code points.
    expect(bad[0]!.bytes.includes('\\u0000')).toBe(true);
    expect(bad[1]!.bytes.includes('\\ud800')).toBe(true);
    expect(bad[3]!.bytes.includes(Buffer.from([0xff, 0xfe]))).toBe(true);

    // Each bad line goes in the middle, after a quarter, half, … of the valid ones.
    const lines: Buffer[] = valid.map((v) => Buffer.from(v.line));
    bad.forEach((b, i) => lines.splice(Math.floor((valid.length * (i + 1)) / (bad.length + 1)) + i, 0, b.bytes));
    const lineOf = (b: (typeof bad)[number]) => lines.indexOf(b.bytes) + 1;
    const file = join(dir, 'poisoned.ndjson');
    await writeFile(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));

    const embedded = join(dir, 'poisoned-embedded');
    const summary = JSON.parse((await lifecycle(['ingest', file, '--data-dir', embedded])).stdout);
    expect(summary.rejected).toEqual({ invalid_field: 3, malformed_json: 1 });
    const letters = await deadLetterFile(embedded);
    expect(letters.map((l) => [l.line, l.reason, l.issues.map((i) => i.path), l.raw])).toEqual(
      // The dead-letter file is UTF-8 JSON: bytes that are not UTF-8 come back as U+FFFD.
      bad.map((b) => [lineOf(b), b.reason, [b.path], b.bytes.toString('utf8')]),
    );
    const expected = await exports(['--data-dir', embedded]);

    const topic = `poison-${randomBytes(4).toString('hex')}`;
    createTopic(topic, 2);
    execFileSync('kcat', ['-P', '-b', brokers, '-t', topic, '-l', file], { timeout: 60_000 });

    const database = await createTestDatabase();
    try {
      const run = projector('poison', topic, database.url, ['--until-idle', '--chunk-size', '40']);
      expect(await run.exit).toBe(0);
      expect(await exports(['--database', database.url])).toEqual(expected);

      const dead = await readMessages(brokers, `${topic}.dlq`, bad.length);
      // latin1: one character per byte, so the values compare as bytes and still read as text.
      const received = dead.map((m) => ({
        value: m.bytes.toString('latin1'),
        reason: m.headers['lifecycle-reason'],
        paths: (JSON.parse(m.headers['lifecycle-issues']!) as { path: string }[]).map((i) => i.path),
        topic: m.headers['lifecycle-topic'],
      }));
      const wanted = bad.map((b) => ({ value: b.bytes.toString('latin1'), reason: b.reason, paths: [b.path], topic }));
      const byValue = (a: { value: string }, b: { value: string }) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0);
      expect(received.sort(byValue)).toEqual(wanted.sort(byValue));
    } finally {
      await database.drop();
    }
  }, 180_000);

  test('a touchpoint the store refuses is quarantined and the partition moves on', async () => {
    const valid = validLines(29);
    const lines = valid.map((v) => v.line);
    // Two touchpoints of two customers from the middle; not registrations, so that both
    // customers still exist without them.
    const middle = valid.slice(Math.floor(valid.length * 0.4), Math.floor(valid.length * 0.6));
    const first = middle.find((v) => v.touchpoint.customerId !== undefined && v.touchpoint.type !== 'registration')!;
    const second = middle.find(
      (v) => v.touchpoint.customerId !== undefined && v.touchpoint.type !== 'registration' && v.touchpoint.customerId !== first.touchpoint.customerId,
    )!;
    const refused = [first, second];
    const refusedIds = refused.map((v) => v.touchpoint.id);
    const env = { [STORE_REJECTS]: refusedIds.join(',') };

    const file = join(dir, 'refused.ndjson');
    await writeFile(file, lines.join('\n') + '\n');
    const without = join(dir, 'refused-without.ndjson');
    await writeFile(without, lines.filter((l) => !refused.some((r) => r.line === l)).join('\n') + '\n');
    await lifecycle(['ingest', without, '--data-dir', join(dir, 'without-embedded')]);
    const expected = await exports(['--data-dir', join(dir, 'without-embedded')]);

    // The embedded ingest finds them in its one batch, too.
    const embedded = join(dir, 'refused-embedded');
    const ingest = await promisify(execFile)(process.execPath, [cli, 'ingest', file, '--data-dir', embedded], {
      env: { ...process.env, ...env },
      maxBuffer: 64 << 20,
    });
    const summary = JSON.parse(ingest.stdout);
    expect(summary.rejected).toEqual({ store_rejected: 2 });
    expect(summary.accepted).toBe(lines.length - 2);
    const letters = await deadLetterFile(embedded);
    expect(letters.map((l) => [l.source, l.line, l.reason, l.raw, l.id])).toEqual(
      refused.map((r) => [file, lines.indexOf(r.line) + 1, 'store_rejected', r.line, r.touchpoint.id]),
    );
    for (const letter of letters) expect(letter.issues.map((i) => i.message).join()).toMatch(/division by zero.*22012/);
    expect(await exports(['--data-dir', embedded])).toEqual(expected);

    const topic = `refused-${randomBytes(4).toString('hex')}`;
    createTopic(topic, 2);
    execFileSync('kcat', ['-P', '-b', brokers, '-t', topic, '-l', file], { timeout: 60_000 });

    const database = await createTestDatabase();
    try {
      const run = projector('refused', topic, database.url, ['--until-idle', '--chunk-size', '40'], env);
      expect(await run.exit).toBe(0);

      const dead = await readMessages(brokers, `${topic}.dlq`, 2);
      expect(dead.map((m) => m.value).sort()).toEqual(refused.map((r) => r.line).sort());
      for (const message of dead) {
        expect(message.headers['lifecycle-reason']).toBe('store_rejected');
        const issues = JSON.parse(message.headers['lifecycle-issues']!) as { message: string }[];
        expect(issues.map((i) => i.message).join()).toMatch(/division by zero.*22012/);
        expect(message.headers['lifecycle-topic']).toBe(`${topic}.by-customer`);
      }

      expect(await exports(['--database', database.url])).toEqual(expected);
      const db = await openLifecycleStore({ databaseUrl: database.url });
      try {
        const recorded = new Set((await recordedTouchpoints(db)).map((t) => t.id));
        const all = new Set(valid.map((v) => v.touchpoint.id));
        expect([...recorded].sort()).toEqual([...all].filter((id) => !refusedIds.includes(id)).sort());
      } finally {
        await db.close();
      }
    } finally {
      await database.drop();
    }
  }, 180_000);
});
