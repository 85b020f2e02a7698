/**
 * Multi-process Stompede clusters for specs: every node is a real `node dist/bin/stompede.js` process on free
 * loopback ports, wired to the test services named by the environment (`infra/with-services.sh` exports them):
 * `STOMPEDE_TEST_REDIS_URL`, `STOMPEDE_TEST_KAFKA_BROKERS`, `STOMPEDE_TEST_MONGO_URL`.
 *
 * - Each cluster gets a cluster name unique to this run (`--cluster-name`), so Kafka consumer groups, Redis keys
 *   and channels and Mongo collections never meet those of another spec file or an earlier run; with the `kafka`
 *   preset the Kafka topics are unique too (`--routes '/topic/**=kafka:<name>.t,/queue/**=kafka:<name>.q'`).
 * - Ports: the first start binds port 0 and reads the ports from the node's "listening" log line; a restart asks
 *   for the same ports again (falling back to new ones if another process took them meanwhile).
 * - Logs: each node's stdout and stderr go to `spec/artifacts/cluster/<cluster>/<node>.log` (git-ignored);
 *   `printLogsOnFailure` (an afterEach hook) prints what the nodes logged during a failed test.
 * - Faults: `kill9(node)` (SIGKILL, like a crash), `stop(node)` (SIGTERM; a clean stop must exit 0),
 *   `restart(node)`; `services(verb, name)` drives `infra/services.sh` for engine faults.
 * - `close()` (in an after hook) ends every node this cluster started, whatever state the test left it in.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, statSync, type WriteStream } from 'node:fs';
import { request } from 'node:http';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { serviceUrl, type ServiceName } from './services.js';

/** The repository root (this file runs from dist/spec/support). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = resolve(ROOT, 'dist/bin/stompede.js');
export const ARTIFACTS = resolve(ROOT, 'spec/artifacts');
export const SERVICES_SCRIPT = process.env.STOMPEDE_TEST_SERVICES_SCRIPT ?? resolve(ROOT, 'infra/services.sh');

export type { ServiceName };

/** The engine URLs the environment names (unset ones are undefined). */
export const SERVICE_URLS: Readonly<Record<ServiceName, string | undefined>> = Object.freeze({
  redis: serviceUrl('redis'),
  kafka: serviceUrl('kafka'),
  mongo: serviceUrl('mongo'),
  'redis-cluster': serviceUrl('redis-cluster'),
});

/** The services of `names` that the environment does not name (empty: all there). */
export function missingServices(names: readonly ServiceName[]): ServiceName[] {
  return names.filter((n) => SERVICE_URLS[n] === undefined);
}

/** A name unique to this process and moment, usable as a cluster name, Kafka topic and destination segment. */
export function uniqueRunName(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
}

/** Route presets: what `--routes` each route kind of the specs gets for a cluster name. */
export type RoutePreset = 'redis' | 'kafka' | 'local';

export function routesFor(preset: RoutePreset, clusterName: string): string {
  switch (preset) {
    case 'redis':
      return '/topic/**=redis,/queue/**=redis';
    case 'kafka':
      return `/topic/**=kafka:${clusterName}.t,/queue/**=kafka:${clusterName}.q`;
    case 'local':
      return '/**=local';
  }
}

export interface ClusterOptions {
  /** Prefix of the unique cluster name (letters, digits, `.`, `_`, `-`). */
  readonly name: string;
  /** Nodes to start (default 3). */
  readonly size?: number;
  /** Engines to wire each node to (default: every one the environment names). */
  readonly engines?: readonly ServiceName[];
  /** A preset, or a `--routes` value computed from the cluster name. Default: the broker's own defaults. */
  readonly routes?: RoutePreset | ((clusterName: string) => string);
  /** More CLI flags for every node, e.g. `['--heartbeat-send-ms', '1000']`. */
  readonly args?: readonly string[];
  /** `--log-level` (default info). */
  readonly logLevel?: string;
  /** How long a node may take to log "listening" and become ready (default 60 s). */
  readonly startTimeoutMs?: number;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Node processes alive right now. If the test process ends without the after hooks (a crash, mocha --exit with a
 * hook that hung), they are SIGKILLed on the way out, so no node outlives the run and keeps its ports.
 */
const LIVE = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of LIVE) child.kill('SIGKILL');
});

