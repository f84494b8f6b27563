import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { parse } from 'yaml';
import { cli } from '../support/cli.js';
import { requireBinaries } from '../support/binaries.js';

// docker-compose.yml, the Dockerfile, the Prometheus configuration for compose and the Grafana
// provisioning and dashboard, checked without Docker (which cannot run where the tests run): every
// file the compose file builds from or mounts exists, the ports do not collide, the services run
// real `lifecycle` subcommands with real options and listen where Prometheus scrapes them, and the
// dashboard only queries metrics that packages/observability defines or the rules record.
// promtool comes from Debian's `prometheus` package (`.ci/run` installs it): in CI its absence is a
// failure, elsewhere the promtool check says it skipped.

const root = join(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
// Compose merges `<<: *anchor` keys (YAML 1.1 merge keys), so the parse must too.
const readYaml = (path: string): unknown => parse(read(path), { merge: true });

// ---------------------------------------------------------------------------------------------
// Shapes (checked at run time where the test relies on them)

type Json = Record<string, unknown>;

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  ports?: (string | number | { target?: number; published?: string | number; protocol?: string })[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  environment?: Record<string, string | number | boolean | null> | string[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
}

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function record(value: unknown, what: string): Json {
  if (!isRecord(value)) throw new Error(`${what} is not a mapping: ${JSON.stringify(value)}`);
  return value;
}

const compose = record(readYaml('docker-compose.yml'), 'docker-compose.yml');
const services = record(compose['services'], 'services') as Record<string, Service>;
const serviceNames = Object.keys(services);
const namedVolumes = new Set(Object.keys(isRecord(compose['volumes']) ? compose['volumes'] : {}));
const builtServices = serviceNames.filter((name) => services[name]?.build !== undefined);

function service(name: string): Service {
  const found = services[name];
  if (found === undefined) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function commandOf(name: string): string[] {
  const command = service(name).command;
  if (command === undefined) return [];
  // The services use the list form; a string would be split by compose like a shell would.
  return Array.isArray(command) ? command.map(String) : command.trim().split(/\s+/);
}

/** The value of `--flag value` or `--flag=value` in a command, if present. */
function optionOf(command: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < command.length; i++) {
    const arg = command[i]!;
    if (arg === flag) return command[i + 1];
    if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1);
  }
  return undefined;
}

function environmentOf(name: string): Record<string, string> {
  const env = service(name).environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry) => [entry.split('=')[0]!, entry.slice(entry.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]));
}

interface Mount {
  type: 'bind' | 'volume';
  source: string;
  target: string;
}

/** Short (`src:target[:mode]`) and long (`{type, source, target}`) volume syntax. */
function mountsOf(name: string): Mount[] {
  return (service(name).volumes ?? []).map((volume) => {
    if (typeof volume === 'string') {
      const [source = '', target = ''] = volume.split(':');
      const type = /^[./~]/.test(source) ? 'bind' : 'volume';
      return { type, source, target };
    }
    const type = volume.type === 'bind' ? 'bind' : 'volume';
    return { type, source: volume.source ?? '', target: volume.target ?? '' };
  });
}

const bindSourcePath = (source: string) => join(root, source);

/** The repository path a container path of a service comes from, through its bind mounts. */
function hostPathOf(name: string, containerPath: string): string | undefined {
  const mounts = mountsOf(name)
    .filter((m) => m.type === 'bind' && (containerPath === m.target || containerPath.startsWith(`${m.target}/`)))
    .sort((a, b) => b.target.length - a.target.length);
  const mount = mounts[0];
  if (mount === undefined) return undefined;
  return join(bindSourcePath(mount.source), posix.relative(mount.target, containerPath));
}

interface Published {
  hostPorts: number[];
  containerPorts: number[];
  protocol: string;
}

const range = (text: string): number[] => {
  const [from, to = from] = text.split('-').map(Number);
  if (!Number.isInteger(from) || !Number.isInteger(to)) throw new Error(`not a port or port range: ${text}`);
  return Array.from({ length: to! - from! + 1 }, (_, i) => from! + i);
};

