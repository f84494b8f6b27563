import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lifecycleExit } from '../support/cli.js';
import { createTestDatabase } from '../support/postgres.js';

test('ingest --database keeps its dead letters out of ./.lifecycle: ./dead-letter.ndjson, or --dead-letters', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lifecycle-pg-ingest-'));
  const database = await createTestDatabase();
  try {
    const valid = { id: 't-1', type: 'registration', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c-1' };
    await writeFile(join(dir, 'in.ndjson'), `${JSON.stringify(valid)}\nnot json\n`);
    const result = await lifecycleExit(['ingest', 'in.ndjson', '--database', database.url], { cwd: dir });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ accepted: 1, rejected: { malformed_json: 1 }, deadLetters: join(dir, 'dead-letter.ndjson') });
    expect(await readdir(dir)).toEqual(['dead-letter.ndjson', 'in.ndjson']);
    expect(JSON.parse(await readFile(join(dir, 'dead-letter.ndjson'), 'utf8'))).toMatchObject({ line: 2, reason: 'malformed_json', raw: 'not json' });

    const chosen = join(dir, 'elsewhere', 'dlq.ndjson');
    expect((await lifecycleExit(['ingest', 'in.ndjson', '--database', database.url, '--dead-letters', chosen], { cwd: dir })).code).toBe(0);
    expect(existsSync(chosen)).toBe(true);
    expect(existsSync(join(dir, '.lifecycle'))).toBe(false);
  } finally {
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }
});
