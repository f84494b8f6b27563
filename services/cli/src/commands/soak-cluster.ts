import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKafka, topicsFor, type Topics } from '@lifecycle/kafka';
import { openPostgres, type SqlDatabase } from '@lifecycle/sql';
import type { Logger } from 'pino';
import { killProcess, runProcess, sleep, startLifecycle, stopProcess, type Exit, type Running } from './soak-process.js';

/**
 * What the soak runs and breaks: a Kafka broker of its own (so that bouncing it disturbs nobody
 * else's tests), a group of `lifecycle project` instances, the HTTP ingest service, and the
 * probes that tell when the group has caught up again.
 */

const KAFKA_SH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'infra', 'kafka', 'kafka.sh');
/** The soak's own connections, which its pg_terminate_backend faults leave alone. */
export const SOAK_APPLICATION = 'lifecycle-soak';

/** A free TCP port on 127.0.0.1 (the kernel's pick, released at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A single-node broker of the soak's own, on free ports, with its state in the soak's work directory (infra/kafka/kafka.sh). */
export class OwnBroker {
  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(stateDir: string): Promise<OwnBroker> {
    const port = await freePort();
    const controllerPort = await freePort();
    const broker = new OwnBroker(port, { KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(controllerPort), LIFECYCLE_KAFKA_STATE: stateDir });
    await broker.sh('start');
    return broker;
  }

  /** Stopped and started again on the same data: topics, committed offsets and transactions kept. */
  restart(): Promise<void> {
    return this.sh('restart');
  }

  /** Stops it and deletes its data. */
  stop(): Promise<void> {
    return this.sh('stop');
  }

  private async sh(command: string): Promise<void> {
    const run = await runProcess('bash', [KAFKA_SH, command], { env: this.env, timeoutMs: 300_000 });
    if (run.code !== 0) throw new Error(`kafka.sh ${command} failed (exit ${run.signal ?? run.code}): ${run.stderr.trim().slice(-2_000)}`);
  }
}

/** Something that exited without the soak asking it to: a finding of its own. */
export interface UnexpectedExit {
  process: string;
  at: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderrTail: string;
}

const CRASH_LINE = /test fault: SIGKILL inside (chunk|advance) transaction \d+, before its COMMIT/;

interface Instance {
  id: string;
  run: Running;
  /** The soak stops or kills it, or it dies on a test fault it was given: its exit is expected. */
  expectExit: boolean;
}

/**
 * The projector instances of one consumer group. One that exits unexpectedly is recorded and
 * started again (as a supervisor would), so that the soak goes on and says what happened.
 */
export class ProjectorGroup {
  private readonly instances = new Map<string, Instance>();
  readonly unexpected: UnexpectedExit[] = [];
  private closing = false;

  constructor(
    private readonly options: { brokers: string; topic: string; database: string; log: Logger },
  ) {}

  get ids(): string[] {
    return [...this.instances.keys()].sort();
  }

  /** The first free name of a, b, c, … */
  nextId(): string {
    for (const id of 'abcdefghijklmnop') if (!this.instances.has(id)) return id;
    throw new Error('no instance name left');
  }

  start(id: string, env: Record<string, string> = {}): Running {
    const { brokers, topic, database } = this.options;
    const run = startLifecycle(
      `projector ${id}`,
      ['project', '--brokers', brokers, '--topic', topic, '--database', database, '--instance-id', id, '--metrics-port', '0', '--chunk-size', '500'],
      { LOG_LEVEL: 'warn', PGAPPNAME: `lifecycle-projector-${id}`, ...env },
    );
    const instance: Instance = { id, run, expectExit: false };
    this.instances.set(id, instance);
    void run.exit.then((exit) => this.exited(instance, exit));
    return run;
  }

  private exited(instance: Instance, exit: Exit): void {
    if (this.instances.get(instance.id) === instance) this.instances.delete(instance.id);
    if (instance.expectExit || this.closing || CRASH_LINE.test(instance.run.stderr())) return;
    this.unexpected.push({ process: instance.run.name, at: new Date().toISOString(), code: exit.code, signal: exit.signal, stderrTail: instance.run.stderr().slice(-4_000) });
    this.options.log.error({ instance: instance.id, code: exit.code, signal: exit.signal, stderr: instance.run.stderr().slice(-2_000) }, 'soak: a projector exited unexpectedly; starting it again');
    setTimeout(() => {
      if (!this.closing && !this.instances.has(instance.id)) this.start(instance.id);
    }, 1_000);
  }