/** One node process. Ports stay the same across restarts (when they can). */
export class StompedeNode {
  readonly cluster: StompedeCluster;
  readonly index: number;
  /** `--node-id`. */
  readonly id: string;
  readonly logFile: string;
  tcpPort = 0;
  wsPort = 0;
  /** The ops listener (`/readyz`, `/metrics`), a port of its own per node. */
  opsPort = 0;
  /** Starts of this node so far (1 after the first). */
  starts = 0;
  #child: ChildProcess | undefined;
  #exited: Promise<ExitStatus> | undefined;
  #exit: ExitStatus | undefined;

  constructor(cluster: StompedeCluster, index: number) {
    this.cluster = cluster;
    this.index = index;
    this.id = `n${index + 1}`;
    this.logFile = resolve(cluster.artifactDir, `${this.id}.log`);
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.wsPort}/ws`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** True from spawn until the process exits. */
  get running(): boolean {
    return this.#child !== undefined && this.#exit === undefined;
  }

  /** How the last run ended (undefined while running or never started). */
  get exitStatus(): ExitStatus | undefined {
    return this.#exit;
  }

  toString(): string {
    return `${this.id} (pid ${this.pid ?? '-'}, tcp ${this.tcpPort}, ws ${this.wsPort}, ops ${this.opsPort})`;
  }

  /** Spawns the process and resolves once it logged "listening" and `/readyz` answers 200. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.toString()} is already running`);
    const reuse = this.tcpPort !== 0;
    try {
      await this.#spawn(reuse ? this.tcpPort : 0, reuse ? this.wsPort : 0, reuse ? this.opsPort : 0);
    } catch (error) {
      if (!reuse || !/EADDRINUSE/.test(String(error))) throw error;
      // Someone took the old ports while the node was down: a restart on new ones is still a restart.
      await this.#spawn(0, 0, 0);
    }
  }

  async #spawn(tcpPort: number, wsPort: number, opsPort: number): Promise<void> {
    const c = this.cluster;
    this.starts++;
    const args = [
      BIN,
      '--node-id',
      this.id,
      '--cluster-name',
      c.name,
      '--host',
      '127.0.0.1',
      '--port',
      String(tcpPort),
      '--ws-port',
      String(wsPort),
      '--ops-port',
      String(opsPort),
      // A clean stop is immediate unless a spec asks for a drain in `args` (the last value of a flag wins).
      '--shutdown-drain-ms',
      '0',
      '--log-level',
      c.logLevel,
      ...c.engineArgs,
      ...c.extraArgs,
    ];
    const log = createWriteStream(this.logFile, { flags: 'a' });
    log.write(`\n### ${new Date().toISOString()} start #${this.starts}: node ${args.map(quoteArg).join(' ')}\n`);
    const child = spawn(process.execPath, args, { cwd: ROOT, env: nodeEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    LIVE.add(child);
    this.#exit = undefined;
    this.#exited = new Promise<ExitStatus>((resolveExit) => {
      // 'close': the process exited and its pipes are drained, so the log holds everything it wrote.
      child.once('close', (code, signal) => {
        LIVE.delete(child);
        const status = { code, signal };
        this.#exit = status;
        setImmediate(() => log.end(`### ${new Date().toISOString()} exited: code ${code} signal ${signal}\n`, () => resolveExit(status)));
      });
    });
    child.stderr?.pipe(log, { end: false });
    const listening = new Promise<{ tcp: number; ws: number; ops: number }>((resolveListening, reject) => {
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
      let found = false;
      lines.on('line', (line) => {
        writeLine(log, line);
        if (found || !line.includes('listening')) return;
        try {
          const entry = JSON.parse(line) as { tcp?: { port?: unknown }; ws?: { port?: unknown }; ops?: { port?: unknown } };
          if (typeof entry.tcp?.port === 'number' && typeof entry.ws?.port === 'number' && typeof entry.ops?.port === 'number') {
            found = true;
            resolveListening({ tcp: entry.tcp.port, ws: entry.ws.port, ops: entry.ops.port });
          }
        } catch {
          // not the JSON line we look for
        }
      });
      void this.#exited?.then(({ code, signal }) => {
        if (!found) reject(new Error(`${this.id} exited (code ${code}, signal ${signal}) before listening:\n${tail(this.logFile, 30)}`));
      });
    });
    const ports = await within(listening, c.startTimeoutMs, `${this.id} to log "listening" (log ${this.logFile})`).catch(
      (error: unknown) => {
        if (this.running) child.kill('SIGKILL');
        throw error;
      },
    );
    this.tcpPort = ports.tcp;
    this.wsPort = ports.ws;
    this.opsPort = ports.ops;
    await this.waitReady(c.startTimeoutMs);
  }

  /** `GET /readyz` until it answers 200 (every engine connected). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.id} exited while waiting for /readyz:\n${tail(this.logFile, 30)}`);
      const answer = await httpGet(this.opsPort, '/readyz').catch((error: unknown) => ({ status: 0, body: String(error) }));
      if (answer.status === 200) return;
      last = `${answer.status} ${answer.body.trim()}`;
      await sleep(100);
    }
    throw new Error(`${this.id} not ready within ${timeoutMs} ms (last /readyz: ${last})`);
  }

  /** The node's `/readyz` answer. */
  async readiness(): Promise<{ status: number; body: string }> {
    return httpGet(this.opsPort, '/readyz');
  }

  /** Sends a signal and resolves with how the process ended. */
  async signal(signal: NodeJS.Signals, timeoutMs = 20_000): Promise<ExitStatus> {
    const child = this.#child;
    const exited = this.#exited;
    if (child === undefined || exited === undefined) throw new Error(`${this.id} was never started`);
    if (this.#exit !== undefined) return this.#exit;
    child.kill(signal);
    return within(exited, timeoutMs, `${this.id} to exit after ${signal}`);
  }

  /** SIGKILL: the node dies at once, like a crash (no goodbye to Redis, Kafka or clients). */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM: a clean shutdown, which must end with exit code 0. */
  async stop(timeoutMs = 30_000): Promise<ExitStatus> {
    const status = await this.signal('SIGTERM', timeoutMs);
    if (status.code !== 0)
      throw new Error(
        `${this.id} stopped with code ${status.code} signal ${status.signal}, expected exit code 0:\n${tail(this.logFile, 30)}`,
      );
    return status;
  }

  /** Stops the node (SIGTERM, or SIGKILL when `crash`) if it runs, and starts it again on the same ports. */
  async restart(options: { crash?: boolean } = {}): Promise<void> {
    if (this.running) {
      if (options.crash === true) await this.kill9();
      else await this.stop();
    }
    await this.start();
  }

  /** Ends the process whatever it is doing: SIGTERM, then SIGKILL after `graceMs`. */
  async shutdown(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    try {
      await this.signal('SIGTERM', graceMs);
    } catch {
      await this.signal('SIGKILL').catch(() => undefined);
    }
  }

  /** Byte size of the log so far (a mark for `logSince`). */
  logSize(): number {
    try {
      return statSync(this.logFile).size;
    } catch {
      return 0;
    }
  }

  logSince(mark: number): string {
    try {
      return readFileSync(this.logFile).subarray(mark).toString('utf8');
    } catch {
      return '';
    }
  }
}

