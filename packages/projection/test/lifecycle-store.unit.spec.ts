import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLifecycleStore } from '@lifecycle/projection';
import type { SqlDatabase } from '@lifecycle/sql';

const sharedBuffers = async (db: SqlDatabase) => (await db.query<{ shared_buffers: string }>('SHOW shared_buffers'))[0]!.shared_buffers;

describe('opening the embedded store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-store-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('to be read once, with a small page cache; otherwise with PGlite’s own', async () => {
    const once = await openLifecycleStore({ dataDir: dir }, { readOnce: true });
    try {
      expect(await sharedBuffers(once)).toBe('32MB');
      await once.query("INSERT INTO projection_state (key, value) VALUES ('probe', '1')");
    } finally {
      await once.close();
    }
    const working = await openLifecycleStore({ dataDir: dir });
    try {
      expect(await sharedBuffers(working)).toBe('128MB');
      expect(await working.query("SELECT value FROM projection_state WHERE key = 'probe'")).toEqual([{ value: 1 }]);
    } finally {
      await working.close();
    }
  });
});