  private get(id: string): Instance {
    const instance = this.instances.get(id);
    if (!instance) throw new Error(`no projector ${id} runs`);
    return instance;
  }

  async kill(id: string): Promise<void> {
    const instance = this.get(id);
    instance.expectExit = true;
    await killProcess(instance.run);
  }

  /** SIGTERM: it commits what it consumed and leaves the group. */
  async stop(id: string): Promise<Exit> {
    const instance = this.get(id);
    instance.expectExit = true;
    return stopProcess(instance.run);
  }

  /**
   * Starts `id` to die inside its `nth` chunk transaction, after its writes and before its COMMIT
   * (LIFECYCLE_TEST_CRASH_BEFORE_COMMIT); resolves once it died there (true) or, if it did not
   * within `timeoutMs`, once it was SIGKILLed (false).
   */
  async crashInCommit(id: string, nth: number, timeoutMs: number): Promise<boolean> {
    const run = this.start(id, { LIFECYCLE_TEST_CRASH_BEFORE_COMMIT: `chunk:${nth}` });
    const instance = this.get(id);
    instance.expectExit = true;
    let timer: NodeJS.Timeout | undefined;
    const died = await Promise.race([run.exit.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))]);
    clearTimeout(timer);
    if (!died) await killProcess(run);
    return died && CRASH_LINE.test(run.stderr());
  }

  /** Stops every instance (SIGTERM), for the end of the soak. */
  async stopAll(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.instances.values()].map((i) => ((i.expectExit = true), stopProcess(i.run))));
    this.instances.clear();
  }

  async killAll(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.instances.values()].map((i) => ((i.expectExit = true), killProcess(i.run))));
    this.instances.clear();
  }
}

/** The HTTP ingest service (`lifecycle ingest-server`) on a fixed port, so that clients find it again after a restart. */
export class IngestService {
  private run: Running | undefined;
  readonly unexpected: UnexpectedExit[] = [];
  private expectExit = false;

  private constructor(
    readonly port: number,
    private readonly options: { brokers: string; topic: string; log: Logger },
  ) {}

