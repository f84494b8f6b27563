import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { createTestDatabase } from '../support/postgres.js';
import { createTopic, ensureBroker } from '../support/kafka.js';
import { lifecycle } from '../support/cli.js';
import { deadLetterEntries, expectedDeadLetters, killProjectors, noiseFaultReason, projector, readMessages, readTopic } from '../support/distributed.js';
import { requireBinaries } from '../support/binaries.js';

// A producer that is not ours: kcat (Debian package, installed by .ci/run) sends one JSON line
// per message with no key, so nothing is partitioned by customer and invalid lines reach the
// topic. The repartition stage must validate, dead-letter and re-key them.
const kcat = requireBinaries('foreign-producer', { kcat: ['-V'] }, 'kcat');

(kcat.run ? describe : describe.skip)('touchpoints produced by kcat, unkeyed', () => {
  let brokers: string;
  let dir: string;
  beforeAll(async () => {
    brokers = ensureBroker();
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-kcat-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('are projected exactly as the embedded ingest of the same file; invalid lines go to the DLQ', async () => {
    const lines = [...withDeliveryNoise(generateTouchpoints({ customers: 150, seed: 7, months: 6 }), { seed: 7, duplicateRate: 0.05, invalidRate: 0.02, lateRate: 0.05 })]
      // kcat -l drops empty lines, as a line-oriented producer would; they are not touchpoints.
      .filter((line) => line.trim() !== '');
    const file = join(dir, 'touchpoints.ndjson');
    await writeFile(file, lines.join('\n') + '\n');
    const invalid = lines.filter((line) => noiseFaultReason(line) !== undefined);
    const valid = lines.filter((line) => noiseFaultReason(line) === undefined);
    expect(invalid.length).toBeGreaterThan(3);

    await lifecycle(['ingest', file, '--data-dir', join(dir, 'embedded')]);
    const expected = (await lifecycle(['export', 'customers', '--data-dir', join(dir, 'embedded')])).stdout;

    const topic = `kcat-${randomBytes(4).toString('hex')}`;
    createTopic(topic, 3);
    execFileSync('kcat', ['-P', '-b', brokers, '-t', topic, '-l', file], { timeout: 60_000 });

    const database = await createTestDatabase();
    try {
      const run = projector('kcat', topic, database.url);
      expect(await run.exit).toBe(0);
      expect((await lifecycle(['export', 'customers', '--database', database.url])).stdout).toBe(expected);
      // Each invalid line exactly once, with the reason its fault calls for.
      const dead = await readMessages(brokers, `${topic}.dlq`, invalid.length);
      expect(deadLetterEntries(dead)).toEqual(expectedDeadLetters(invalid, noiseFaultReason));
      // Each valid line re-keyed exactly once.
      const repartitioned = await readTopic(brokers, `${topic}.by-customer`, valid.length);
      expect(repartitioned.sort()).toEqual([...valid].sort());
    } finally {
      await killProjectors();
      await database.drop();
    }
  }, 180_000);
});
