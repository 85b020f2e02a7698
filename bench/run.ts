// CLI of the load generator. Runs one scenario against one STOMP broker on this machine, or against several
// nodes of one cluster, and prints one Markdown table row (details go to stderr); --json writes the full result.
//
//   node dist/bench/run.js --scenario fanout --target tcp://127.0.0.1:61613 [--duration-s 15]
//        [--login guest --passcode guest] [--broker-pid PID] [--json out.json] [--label rabbitmq] [--header]
//   node dist/bench/run.js --scenario fanout --target tcp://127.0.0.1:62013,tcp://127.0.0.1:62023,tcp://127.0.0.1:62033
//        --broker-pid P1,P2,P3
//
// See bench/README.md for every scenario and option.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_FANOUT_WORKERS, SCENARIOS, runScenario, type BenchConfig, type BenchResult, type ScenarioName } from './scenarios.js';

const USAGE = `usage: node dist/bench/run.js --scenario <${SCENARIOS.join('|')}> --target <tcp://127.0.0.1:PORT | ws://127.0.0.1:PORT/ws>
  --target A,B,C        several nodes of one cluster (or --target repeated): publishers and producers connect
                        to A, subscribers and consumers round-robin to B, C; chat, conns and receipts place
                        client i on target i mod N (the members of a chat room sit on different nodes)
  --duration-s N        measured seconds (default 15; for conns: how long the idle connections are held)
  --warmup-s N          seconds before measuring (default 3)
  --drain-s N           max seconds to wait for in-flight messages afterwards (default 5)
  --login L --passcode P  CONNECT credentials (none by default)
  --host H              CONNECT host header (default "/", RabbitMQ's default virtual host)
  --broker-pid PID      sample the broker's CPU and RSS from /proc/PID (conns: RSS per connection);
                        PID,PID,... (or repeated) sums them over the nodes of a cluster
  --label NAME          broker name in the output (default: the target)
  --json FILE           write the full result as JSON
  --header              print the Markdown table header before the row
  --window N            messages in flight per publisher (fanout 20, pairs 50, queue 50, receipts 100)
  --size N              body bytes (default 100)
  --heartbeat CX,CY     CONNECT heart-beat (default 0,0; chat and conns 10000,10000)
  --subscribers N       fanout subscribers (default 100)
  --workers N           fanout: worker threads holding the subscribers (default ${DEFAULT_FANOUT_WORKERS}; 0 = all in the
                        main thread with the publisher)
  --pairs N             pairs (default 8)
  --rooms N --room-size N --chat-interval-ms N   chat (default 100 rooms of 10, every 2000 ms)
  --producers N --consumers N --prefetch N       queue (default 4, 4, prefetch-count 100)
  --publishers N        receipts: publishers, each with --window SENDs awaiting their RECEIPT (default 4)
  --conns N             conns: connections to open (default 10000; needs ulimit -n above N)
  --concurrency N       connection handshakes in progress at once (default 100)
  --max-messages N      cap per publisher over the whole run (default 10000000)
  --trace               log the raw bytes of the first two connections to stderr`;

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

interface Parsed {
  readonly config: BenchConfig;
  readonly json: string | undefined;
  readonly header: boolean;
}