  static async start(options: { brokers: string; topic: string; log: Logger }): Promise<IngestService> {
    const service = new IngestService(await freePort(), options);
    await service.launch();
    return service;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts it and waits until GET /health answers. */
  async launch(): Promise<void> {
    this.expectExit = false;
    const run = startLifecycle('ingest-server', ['ingest-server', '--brokers', this.options.brokers, '--topic', this.options.topic, '--port', String(this.port), '--metrics-port', '0'], { LOG_LEVEL: 'info' });
    this.run = run;
    void run.exit.then((exit) => {
      if (this.expectExit || this.run !== run) return;
      this.unexpected.push({ process: run.name, at: new Date().toISOString(), code: exit.code, signal: exit.signal, stderrTail: run.stderr().slice(-4_000) });
      this.options.log.error({ code: exit.code, signal: exit.signal, stderr: run.stderr().slice(-2_000) }, 'soak: the ingest service exited unexpectedly; starting it again');
      setTimeout(() => void this.launch(), 1_000);
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (run.exited) throw new Error(`the ingest service exited at start: ${run.stderr().slice(-2_000)}`);
      const healthy = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
      if (healthy) return;
      if (Date.now() > deadline) {
        this.expectExit = true;
        await killProcess(run);
        throw new Error(`the ingest service did not answer /health within 60 s (SIGKILLed); its stderr: ${run.stderr().slice(-2_000)}`);
      }
      await sleep(200);
    }
  }

  /** SIGKILL (a crash mid-request), then started again on the same port. */
  async killAndRestart(): Promise<void> {
    this.expectExit = true;
    if (this.run) await killProcess(this.run);
    await this.launch();
  }

  async stop(): Promise<void> {
    this.expectExit = true;
    if (this.run) await stopProcess(this.run);
  }
}

/** Offsets per partition. */
export type Offsets = Map<number, number>;

/**
 * Where the group stands, read as the projector reads its own lag (ProjectorService.consumerLag):
 * the input topic's end offsets and the repartition group's committed offsets (kafkajs admin
 * fetchTopicOffsets / fetchOffsets), the internal topic's end offsets and the offsets the
 * projectors stored with the read models (the truth; Kafka's are a hint).
 */
export class LagProbe {
  readonly topics: Topics;
  private readonly groupId: string;
  private readonly kafka;

  private constructor(
    brokers: string,
    topic: string,
    private readonly db: SqlDatabase,
    log: Logger,
  ) {
    this.topics = topicsFor(topic);
    this.groupId = `lifecycle-projector.${topic}`;
    this.kafka = createKafka({ brokers: [brokers], clientId: 'lifecycle-soak-probe', logger: log.child({ component: 'soak-probe' }, { level: 'error' }) });
  }

  static async open(brokers: string, topic: string, database: string, log: Logger): Promise<LagProbe> {
    const url = new URL(database);
    url.searchParams.set('application_name', SOAK_APPLICATION);
    return new LagProbe(brokers, topic, await openPostgres(url.toString()), log);
  }

  get database(): SqlDatabase {
    return this.db;
  }

  private async admin<T>(work: (admin: ReturnType<typeof this.kafka.admin>) => Promise<T>): Promise<T> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      return await work(admin);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  async endOffsets(topic: string): Promise<Offsets> {
    return this.admin(async (admin) => new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)])));
  }

  async repartitionCommitted(): Promise<Offsets> {
    return this.admin(async (admin) => {
      const [committed] = await admin.fetchOffsets({ groupId: `${this.groupId}.repartition`, topics: [this.topics.input] });
      return new Map((committed?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]));
    });
  }

  async stored(): Promise<Offsets> {
    const rows = await this.db
      .query<{ partition: number; next_offset: string }>('SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2', [this.groupId, this.topics.byCustomer])
      .catch(() => []); // no table before the first projector migrated the database
    return new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
  }

  /** The claims taken so far (each assignment of a partition to an instance bumps its epoch). */
  async claims(): Promise<number> {
    const rows = await this.db
      .query<{ n: string | null }>('SELECT sum(epoch) AS n FROM consumer_offsets WHERE group_id = $1 AND topic = $2', [this.groupId, this.topics.byCustomer])
      .catch(() => [{ n: null }]);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Waits until the group has consumed and committed everything the input topic held at `inputEnd`:
   * the repartition group's committed offsets reach it, then the stored offsets reach the end of
   * the internal topic as it was then (its last record is a transaction marker no consumer sees).
   * Probes that fail (the broker or PostgreSQL away) are tried again. Resolves with the milliseconds
   * it waited; rejects with where it stood after `timeoutMs`.
   */
  async caughtUpWith(inputEnd: Offsets, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'nothing probed yet';
    const retrying = async <T>(probe: () => Promise<T>): Promise<T> => {
      for (;;) {
        try {
          return await probe();
        } catch (error) {
          last = `probe failed: ${(error as Error).message}`;
          if (Date.now() > deadline) throw new Error(`not caught up within ${timeoutMs / 1000} s: ${last}`);
          await sleep(500);
        }
      }
    };
    for (;;) {
      const committed = await retrying(() => this.repartitionCommitted());
      const behind = [...inputEnd].filter(([p, end]) => (committed.get(p) ?? 0) < end);
      if (behind.length === 0) break;
      last = `repartition group behind on ${this.topics.input}: ${behind.map(([p, end]) => `p${p} ${committed.get(p) ?? 0}/${end}`).join(', ')}`;
      if (Date.now() > deadline) throw new Error(`not caught up within ${timeoutMs / 1000} s: ${last}`);
      await sleep(200);
    }
    const internalEnd = await retrying(() => this.endOffsets(this.topics.byCustomer));
    for (;;) {
      const stored = await retrying(() => this.stored());
      const behind = [...internalEnd].filter(([p, end]) => end > 0 && (stored.get(p) ?? 0) < end - 1);
      if (behind.length === 0) return;
      last = `projectors behind on ${this.topics.byCustomer}: ${behind.map(([p, end]) => `p${p} ${stored.get(p) ?? 0}/${end - 1}`).join(', ')}`;
      if (Date.now() > deadline) throw new Error(`not caught up within ${timeoutMs / 1000} s: ${last}`);
      await sleep(200);
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