/** Short syntax `[ip:]host:container[/proto]` or `container`, and long syntax. */
function publishedPorts(name: string): Published[] {
  return (service(name).ports ?? []).map((port) => {
    if (typeof port === 'object') {
      return { hostPorts: port.published === undefined ? [] : range(String(port.published)), containerPorts: port.target === undefined ? [] : [port.target], protocol: port.protocol ?? 'tcp' };
    }
    const [spec = '', protocol = 'tcp'] = String(port).split('/');
    const parts = spec.split(':');
    const container = parts.at(-1)!;
    const host = parts.length >= 2 ? parts.at(-2)! : '';
    return { hostPorts: host === '' ? [] : range(host), containerPorts: range(container), protocol };
  });
}

/** The ports a service built from the Dockerfile listens on, from its `lifecycle` command. */
function listeningPorts(name: string): number[] {
  const command = commandOf(name);
  return ['--port', '--metrics-port'].map((flag) => optionOf(command, flag)).filter((v): v is string => v !== undefined).map(Number);
}

const dependenciesOf = (name: string): [string, string][] => {
  const deps = service(name).depends_on;
  if (deps === undefined) return [];
  if (Array.isArray(deps)) return deps.map((dep) => [dep, 'service_started']);
  return Object.entries(deps).map(([dep, spec]) => [dep, spec.condition ?? 'service_started']);
};

// ---------------------------------------------------------------------------------------------
// PromQL: the metric names an expression reads

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'atan2', 'inf', 'nan']);

/**
 * Metric (or recorded series) names in a PromQL expression: identifiers left once strings, label
 * matchers, ranges and `by (...)`-like label lists are removed, that are neither a function or
 * aggregation (followed by `(`) nor a keyword. Grafana variables (`$__rate_interval`) are inside
 * ranges or start with `$`.
 */
function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w:$.])[A-Za-z_:][\w:]*/g)) {
    const rest = stripped.slice(match.index + match[0].length);
    if (/^\s*\(/.test(rest) || PROMQL_KEYWORDS.has(match[0].toLowerCase())) continue;
    names.add(match[0]);
  }
  return [...names];
}

