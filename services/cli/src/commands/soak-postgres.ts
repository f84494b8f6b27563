import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './soak-cluster.js';
import { runProcess } from './soak-process.js';

/**
 * A PostgreSQL server of the soak's own (initdb in a temporary directory, pg_ctl on a free
 * port), for the fault that restarts the server itself: restarting the shared server
 * (`pg_ctlcluster … main restart`) would cut every other test and engineer using it, this one
 * nobody else knows. Same binaries, same version as the machine's cluster.
 */
export class OwnPostgres {
  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** The URL of its `postgres` database (trust authentication on 127.0.0.1 only). */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async start(): Promise<OwnPostgres> {
    const bin = await binaries();
    // initdb and the server refuse to run as root: as root they run as the postgres user, in a
    // directory it owns.
    const dir = await mkdtemp(join(tmpdir(), 'lifecycle-soak-pg-'));
    if (process.getuid?.() === 0) await chown(dir, ...(await postgresIds()));
    const server = new OwnPostgres(bin, dir, await freePort());
    await server.pg('initdb', ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
    await server.ctl('start');
    return server;
  }

  /** A restart as `pg_ctlcluster … restart` does it (fast: active transactions are rolled back, connections cut). */
  restart(): Promise<void> {
    return this.ctl('restart');
  }

  async stop(): Promise<void> {
    await this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', 'stop']).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }

  private ctl(action: 'start' | 'restart'): Promise<void> {
    // fsync off: a test server, and a restart is a clean shutdown (nothing is lost without fsync unless the machine crashes).
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    return this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-o', options, '-l', join(this.dir, 'server.log'), '-m', 'fast', '-w', '-t', '120', action]);
  }

  private async pg(program: string, args: string[]): Promise<void> {
    const command = join(this.bin, program);
    const run = process.getuid?.() === 0 ? await runProcess('runuser', ['-u', 'postgres', '--', command, ...args], { timeoutMs: 180_000 }) : await runProcess(command, args, { timeoutMs: 180_000 });
    if (run.code !== 0) throw new Error(`${program} ${args.at(-1)} failed (exit ${run.signal ?? run.code}): ${run.stderr.trim().slice(-1_500)}`);
  }
}

/** The server binaries: LIFECYCLE_POSTGRES_BIN, else Debian's /usr/lib/postgresql/<newest>/bin. */
async function binaries(): Promise<string> {
  const configured = process.env['LIFECYCLE_POSTGRES_BIN'];
  if (configured) return configured;
  const versions = await readdir('/usr/lib/postgresql').catch(() => []);
  const newest = versions.map(Number).filter(Number.isFinite).sort((a, b) => b - a)[0];
  if (newest === undefined) throw new Error('no PostgreSQL server binaries in /usr/lib/postgresql: set LIFECYCLE_POSTGRES_BIN to the directory of initdb and pg_ctl');
  return `/usr/lib/postgresql/${newest}/bin`;
}

async function postgresIds(): Promise<[number, number]> {
  const run = await runProcess('id', ['-u', 'postgres']);
  const group = await runProcess('id', ['-g', 'postgres']);
  if (run.code !== 0 || group.code !== 0) throw new Error('running as root, the soak runs its PostgreSQL server as the user postgres, which does not exist here');
  return [Number(run.stdout.trim()), Number(group.stdout.trim())];
}