/** A set of node processes sharing one cluster name. */
export class StompedeCluster {
  readonly name: string;
  readonly nodes: StompedeNode[];
  readonly artifactDir: string;
  readonly logLevel: string;
  readonly startTimeoutMs: number;
  readonly engines: readonly ServiceName[];
  readonly engineArgs: readonly string[];
  readonly extraArgs: readonly string[];
  #marks = new Map<StompedeNode, number>();

  private constructor(options: ClusterOptions) {
    this.name = uniqueRunName(options.name);
    this.artifactDir = resolve(ARTIFACTS, 'cluster', this.name);
    mkdirSync(this.artifactDir, { recursive: true });
    this.logLevel = options.logLevel ?? 'info';
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
    this.engines = options.engines ?? (['redis', 'kafka', 'mongo'] as const).filter((n) => SERVICE_URLS[n] !== undefined);
    const missing = missingServices(this.engines);
    if (missing.length > 0) throw new Error(`the cluster needs ${missing.join(', ')}: run through infra/with-services.sh`);
    const engineArgs: string[] = [];
    for (const name of this.engines) {
      // The Redis Cluster is the redis engine in cluster mode, its seed nodes as the URL list.
      if (name === 'redis-cluster') engineArgs.push('--redis', SERVICE_URLS[name] as string, '--redis-mode', 'cluster');
      else engineArgs.push(`--${name}`, SERVICE_URLS[name] as string);
    }
    const routes =
      options.routes === undefined
        ? undefined
        : typeof options.routes === 'function'
          ? options.routes(this.name)
          : routesFor(options.routes, this.name);
    if (routes !== undefined) engineArgs.push('--routes', routes);
    this.engineArgs = engineArgs;
    this.extraArgs = [...(options.args ?? [])];
    this.nodes = Array.from({ length: options.size ?? 3 }, (_, i) => new StompedeNode(this, i));
  }

