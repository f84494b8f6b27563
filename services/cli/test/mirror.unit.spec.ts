import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '@lifecycle/contracts';
import { inMemoryEventStore, MIRROR_START, sqlEventStore, type EventStore, type MirrorCheckpoint, type MirrorSummary } from '@lifecycle/eventstore';
import { generateTouchpoints } from '@lifecycle/generator';
import { ingestLines, openLifecycleStore } from '@lifecycle/projection';
import { UsageError, eventStoreConnectionOf } from '../src/settings.js';

// The command logs through the CLI's logger, made when its module loads.
process.env['LOG_LEVEL'] = 'silent';
const { mirrorEventStoreCommand } = await import('../src/commands/mirror.js');

describe('lifecycle mirror-eventstore', () => {
  let dir: string;
  let dataDir: string;
  let streamIds: string[];
  let total: number;
  let lastEvent: MirrorCheckpoint;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifecycle-mirror-'));
    dataDir = join(dir, 'data');
    const db = await openLifecycleStore({ dataDir });
    try {
      const lines = [...generateTouchpoints({ customers: 30, seed: 5, months: 6 })].map((t) => JSON.stringify(t));
      await ingestLines(db, lines, { config: DEFAULT_CONFIG, batchSize: 50 });
      streamIds = (await db.query<{ stream_id: string }>('SELECT DISTINCT stream_id FROM lifecycle_events ORDER BY stream_id')).map((r) => r.stream_id);
      total = Number((await db.query<{ n: number }>('SELECT count(*) AS n FROM lifecycle_events'))[0]!.n);
      const [last] = await db.query<{ tx_id: string; position: number }>(
        'SELECT e.tx_id::text AS tx_id, e.position FROM lifecycle_events e ORDER BY e.tx_id DESC, e.position DESC LIMIT 1',
      );
      lastEvent = { txId: last!.tx_id, position: last!.position };
    } finally {
      await db.close();
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** Runs the command with stdout captured; the target is an in-memory store. */
  async function run(target: EventStore, options: { name: string; follow?: boolean }, whileRunning?: () => Promise<void>) {
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => printed.push(chunk) > 0) as typeof process.stdout.write;
    let closed = false;
    try {
      const running = mirrorEventStoreCommand(
        { location: { dataDir }, eventstore: 'esdb://admin:secret@127.0.0.1:2113?tls=false', name: options.name, follow: options.follow ?? false, batchSize: 64, pollIntervalMs: 10 },
        async () => Object.assign(Object.create(target) as EventStore, { close: async () => void (closed = true) }),
      );
      await whileRunning?.();
      const summary: MirrorSummary = await running;
      expect(closed).toBe(true);
      return { summary, printed: JSON.parse(printed.join('')) as MirrorSummary & { seconds: number } };
    } finally {
      process.stdout.write = write;
    }
  }

  async function expectMirrored(target: EventStore) {
    const db = await openLifecycleStore({ dataDir });
    try {
      expect(await target.readStreams(streamIds)).toEqual(await sqlEventStore(db).readStreams(streamIds));
    } finally {
      await db.close();
    }
  }

  test('copies every stream the projector wrote, prints a summary, and a second run finds nothing new', async () => {
    expect(total).toBeGreaterThan(100);
    const target = inMemoryEventStore();
    const { summary, printed } = await run(target, { name: 'esdb' });
    expect(summary).toEqual({ name: 'esdb', events: total, streams: streamIds.length, pages: Math.ceil(total / 64), from: MIRROR_START, checkpoint: lastEvent, waitingFor: null });
    expect(printed).toEqual({ ...summary, seconds: expect.any(Number) });
    await expectMirrored(target);
    const again = await run(target, { name: 'esdb' });
    expect(again.summary).toMatchObject({ events: 0, from: lastEvent, checkpoint: lastEvent });
  });

  test('with --follow, mirrors and keeps polling until SIGTERM, then stops cleanly', async () => {
    const target = inMemoryEventStore();
    const listeners = process.listenerCount('SIGTERM');
    const { summary } = await run(target, { name: 'follow', follow: true }, async () => {
      const deadline = Date.now() + 20_000;
      while ((await target.readStreams(streamIds)).size < streamIds.length) {
        if (Date.now() > deadline) throw new Error('the mirror did not catch up');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      process.emit('SIGTERM');
    });
    expect(summary).toMatchObject({ events: total, streams: streamIds.length });
    expect(process.listenerCount('SIGTERM')).toBe(listeners);
    await expectMirrored(target);
  });

  test('the EventStoreDB connection string is required and must be esdb://, named without its password', () => {
    const saved = process.env['LIFECYCLE_EVENTSTORE_URL'];
    delete process.env['LIFECYCLE_EVENTSTORE_URL'];
    try {
      expect(() => eventStoreConnectionOf(undefined)).toThrow(UsageError);
      expect(() => eventStoreConnectionOf(undefined)).toThrow('--eventstore / LIFECYCLE_EVENTSTORE_URL is required');
      expect(() => eventStoreConnectionOf('http://admin:pw@host:2113')).toThrow(/must be an esdb:\/\/ .* starts with "http"$/);
      expect(() => eventStoreConnectionOf('http://admin:pw@host:2113')).not.toThrow(/pw/);
      process.env['LIFECYCLE_EVENTSTORE_URL'] = 'esdb://127.0.0.1:2113?tls=false';
      expect(eventStoreConnectionOf(undefined)).toBe('esdb://127.0.0.1:2113?tls=false');
      expect(eventStoreConnectionOf('esdb+discover://cluster:2113')).toBe('esdb+discover://cluster:2113');
    } finally {
      if (saved === undefined) delete process.env['LIFECYCLE_EVENTSTORE_URL'];
      else process.env['LIFECYCLE_EVENTSTORE_URL'] = saved;
    }
  });
});