/** Metric names defined in packages/observability/src/metrics.ts, with the series a histogram adds. */
function definedMetrics(): Set<string> {
  const source = read('packages/observability/src/metrics.ts');
  const names = new Set<string>();
  for (const [, kind, name] of source.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*'([a-z_:][a-z0-9_:]*)'/g)) {
    names.add(name!);
    if (kind === 'Histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (kind === 'Summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** Series recorded by infra/prometheus/rules/*.rules.yml. */
function recordedSeries(): Set<string> {
  const dir = 'infra/prometheus/rules';
  const names = new Set<string>();
  for (const file of readdirSync(join(root, dir)).filter((f) => f.endsWith('.rules.yml'))) {
    const rules = record(readYaml(`${dir}/${file}`), file);
    for (const group of (rules['groups'] as { rules?: { record?: string }[] }[] | undefined) ?? []) {
      for (const rule of group.rules ?? []) if (rule.record !== undefined) names.add(rule.record);
    }
  }
  return names;
}

// Series that Prometheus itself adds to every target.
const PROMETHEUS_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

// ---------------------------------------------------------------------------------------------
// Grafana

const provisioning = 'infra/grafana/provisioning';
const yamlFilesIn = (dir: string) => readdirSync(join(root, dir)).filter((f) => /\.ya?ml$/.test(f)).map((f) => `${dir}/${f}`);

function provisionedDatasources(): Json[] {
  return yamlFilesIn(`${provisioning}/datasources`).flatMap((file) => (record(readYaml(file), file)['datasources'] as Json[] | undefined) ?? []);
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: unknown;
  targets?: { datasource?: unknown; expr?: string; refId?: string }[];
  panels?: Panel[];
  options?: { content?: string };
}

const dashboardFile = 'infra/grafana/dashboards/lifecycle.json';
const dashboard = (): Json & { panels: Panel[] } => {
  const parsed = record(JSON.parse(read(dashboardFile)), dashboardFile);
  if (!Array.isArray(parsed['panels'])) throw new Error(`${dashboardFile} has no panels array`);
  return parsed as Json & { panels: Panel[] };
};
/** Panels, including those folded inside rows. */
const allPanels = (panels: readonly Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
const exprsOf = (panels: readonly Panel[]) => panels.flatMap((p) => (p.targets ?? []).flatMap((t) => (t.expr === undefined ? [] : [t.expr])));

// ---------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  test('parses, with the services the distributed mode needs', () => {
    expect(serviceNames).toEqual(expect.arrayContaining(['kafka', 'eventstore', 'postgres', 'projector', 'ingest', 'api', 'prometheus', 'grafana']));
    // A merge key that was not merged would leave a literal `<<` (and no build) behind.
    for (const name of serviceNames) expect(Object.keys(service(name))).not.toContain('<<');
    expect(builtServices.sort()).toEqual(['api', 'ingest', 'projector']);
  });

  test.each(serviceNames)('%s has a pinned image, or a build whose context and Dockerfile exist', (name) => {
    const { image, build } = service(name);
    if (build === undefined) {
      expect(image).toMatch(/^[\w./-]+:[\w.-]+$/);
      expect(image).not.toMatch(/:latest$/);
      return;
    }
    const context = typeof build === 'string' ? build : (build.context ?? '.');
    const dockerfile = typeof build === 'string' ? 'Dockerfile' : (build.dockerfile ?? 'Dockerfile');
    expect(statSync(join(root, context)).isDirectory()).toBe(true);
    expect(statSync(join(root, context, dockerfile)).isFile()).toBe(true);
  });

  test('Kafka is a 3.x broker: kafkajs 2.2.4 was never tested against Kafka 4', () => {
    expect(service('kafka').image).toMatch(/^apache\/kafka:3\.\d+\.\d+$/);
    const env = environmentOf('kafka');
    expect(env['KAFKA_PROCESS_ROLES']?.split(',').sort()).toEqual(['broker', 'controller']);
    expect(env['KAFKA_AUTO_CREATE_TOPICS_ENABLE']).toBe('false');
    for (const key of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR']) {
      expect(env[key]).toBe('1');
    }
  });

  test('every bind-mounted host path exists; every named volume is declared', () => {
    const mounts = serviceNames.flatMap((name) => mountsOf(name).map((mount) => ({ name, ...mount })));
    expect(mounts.filter((m) => m.type === 'bind').length).toBeGreaterThan(0);
    for (const mount of mounts) {
      expect(mount.target).toMatch(/^\//);
      if (mount.type === 'bind') {
        expect({ service: mount.name, source: mount.source, exists: existsSync(bindSourcePath(mount.source)) }).toEqual({ service: mount.name, source: mount.source, exists: true });
      } else {
        expect({ service: mount.name, volume: mount.source, declared: namedVolumes.has(mount.source) }).toEqual({ service: mount.name, volume: mount.source, declared: true });
      }
    }
  });

  test('no host port is published twice', () => {
    const seen = new Map<string, string>();
    for (const name of serviceNames) {
      for (const { hostPorts, protocol } of publishedPorts(name)) {
        for (const port of hostPorts) {
          const key = `${port}/${protocol}`;
          expect({ port: key, publishedBy: [seen.get(key), name].filter(Boolean) }).toEqual({ port: key, publishedBy: [name] });
          seen.set(key, name);
        }
      }
    }
    expect(seen.size).toBeGreaterThan(0);
  });

  test('depends_on names existing services; service_healthy ones have a healthcheck', () => {
    for (const name of serviceNames) {
      for (const [dependency, condition] of dependenciesOf(name)) {
        expect({ service: name, dependsOn: dependency, exists: serviceNames.includes(dependency) }).toEqual({ service: name, dependsOn: dependency, exists: true });
        if (condition === 'service_healthy') {
          expect({ dependsOn: dependency, healthcheck: services[dependency]?.healthcheck?.test !== undefined }).toEqual({ dependsOn: dependency, healthcheck: true });
        }
      }
    }
  });

  describe.each(builtServices)('%s (built from the Dockerfile)', (name) => {
    test('runs a real `lifecycle` subcommand with options it has', () => {
      if (!existsSync(cli)) throw new Error(`${cli} is missing: build the workspace first (npm run build)`);
      const [subcommand, ...args] = commandOf(name);
      expect(subcommand).toMatch(/^[a-z][a-z-]*$/);
      // Exits with 0 for a known subcommand; commander exits with 1 ("unknown command") otherwise.
      const help = execFileSync(process.execPath, [cli, subcommand!, '--help'], { encoding: 'utf8', timeout: 60_000 });
      expect(help).toContain(`Usage: lifecycle ${subcommand}`);
      for (const flag of args.filter((arg) => arg.startsWith('--')).map((arg) => arg.split('=')[0]!)) {
        expect({ subcommand, flag, known: new RegExp(`(^|\\s)${flag}[ ,=]`, 'm').test(help) }).toEqual({ subcommand, flag, known: true });
      }
    });

    test('listens on every interface, on the ports it publishes', () => {
      // The CLI's servers bind 127.0.0.1 by default: unreachable from Prometheus and the host.
      expect(optionOf(commandOf(name), '--host')).toBe('0.0.0.0');
      expect(optionOf(commandOf(name), '--metrics-port')).toMatch(/^\d+$/);
      const listening = listeningPorts(name);
      for (const { containerPorts } of publishedPorts(name)) {
        for (const port of containerPorts) expect({ service: name, port, listening: listening.includes(port) }).toEqual({ service: name, port, listening: true });
      }
    });

    test('serves data without keys only on the host\'s loopback (SPEC §9)', () => {
      const command = commandOf(name);
      // `project` serves only /health and /metrics, which stay open.
      if (!['serve', 'ingest-server', 'start'].includes(command[0]!)) return;
      const withoutKeys = command.includes('--insecure-no-auth');
      expect({ service: name, keysOrInsecure: withoutKeys || optionOf(command, '--auth-keys') !== undefined }).toEqual({ service: name, keysOrInsecure: true });
      if (!withoutKeys) return;
      for (const port of service(name).ports ?? []) {
        const loopback = typeof port === 'object' ? (port as { host_ip?: string }).host_ip === '127.0.0.1' : String(port).startsWith('127.0.0.1:');
        expect({ service: name, port, loopback }).toEqual({ service: name, port, loopback: true });
      }
    });

    test('reaches Kafka and PostgreSQL through compose services', () => {
      const env = environmentOf(name);
      const kafkaListeners = environmentOf('kafka')['KAFKA_LISTENERS'] ?? '';
      for (const broker of (env['LIFECYCLE_KAFKA_BROKERS'] ?? '').split(',')) {
        const [host, port] = broker.split(':');
        expect(host).toBe('kafka');
        expect(kafkaListeners).toMatch(new RegExp(`://[^,]*:${port}(,|$)`));
      }
      const database = new URL(env['LIFECYCLE_DATABASE_URL'] ?? '');
      const postgres = environmentOf(database.hostname);
      expect(database.protocol).toBe('postgres:');
      expect(service(database.hostname).image).toMatch(/^postgres:/);
      expect([database.username, database.password, database.pathname.slice(1)]).toEqual([postgres['POSTGRES_USER'], postgres['POSTGRES_PASSWORD'], postgres['POSTGRES_DB']]);
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const ignored = read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  test('starts the CLI: compose commands are `lifecycle` subcommands', () => {
    const entrypoints = [...dockerfile.matchAll(/^ENTRYPOINT\s+(.+)$/gm)].map((m) => JSON.parse(m[1]!) as unknown);
    expect(entrypoints.at(-1)).toEqual(['node', 'services/cli/dist/main.js']);
    expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim AS build$/m);
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
  });

  test('copies sources that exist and that .dockerignore does not exclude', () => {
    const sources = [...dockerfile.matchAll(/^COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'packages', 'services', 'patches']));
    // patch-package patches the dependencies in npm ci: the patches are in the image before it.
    expect(dockerfile.indexOf('COPY patches')).toBeLessThan(dockerfile.search(/^RUN npm ci\b/m));
    for (const source of sources) {
      expect({ source, exists: existsSync(join(root, source)) }).toEqual({ source, exists: true });
      expect({ source, ignored: ignored.includes(source) }).toEqual({ source, ignored: false });
    }
    // What the image builds and installs itself stays out of the build context.
    for (const pattern of ['**/node_modules', '**/dist', '.lifecycle', '.git', '**/.turbo']) expect(ignored).toContain(pattern);
  });
});

describe('Prometheus in compose', () => {
  const config = record(readYaml('infra/prometheus/prometheus.compose.yml'), 'prometheus.compose.yml');
  const local = record(readYaml('infra/prometheus/prometheus.yml'), 'prometheus.yml');
  type ScrapeConfig = { job_name: string; static_configs?: { targets?: string[] }[] };
  const jobs = (c: Json) => (c['scrape_configs'] as ScrapeConfig[]).map((job) => ({ job: job.job_name, targets: (job.static_configs ?? []).flatMap((s) => s.targets ?? []) }));
  const prometheusCommand = commandOf('prometheus');
  const configPath = optionOf(prometheusCommand, '--config.file') ?? '/etc/prometheus/prometheus.yml';
  const ruleFiles = (config['rule_files'] as string[] | undefined) ?? [];

  test('has the same jobs, scraping the same ports, as prometheus.yml', () => {
    const composeJobs = jobs(config);
    const localJobs = jobs(local);
    expect(composeJobs.map((j) => j.job)).toEqual(localJobs.map((j) => j.job));
    const ports = (list: typeof composeJobs) => list.map((j) => ({ job: j.job, ports: j.targets.map((t) => t.split(':')[1]) }));
    expect(ports(composeJobs)).toEqual(ports(localJobs));
  });

  test('every target is a compose service listening on that port', () => {
    for (const { job, targets } of jobs(config)) {
      for (const target of targets) {
        const [host = '', port = ''] = target.split(':');
        expect({ job, host, isService: serviceNames.includes(host) }).toEqual({ job, host, isService: true });
        const listening = builtServices.includes(host) ? [Number(optionOf(commandOf(host), '--metrics-port'))] : publishedPorts(host).flatMap((p) => p.containerPorts);
        expect({ job, target, listening: listening.includes(Number(port)) }).toEqual({ job, target, listening: true });
      }
    }
  });

  test('is the file mounted as the server configuration, with the rules where rule_files reads them', () => {
    expect(hostPathOf('prometheus', configPath)).toBe(join(root, 'infra/prometheus/prometheus.compose.yml'));
    expect(ruleFiles.length).toBeGreaterThan(0);
    for (const pattern of ruleFiles) {
      expect(pattern).toMatch(/^\//);
      const hostDir = hostPathOf('prometheus', posix.dirname(pattern));
      expect(hostDir).toBe(join(root, 'infra/prometheus/rules'));
      const glob = new RegExp(`^${posix.basename(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
      expect(readdirSync(hostDir!).filter((file) => glob.test(file)).length).toBeGreaterThan(0);
    }
  });

  const promtool = requireBinaries('docker-compose (`promtool check config` of prometheus.compose.yml)', { promtool: ['--version'] }, 'prometheus');
  (promtool.run ? test : test.skip)('promtool checks the config, with its rule files read from the repository', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prometheus-compose-'));
    try {
      // The same file, with each container rules path replaced by the repository directory mounted there.
      const rewritten = { ...config, rule_files: ruleFiles.map((pattern) => join(hostPathOf('prometheus', posix.dirname(pattern))!, posix.basename(pattern))) };
      const file = join(dir, 'prometheus.yml');
      writeFileSync(file, JSON.stringify(rewritten, null, 2)); // JSON is YAML
      const run = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8', timeout: 60_000 });
      const output = `${run.stdout}\n${run.stderr}`;
      if (run.status !== 0) throw new Error(`promtool check config exited with ${run.status}:\n${output}`);
      expect(output).toContain('SUCCESS');
      // The rules were found and checked, not silently matched by an empty glob.
      expect(output).toMatch(/lifecycle\.rules\.yml/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Grafana provisioning and the lifecycle dashboard', () => {
  const datasources = provisionedDatasources();
  const prometheusSource = datasources.find((d) => d['type'] === 'prometheus');
  const providers = yamlFilesIn(`${provisioning}/dashboards`).flatMap((file) => (record(readYaml(file), file)['providers'] as { options?: { path?: string } }[] | undefined) ?? []);

  test('provisions a Prometheus data source with a fixed uid, at the compose Prometheus', () => {
    expect(prometheusSource?.['uid']).toMatch(/^[\w-]{1,40}$/);
    const url = new URL(String(prometheusSource?.['url']));
    expect(service(url.hostname).image).toMatch(/^prom\/prometheus:v2\./);
    expect(publishedPorts(url.hostname).flatMap((p) => p.containerPorts)).toContain(Number(url.port));
    expect(hostPathOf('grafana', '/etc/grafana/provisioning')).toBe(join(root, provisioning));
  });

  test('the dashboard provider reads the mounted dashboards directory, and the home dashboard is in it', () => {
    expect(providers.length).toBeGreaterThan(0);
    for (const provider of providers) expect(hostPathOf('grafana', provider.options?.path ?? '')).toBe(join(root, 'infra/grafana/dashboards'));
    const home = environmentOf('grafana')['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'];
    if (home !== undefined) expect(hostPathOf('grafana', home)).toBe(join(root, dashboardFile));
    expect(environmentOf('grafana')).toMatchObject({ GF_AUTH_ANONYMOUS_ENABLED: 'true', GF_AUTH_ANONYMOUS_ORG_ROLE: 'Viewer' });
  });

  test('the dashboard has a fixed uid and unique panel ids', () => {
    const board = dashboard();
    expect(board['uid']).toMatch(/^[\w-]{1,40}$/);
    expect(board['schemaVersion']).toEqual(expect.any(Number));
    const ids = allPanels(board.panels).map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('every query panel and target uses the provisioned data source uid', () => {
    const uid = prometheusSource?.['uid'];
    const queried = allPanels(dashboard().panels).filter((p) => p.type !== 'text' && p.type !== 'row');
    expect(queried.length).toBeGreaterThan(0);
    for (const panel of queried) {
      expect({ panel: panel.title, uid: (panel.datasource as Json | undefined)?.['uid'] }).toEqual({ panel: panel.title, uid });
      expect(panel.targets?.length).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect({ panel: panel.title, refId: target.refId, uid: (target.datasource as Json | undefined)?.['uid'] }).toEqual({ panel: panel.title, refId: target.refId, uid });
      }
    }
  });

  test('the PromQL name extraction finds metrics and skips functions, labels and variables', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le) (rate(lifecycle_batch_duration_seconds_bucket{service="projector"}[$__rate_interval])))')).toEqual(['lifecycle_batch_duration_seconds_bucket']);
    expect(metricNamesIn('sum(x_total) without (instance) / on() group_left y:z:rate5m offset 1h > bool 0')).toEqual(['x_total', 'y:z:rate5m']);
    expect(metricNamesIn('up{job=~"a|b"} or vector(1e3)')).toEqual(['up']);
  });

  test('the dashboard queries only metrics that metrics.ts defines or the rules record', () => {
    const defined = definedMetrics();
    const recorded = recordedSeries();
    // The extraction read the file (a changed definition style would otherwise allow nothing).
    expect([...defined]).toEqual(expect.arrayContaining(['lifecycle_touchpoints_total', 'lifecycle_batch_duration_seconds_bucket', 'lifecycle_customers']));
    expect(recorded.has('reason:lifecycle_churned_customers:increase1h')).toBe(true);
    const exprs = exprsOf(allPanels(dashboard().panels));
    expect(exprs.length).toBeGreaterThan(0);
    for (const expr of exprs) {
      for (const name of metricNamesIn(expr)) {
        const known = defined.has(name) || recorded.has(name) || PROMETHEUS_SERIES.has(name);
        expect({ expr, name, known }).toEqual({ expr, name, known: true });
      }
    }
  });

  test('the dashboard covers the SPEC §8 metrics', () => {
    const used = new Set(exprsOf(allPanels(dashboard().panels)).flatMap(metricNamesIn));
    for (const name of [
      'lifecycle_customers',
      'lifecycle_churn_rate',
      'reason:lifecycle_churned_customers:increase1h',
      'lifecycle_stage_transitions_total',
      'lifecycle_touchpoints_total',
      'lifecycle_touchpoints_rejected_total',
      'lifecycle_consumer_lag_messages',
      'lifecycle_batch_duration_seconds_bucket',
    ]) {
      expect({ name, used: used.has(name) }).toEqual({ name, used: true });
    }
  });

  test('cohort retention, which no metric exports, is a text panel pointing at GET /cohorts', () => {
    // If a cohort metric is ever added to metrics.ts, this panel should become a query panel.
    expect([...definedMetrics()].filter((name) => name.includes('cohort'))).toEqual([]);
    const cohort = allPanels(dashboard().panels).find((p) => /cohort/i.test(p.title ?? ''));
    expect(cohort?.type).toBe('text');
    expect(cohort?.options?.content).toContain('/cohorts');
    expect(cohort?.options?.content).toContain('export cohorts');
    // The api URL in the text is the port compose publishes for the api.
    const apiPort = publishedPorts('api').flatMap((p) => p.hostPorts)[0];
    expect(cohort?.options?.content).toContain(`localhost:${apiPort}/cohorts`);
  });
});