  /** Starts every node (in parallel) and waits until each is ready. On failure, whatever started is ended. */
  static async start(options: ClusterOptions): Promise<StompedeCluster> {
    const cluster = new StompedeCluster(options);
    try {
      await Promise.all(cluster.nodes.map((n) => n.start()));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  node(index: number): StompedeNode {
    const node = this.nodes[index];
    if (node === undefined) throw new RangeError(`no node ${index} in a cluster of ${this.nodes.length}`);
    return node;
  }

  get running(): StompedeNode[] {
    return this.nodes.filter((n) => n.running);
  }

  kill9(node: StompedeNode): Promise<void> {
    return node.kill9();
  }

  stop(node: StompedeNode): Promise<ExitStatus> {
    return node.stop();
  }

  restart(node: StompedeNode, options: { crash?: boolean } = {}): Promise<void> {
    return node.restart(options);
  }

  /** Starts every node that is not running (after a test killed some), and waits until all are ready. */
  async heal(): Promise<void> {
    await Promise.all(this.nodes.map((n) => (n.running ? n.waitReady() : n.start())));
  }

  /** Remembers where each log ends now (call in beforeEach). */
  markLogs(): void {
    for (const n of this.nodes) this.#marks.set(n, n.logSize());
  }

  /** What every node logged since `markLogs`, last `maxLines` lines per node. */
  logsSinceMark(maxLines = 80): string {
    const out: string[] = [];
    for (const n of this.nodes) {
      const lines = n
        .logSince(this.#marks.get(n) ?? 0)
        .split('\n')
        .filter((l) => l !== '');
      const shown = lines.slice(-maxLines);
      out.push(`---- ${n.id} (${n.logFile}), ${lines.length} lines${lines.length > shown.length ? `, last ${shown.length}` : ''}:`);
      out.push(...shown.map((l) => `  ${l.length > 600 ? `${l.slice(0, 600)}…` : l}`));
    }
    return out.join('\n');
  }

  /** For afterEach: prints the node logs of a test that failed. */
  printLogsOnFailure(test: Mocha.Test | undefined, maxLines = 80): void {
    if (test?.state !== 'failed') return;
    process.stdout.write(
      `\n==== node logs of the failed test "${test.fullTitle()}" (cluster ${this.name}) ====\n${this.logsSinceMark(maxLines)}\n==== end of node logs ====\n`,
    );
  }

  /** Ends every node: SIGTERM, then SIGKILL for one that does not exit in time. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.shutdown()));
  }
}

// ---- services ---------------------------------------------------------------------------------------------------

/**
 * `infra/services.sh <verb> <name>`: `restart` (graceful stop, start on the same port, waits until ready),
 * `kill` (SIGKILL) and `start` (after kill or stop; waits until ready), `stop`.
 */
export async function services(verb: 'restart' | 'kill' | 'start' | 'stop', name: ServiceName, timeoutMs = 120_000): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)(SERVICES_SCRIPT, [verb, name], { cwd: ROOT, timeout: timeoutMs });
  return `${stdout}${stderr}`;
}

/** True when `infra/services.sh is-running <name>` says so. */
export async function serviceRunning(name: ServiceName): Promise<boolean> {
  try {
    await promisify(execFile)(SERVICES_SCRIPT, ['is-running', name], { cwd: ROOT, timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `body` with `name` down or restarted by `fault`, and always brings the service back (and waits until it is
 * ready) before returning or rethrowing, so later specs find it as they expect.
 */
export async function withServiceFault<T>(name: ServiceName, fault: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  try {
    await fault();
    return await body();
  } finally {
    if (!(await serviceRunning(name))) await services('start', name);
  }
}

// ---- small helpers ----------------------------------------------------------------------------------------------

/** The environment of a node: the test process's, minus `STOMPEDE_*` settings that would change its config. */
function nodeEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('STOMPEDE_') && !key.startsWith('STOMPEDE_TEST_')) continue;
    env[key] = value;
  }
  return env;
}

function writeLine(log: WriteStream, line: string): void {
  if (!log.writableEnded) log.write(`${line}\n`);
}

function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_./:=@,+-]*$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The last `n` lines of a file ('' if it cannot be read). */
export function tail(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-n - 1)
      .join('\n');
  } catch {
    return '';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects with a message naming what was awaited, so a hang fails with a reason instead of the mocha timeout. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it returns true; rejects naming `what` (and the last `detail`) after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  detail?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail !== undefined ? `: ${detail()}` : ''}`);
    await sleep(50);
  }
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: 2_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