function parse(argv: string[]): Parsed {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      scenario: { type: 'string' },
      target: { type: 'string', multiple: true },
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      'drain-s': { type: 'string' },
      login: { type: 'string' },
      passcode: { type: 'string' },
      host: { type: 'string' },
      'broker-pid': { type: 'string', multiple: true },
      label: { type: 'string' },
      json: { type: 'string' },
      header: { type: 'boolean' },
      window: { type: 'string' },
      size: { type: 'string' },
      heartbeat: { type: 'string' },
      subscribers: { type: 'string' },
      workers: { type: 'string' },
      pairs: { type: 'string' },
      rooms: { type: 'string' },
      'room-size': { type: 'string' },
      'chat-interval-ms': { type: 'string' },
      producers: { type: 'string' },
      consumers: { type: 'string' },
      publishers: { type: 'string' },
      prefetch: { type: 'string' },
      conns: { type: 'string' },
      concurrency: { type: 'string' },
      'max-messages': { type: 'string' },
      trace: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const problems: string[] = [];
  const num = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) {
      problems.push(`--${name} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };
  const int = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    const n = num(name, raw, fallback, min);
    if (!Number.isInteger(n)) problems.push(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
    return n;
  };

  const scenario = values.scenario;
  if (scenario === undefined) problems.push('--scenario is required');
  else if (!(SCENARIOS as readonly string[]).includes(scenario)) problems.push(`--scenario must be one of ${SCENARIOS.join(', ')}`);

  const targets = (values.target ?? [])
    .flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const target = targets[0];
  if (target === undefined) problems.push('--target is required');
  const protocols = new Set<string>();
  for (const t of targets) {
    try {
      const url = new URL(t);
      protocols.add(url.protocol);
      if (url.protocol !== 'tcp:' && url.protocol !== 'ws:') problems.push(`--target must be tcp://… or ws://…, got ${t}`);
      if (!LOCAL_HOSTS.has(url.hostname))
        problems.push('--target must be on this machine (127.0.0.1): the benchmark only loads local brokers');
      if (!url.port) problems.push(`--target needs an explicit port: ${t}`);
    } catch {
      problems.push(`--target is not a URL: ${JSON.stringify(t)}`);
    }
  }
  if (values.workers !== undefined && scenario !== undefined && scenario !== 'fanout')
    problems.push('--workers applies to the fanout scenario only');
  if (protocols.size > 1) problems.push('every --target must use the same transport (all tcp:// or all ws://)');
  if (new Set(targets).size !== targets.length) problems.push('--target lists the same URL twice');

  let heartbeat: readonly [number, number] | undefined;
  if (values.heartbeat !== undefined) {
    const m = /^(\d+),(\d+)$/.exec(values.heartbeat);
    if (m) heartbeat = [Number(m[1]), Number(m[2])];
    else problems.push('--heartbeat must be CX,CY in milliseconds, e.g. 10000,10000');
  }

  const brokerPids = (values['broker-pid'] ?? [])
    .flatMap((p) => p.split(','))
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => int('broker-pid', p, 0, 1));
  const windowRaw = values.window;

  const config: BenchConfig = {
    scenario: (scenario ?? 'fanout') as ScenarioName,
    target: target ?? '',
    targets: target === undefined ? [''] : targets,
    label: values.label ?? targets.join(','),
    login: values.login,
    passcode: values.passcode,
    host: values.host ?? '/',
    durationS: num('duration-s', values['duration-s'], 15, 1),
    warmupS: num('warmup-s', values['warmup-s'], 3, 0),
    drainS: num('drain-s', values['drain-s'], 5, 0),
    window: windowRaw === undefined ? undefined : int('window', windowRaw, 1, 1),
    sizeBytes: int('size', values.size, 100, 1),
    heartbeat,
    brokerPids,
    trace: values.trace ?? false,
    subscribers: int('subscribers', values.subscribers, 100, 1),
    workers: values.workers === undefined ? undefined : int('workers', values.workers, 0, 0),
    pairs: int('pairs', values.pairs, 8, 1),
    rooms: int('rooms', values.rooms, 100, 1),
    roomSize: int('room-size', values['room-size'], 10, 1),
    chatIntervalMs: num('chat-interval-ms', values['chat-interval-ms'], 2000, 10),
    producers: int('producers', values.producers, 4, 1),
    consumers: int('consumers', values.consumers, 4, 1),
    publishers: int('publishers', values.publishers, 4, 1),
    prefetch: int('prefetch', values.prefetch, 100, 1),
    conns: int('conns', values.conns, 10_000, 1),
    concurrency: int('concurrency', values.concurrency, 100, 1),
    maxMessages: int('max-messages', values['max-messages'], 10_000_000, 1),
    log: (line) => process.stderr.write(`${line}\n`),
  };
  if (problems.length > 0) {
    process.stderr.write(`${problems.map((p) => `error: ${p}`).join('\n')}\n\n${USAGE}\n`);
    process.exit(2);
  }
  return { config, json: values.json, header: values.header ?? false };
}

export const TABLE_HEADER =
  '| broker | scenario | transport | rate | p50 ms | p99 ms | p99.9 ms | loss | dup | broker CPU | notes |\n' +
  '|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|';

function fmtMs(v: number | null): string {
  if (v === null) return '–';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function tableRow(r: BenchResult): string {
  const notes = [...r.notes];
  if (r.publishRate !== null && r.scenario !== 'chat') notes.push(`pub ${Math.round(r.publishRate)}/s`);
  if (r.rssPerConnKiB !== null) notes.push(`${r.rssPerConnKiB.toFixed(1)} KiB/conn`);
  if (r.latencyOf === 'connect') notes.push('latency = CONNECT→CONNECTED');
  if (r.latencyOf === 'receipt') notes.push('latency = SEND→RECEIPT');
  if (r.targets.length > 1) notes.push(`${r.targets.length} nodes`);
  if (r.perBrokerCpuSecond !== null) notes.push(`${Math.round(r.perBrokerCpuSecond)} msg per broker CPU-s`);
  if (r.clientCpuPercent !== null) notes.push(`client CPU ${Math.round(r.clientCpuPercent)}%`);
  if (r.outOfOrder > 0) notes.push(`${r.outOfOrder} out of order`);
  if (r.stalls > 0) notes.push(`${r.stalls} stalls`);
  if (r.errors > 0) notes.push(`${r.errors} errors: ${r.errorSamples[0] ?? ''}`);
  const cells = [
    r.label,
    r.scenario,
    r.transport,
    `${Math.round(r.rate)} ${r.rateUnit}`,
    fmtMs(r.p50Ms),
    fmtMs(r.p99Ms),
    fmtMs(r.p999Ms),
    String(r.lost),
    String(r.duplicates),
    r.brokerCpuPercent === null ? '–' : `${Math.round(r.brokerCpuPercent)}%`,
    notes.join('; ').replaceAll('|', '\\|'),
  ];
  return `| ${cells.join(' | ')} |`;
}

async function main(): Promise<void> {
  const { config, json, header } = parse(process.argv.slice(2));
  // Hard bound: setup, warm-up, measurement, drain, teardown and a margin. A hung broker cannot hang us.
  const budgetS = config.warmupS + config.durationS + config.drainS + 120 + config.conns / 100;
  const guard = setTimeout(() => {
    process.stderr.write(`error: ${config.scenario} did not finish within ${Math.round(budgetS)} s, giving up\n`);
    process.exit(3);
  }, budgetS * 1000);
  guard.unref();
  config.log(`${config.label}: ${config.scenario} against ${config.targets.join(', ')}`);
  const result = await runScenario(config);
  if (json !== undefined) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  if (header) process.stdout.write(`${TABLE_HEADER}\n`);
  process.stdout.write(`${tableRow(result)}\n`);
  // Lingering sockets must not keep the process alive.
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
