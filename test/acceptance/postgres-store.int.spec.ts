import { parseLifecycleConfig } from '@lifecycle/contracts';
import { generateTouchpoints, withDeliveryNoise } from '@lifecycle/generator';
import { exportProjection, ingestLines, openLifecycleStore, replay } from '@lifecycle/projection';
import { createTestDatabase } from '../support/postgres.js';

const ndjson = (rows: readonly object[]) => rows.map((r) => JSON.stringify(r)).join('\n');

describe('the PostgreSQL store projects exactly what the embedded one does', () => {
  const lines = [...withDeliveryNoise(generateTouchpoints({ customers: 200, seed: 21, months: 10 }), { seed: 21, duplicateRate: 0.05, invalidRate: 0.02, lateRate: 0.05 })];
  const config = parseLifecycleConfig({ cohort: { granularity: 'week', timeZone: 'Europe/Berlin' } });

  test('same export, and replay reproduces it', async () => {
    const embedded = await openLifecycleStore({ dataDir: undefined as unknown as string });
    await ingestLines(embedded, lines, { config, batchSize: 300 });
    const expected = await exportProjection(embedded, config);
    await embedded.close();

    const database = await createTestDatabase();
    const postgres = await openLifecycleStore({ databaseUrl: database.url });
    try {
      await ingestLines(postgres, lines.slice(500), { config, batchSize: 250 });
      await ingestLines(postgres, lines.slice(0, 500), { config, batchSize: 250 });
      const actual = await exportProjection(postgres, config);
      expect(ndjson(actual.customers)).toBe(ndjson(expected.customers));
      expect(ndjson(actual.cohorts)).toBe(ndjson(expected.cohorts));
      await replay(postgres, config);
      expect(ndjson((await exportProjection(postgres, config)).customers)).toBe(ndjson(expected.customers));
    } finally {
      await postgres.close();
      await database.drop();
    }
  });
});
