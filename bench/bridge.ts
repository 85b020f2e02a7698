// What the native Kafka record format costs against the private one (issue #7): one Stompede node per measurement,
// the two formats alternating, several rounds, medians and the ratio native / private.
//
//   node dist/bench/bridge.js [--rounds 5] [--records 50000] [--subscribers 2] [--partitions 8]
//        [--duration-s 8] [--warmup-s 2] [--publishers 4] [--window 100] [--size 100] [--port 62413] [--json out.json]
//        [--formats private,native] [--cpu-prof-dir DIR]   (one format only, and `node --cpu-prof` of each node)
//
// Needs Kafka: --kafka BROKERS, else STOMPEDE_TEST_KAFKA_BROKERS (as infra/services.sh writes it to .services/env).
// No Redis, no MongoDB: one node, history in memory.
//
// Per round, each format gets a node of its own (`node dist/bin/stompede.js --kafka ... --routes ...`) and fresh
// topics, and the order of the formats alternates between rounds:
//   private  /topic/bridge.in.**=kafka:<in>;format=stompede;destination=key   (the default routes' format)
//            /topic/bench.receipts.**=kafka:<out>;format=stompede
//   native   /topic/bridge.in.x=kafka:<in>                                       (the default of routes you write)
//            /topic/bench.receipts.**=kafka:<out>
// Inward: a plain kafkajs producer (an outside application) streams --records records into <in>, spread evenly
// over its partitions, several batches in flight; --subscribers STOMP subscribers on /topic/bridge.in.x each count
// them. The figure is records/s: records delivered to every subscriber, over the time from the first produce to
// the last delivery. A private-format record is what a Stompede-aware producer writes: key = the destination,
// user headers in the JSON header `stompede-headers`; a native one has a business key and `content-type` as a
// record header. Same body, same partition for the same record number.
// Outward: the `receipts` scenario of scenarios.ts (publishers each keeping --window SENDs awaiting their RECEIPT;
// a RECEIPT means Kafka acknowledged the record): records/s acknowledged.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs';
import { StompClient } from './client.js';
import { runScenario, type BenchConfig } from './scenarios.js';
import { sampleProcess } from './stats.js';

const FORMATS = ['private', 'native'] as const;
type Format = (typeof FORMATS)[number];

interface Options {
  readonly kafka: string;
  readonly rounds: number;
  readonly records: number;
  readonly subscribers: number;
  readonly partitions: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly publishers: number;
  readonly window: number;
  readonly sizeBytes: number;
  readonly port: number;
  readonly json: string | undefined;
  readonly formats: readonly Format[];
  /** Profile each node (`node --cpu-prof`) into this folder. */
  readonly cpuProfDir: string | undefined;
}

interface InwardResult {
  /** Records delivered to every subscriber per second, first produce to last delivery. */
  readonly recordsPerS: number;
  /** How fast the producer itself wrote them (when close to recordsPerS, the producer was the limit). */
  readonly producedPerS: number;
  /** Broker CPU time per record (µs), over the whole stream. */
  readonly cpuUsPerRecord: number | null;
  readonly lost: number;
}

interface OutwardResult {
  readonly recordsPerS: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Broker CPU time per acknowledged record (µs), over the measurement window. */
  readonly cpuUsPerRecord: number | null;
  readonly lost: number;
}

interface Measurement {
  readonly round: number;
  readonly format: Format;
  readonly inward: InwardResult;
  readonly outward: OutwardResult;
}

const IN_DESTINATION = '/topic/bridge.in.x';
const BATCH_RECORDS = 500;
const BATCHES_IN_FLIGHT = 8;
const PROBE_TIMEOUT_MS = 60_000;
const INWARD_TIMEOUT_MS = 120_000;
const BODY_MARK = 'b';
/**
 * The nodes' slow-consumer limit (256 MiB, not 16): the subscribers share this one process with the producer, and
 * a burst the node delivers faster than they read must not disconnect them (this bench measures the node).
 */
const MAX_OUTBOUND_BYTES = 256 * 1024 * 1024;

const USAGE = `usage: node dist/bench/bridge.js [--kafka BROKERS] [--rounds N] [--records N] [--subscribers N]
  [--partitions N] [--duration-s N] [--warmup-s N] [--publishers N] [--window N] [--size N] [--port N] [--json FILE]
  [--formats private,native] [--cpu-prof-dir DIR]`;

function parse(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kafka: { type: 'string' },
      rounds: { type: 'string' },
      records: { type: 'string' },
      subscribers: { type: 'string' },
      partitions: { type: 'string' },
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      publishers: { type: 'string' },
      window: { type: 'string' },
      size: { type: 'string' },
      port: { type: 'string' },
      json: { type: 'string' },
      formats: { type: 'string' },
      'cpu-prof-dir': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const problems: string[] = [];
  const int = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) problems.push(`--${name} must be an integer ≥ ${min}, not "${raw}"`);
    return n;
  };
  const kafka = values.kafka ?? process.env['STOMPEDE_TEST_KAFKA_BROKERS'] ?? '';
  if (kafka === '') problems.push('no Kafka: give --kafka BROKERS or set STOMPEDE_TEST_KAFKA_BROKERS (. .services/env)');
  const formats = (values.formats ?? FORMATS.join(',')).split(',').filter((f) => f !== '');
  const known = (f: string): f is Format => (FORMATS as readonly string[]).includes(f);
  if (formats.length === 0 || !formats.every(known)) problems.push(`--formats takes ${FORMATS.join(', ')} (comma-separated)`);
  const options: Options = {
    kafka,
    rounds: int('rounds', values.rounds, 5, 1),
    records: int('records', values.records, 50_000, 1000),
    subscribers: int('subscribers', values.subscribers, 2, 1),
    partitions: int('partitions', values.partitions, 8, 1),
    durationS: int('duration-s', values['duration-s'], 8, 1),
    warmupS: int('warmup-s', values['warmup-s'], 2, 0),
    publishers: int('publishers', values.publishers, 4, 1),
    window: int('window', values.window, 100, 1),
    sizeBytes: int('size', values.size, 100, 16),
    port: int('port', values.port, 62413, 1),
    json: values.json,
    formats: formats.filter(known),
    cpuProfDir: values['cpu-prof-dir'],
  };
  if (problems.length > 0) {
    process.stderr.write(`${problems.map((p) => `error: ${p}`).join('\n')}\n\n${USAGE}\n`);
    process.exit(2);
  }
  return options;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

function routesFor(format: Format, inTopic: string, outTopic: string): string {
  return format === 'private'
    ? `/topic/bridge.in.**=kafka:${inTopic};format=stompede;destination=key,/topic/bench.receipts.**=kafka:${outTopic};format=stompede`
    : `${IN_DESTINATION}=kafka:${inTopic},/topic/bench.receipts.**=kafka:${outTopic}`;
}

/** One record of the inward stream, as the producer of that format writes it. */
function inwardRecord(format: Format, i: number, body: string, partitions: number): Message {
  const partition = i % partitions;
  if (format === 'private') {
    return {
      partition,
      key: IN_DESTINATION,
      value: body,
      headers: { 'stompede-headers': '[["content-type","text/plain"]]' },
    };
  }
  return { partition, key: `order-${i}`, value: body, headers: { 'content-type': 'text/plain' } };
}

function bodyOf(i: number, sizeBytes: number): string {
  const head = `${BODY_MARK}${i} `;
  return head.padEnd(sizeBytes, 'x');
}

class Node {
  readonly #child: ChildProcess;
  #exited: Promise<void>;
  #output = '';

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /** The end of what the node wrote (warnings and errors: it runs with --log-level warn). */
  get output(): string {
    return this.#output;
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  static async start(port: number, args: readonly string[], cpuProfDir: string | undefined): Promise<Node> {
    const script = fileURLToPath(new URL('../bin/stompede.js', import.meta.url));
    const profile = cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfDir];
    const child = spawn(
      process.execPath,
      [
        ...profile,
        script,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--ws-port',
        '-1',
        '--ops-port',
        '-1',
        '--log-level',
        'warn',
        '--max-outbound-bytes',
        String(MAX_OUTBOUND_BYTES),
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const node = new Node(child);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the node exited (${child.exitCode}): ${node.#output}`);
      if (await portOpen(port)) return node;
      if (Date.now() > deadline) {
        await node.stop();
        throw new Error(`the node did not listen on ${port} within 60 s: ${node.#output}`);
      }
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 15_000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface ProduceJob {
  readonly brokers: string;
  readonly topic: string;
  readonly format: Format;
  readonly records: number;
  readonly sizeBytes: number;
  readonly partitions: number;
}

/**
 * Streams the records from a worker thread with a producer of its own, so that encoding them does not compete with
 * the subscribers' event loop: resolves with the milliseconds the producer took.
 */
function produceInWorker(job: ProduceJob, onStart: () => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: job });
    worker.on('message', (ms: unknown) => {
      if (ms === 'start') onStart();
      else resolve(Number(ms));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the producer worker exited with ${code}`));
    });
  });
}

async function produceJob(job: ProduceJob): Promise<number> {
  const kafka = new Kafka({ clientId: 'bench-bridge-producer', brokers: job.brokers.split(','), logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const batches: Message[][] = [];
    for (let from = 0; from < job.records; from += BATCH_RECORDS) {
      const batch: Message[] = [];
      for (let i = from; i < Math.min(job.records, from + BATCH_RECORDS); i++) {
        batch.push(inwardRecord(job.format, i, bodyOf(i, job.sizeBytes), job.partitions));
      }
      batches.push(batch);
    }
    parentPort?.postMessage('start');
    const start = performance.now();
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let batch = batches[next++]; batch !== undefined; batch = batches[next++]) {
        await producer.send({ topic: job.topic, messages: batch });
      }
    };
    await Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, lane));
    return performance.now() - start;
  } finally {
    await producer.disconnect();
  }
}

/** Inward: a plain producer streams the records; every subscriber must receive all of them. */
async function inward(o: Options, format: Format, node: Node, producer: Producer, topic: string): Promise<InwardResult> {
  const url = `tcp://127.0.0.1:${o.port}`;
  const clients = await Promise.all(Array.from({ length: o.subscribers }, () => StompClient.connect({ url })));
  const counts = new Array<number>(o.subscribers).fill(0);
  let closed = 0;
  clients.forEach((client, s) => {
    client.onError = (err) => log(`inward ${format}: subscriber ${s}: ${err.message}`);
    client.onClose = (info) => {
      if (info.reason === 'local') return;
      log(`inward ${format}: subscriber ${s} closed (${info.reason}) after ${counts[s] ?? 0} records`);
      if (++closed === o.subscribers) done();
    };
  });
  let complete = 0;
  let probes = 0;
  let lastDelivery = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  try {
    await Promise.all(
      clients.map((client, s) =>
        client.subscribe(
          IN_DESTINATION,
          (frame) => {
            if (frame.body[0] !== BODY_MARK.charCodeAt(0)) {
              probes++;
              return;
            }
            const n = (counts[s] ?? 0) + 1;
            counts[s] = n;
            if (n === o.records) {
              complete++;
              lastDelivery = performance.now();
              if (complete === o.subscribers) done();
            }
          },
          { receipt: true },
        ),
      ),
    );
    // The node's consumer group starts at the end of the topic once it has its partitions: probe until a record
    // produced now reaches the subscribers, so that none of the measured records is produced before that.
    const probeDeadline = Date.now() + PROBE_TIMEOUT_MS;
    for (;;) {
      if (Date.now() > probeDeadline) throw new Error(`inward ${format}: probe records not delivered within ${PROBE_TIMEOUT_MS} ms`);
      probes = 0;
      // One probe record per partition: each partition is being read once the subscribers have all of them.
      await producer.send({
        topic,
        messages: Array.from({ length: o.partitions }, (_, p) => inwardRecord(format, p, 'probe', o.partitions)),
      });
      const wait = Date.now() + 2000;
      while (probes < o.subscribers * o.partitions && Date.now() < wait) await sleep(50);
      if (probes >= o.subscribers * o.partitions) break;
    }
    await sleep(300);
    const before = sampleProcess(node.pid);
    let start = performance.now();
    const job = { brokers: o.kafka, topic, format, records: o.records, sizeBytes: o.sizeBytes, partitions: o.partitions };
    const producedMs = await produceInWorker(job, () => {
      start = performance.now();
    });
    const timeout = sleep(INWARD_TIMEOUT_MS).then(() => 'timeout' as const);
    const outcome = await Promise.race([finished.then(() => 'done' as const), timeout]);
    const after = sampleProcess(node.pid);
    const end = outcome === 'done' ? lastDelivery : performance.now();
    const lost = counts.reduce((sum, n) => sum + (o.records - n), 0);
    if (lost > 0) log(`inward ${format}: received per subscriber ${counts.join(', ')} of ${o.records}; node output: ${node.output}`);
    const delivered = Math.min(...counts);
    return {
      recordsPerS: (delivered * 1000) / (end - start),
      producedPerS: (o.records * 1000) / producedMs,
      cpuUsPerRecord: before !== undefined && after !== undefined ? (1e6 * (after.cpuSeconds - before.cpuSeconds)) / o.records : null,
      lost,
    };
  } finally {
    for (const client of clients) client.destroy();
  }
}

/** Outward: the receipts scenario against the node's kafka route. */
async function outward(o: Options, node: Node): Promise<OutwardResult> {
  const cfg: BenchConfig = {
    scenario: 'receipts',
    target: `tcp://127.0.0.1:${o.port}`,
    targets: [`tcp://127.0.0.1:${o.port}`],
    label: 'stompede',
    login: undefined,
    passcode: undefined,
    host: '/',
    durationS: o.durationS,
    warmupS: o.warmupS,
    drainS: 10,
    window: o.window,
    sizeBytes: o.sizeBytes,
    heartbeat: undefined,
    brokerPids: [node.pid],
    trace: false,
    subscribers: 0,
    workers: undefined,
    pairs: 1,
    rooms: 1,
    roomSize: 1,
    chatIntervalMs: 1000,
    producers: 1,
    consumers: 1,
    publishers: o.publishers,
    prefetch: 1,
    conns: 1,
    concurrency: 10,
    maxMessages: 10_000_000,
    log: () => {},
  };
  const r = await runScenario(cfg);
  const cpuUsPerRecord = r.brokerCpuPercent !== null && r.rate > 0 ? (1e4 * r.brokerCpuPercent) / r.rate : null;
  return { recordsPerS: r.rate, p50Ms: r.p50Ms, p99Ms: r.p99Ms, cpuUsPerRecord, lost: r.lost };
}

async function measure(o: Options, kafka: Kafka, producer: Producer, round: number, format: Format, run: string): Promise<Measurement> {
  const inTopic = `bench-bridge-${run}-${round}-${format}-in`;
  const outTopic = `bench-bridge-${run}-${round}-${format}-out`;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: inTopic, numPartitions: o.partitions, replicationFactor: 1 },
        { topic: outTopic, numPartitions: o.partitions, replicationFactor: 1 },
      ],
    });
  } finally {
    await admin.disconnect();
  }
  const node = await Node.start(
    o.port,
    ['--kafka', o.kafka, '--cluster-name', `bench-bridge-${run}-${round}-${format}`, '--routes', routesFor(format, inTopic, outTopic)],
    o.cpuProfDir,
  );
  try {
    const inResult = await inward(o, format, node, producer, inTopic);
    log(
      `round ${round} ${format} inward: ${Math.round(inResult.recordsPerS)} records/s (produced ${Math.round(inResult.producedPerS)}/s, ` +
        `broker ${inResult.cpuUsPerRecord?.toFixed(1) ?? '?'} µs CPU/record, lost ${inResult.lost})`,
    );
    const outResult = await outward(o, node);
    log(
      `round ${round} ${format} outward: ${Math.round(outResult.recordsPerS)} records/s acknowledged ` +
        `(p50 ${outResult.p50Ms?.toFixed(1) ?? '?'} ms, ` +
        `broker ${outResult.cpuUsPerRecord?.toFixed(1) ?? '?'} µs CPU/record, lost ${outResult.lost})`,
    );
    return { round, format, inward: inResult, outward: outResult };
  } finally {
    await node.stop();
  }
}

function report(o: Options, results: readonly Measurement[]): string {
  const of = (format: Format): Measurement[] => results.filter((m) => m.format === format);
  const paired = Array.from({ length: o.rounds }, (_, r) => ({
    p: results.find((m) => m.round === r && m.format === 'private'),
    n: results.find((m) => m.round === r && m.format === 'native'),
  }));
  /** Median over the rounds of native / private. */
  const ratio = (pick: (m: Measurement) => number | null): number =>
    median(
      paired.flatMap(({ p, n }) => {
        const a = p === undefined ? null : pick(p);
        const b = n === undefined ? null : pick(n);
        return a !== null && b !== null && a > 0 ? [b / a] : [];
      }),
    );
  const values = (format: Format, pick: (m: Measurement) => number | null): number[] =>
    of(format).flatMap((m) => {
      const v = pick(m);
      return v === null ? [] : [v];
    });
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const range = (v: readonly number[]): string => `${fmt(Math.min(...v))}–${fmt(Math.max(...v))}`;
  const row = (what: string, rate: (m: Measurement) => number, cpu: (m: Measurement) => number | null): string => {
    const p = values('private', rate);
    const n = values('native', rate);
    const r = ratio(rate);
    const cp = values('private', cpu);
    const cn = values('native', cpu);
    const cpuCell =
      cp.length > 0 && cn.length > 0 ? `${median(cp).toFixed(1)} / ${median(cn).toFixed(1)} (${ratio(cpu).toFixed(2)}×)` : '–';
    const met = r >= 0.85 ? 'met' : 'missed';
    return `| ${what} | ${fmt(median(p))} (${range(p)}) | ${fmt(median(n))} (${range(n)}) | **${r.toFixed(2)}×** | ${cpuCell} | ${met} |`;
  };
  const lost = results.reduce((sum, m) => sum + m.inward.lost + m.outward.lost, 0);
  const produced = (format: Format): string => fmt(median(values(format, (m) => m.inward.producedPerS)));
  return [
    '| direction | private records/s | native records/s | native / private | broker CPU µs/record P / N (N/P) | cost ≤ 15 % |',
    '|---|--:|--:|--:|--:|---|',
    row(
      'inward: plain producer → STOMP subscribers',
      (m) => m.inward.recordsPerS,
      (m) => m.inward.cpuUsPerRecord,
    ),
    row(
      'outward: SEND with receipt → record',
      (m) => m.outward.recordsPerS,
      (m) => m.outward.cpuUsPerRecord,
    ),
    '',
    `${o.rounds} rounds, medians (min–max); ratios are medians of the per-round ratios. Inward producer rate (median): ` +
      `private ${produced('private')}/s, native ${produced('native')}/s. Records lost: ${lost}.`,
  ].join('\n');
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
  const kafka = new Kafka({ clientId: 'bench-bridge', brokers: o.kafka.split(','), logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  const results: Measurement[] = [];
  try {
    for (let round = 0; round < o.rounds; round++) {
      const order: readonly Format[] = round % 2 === 0 ? o.formats : [...o.formats].reverse();
      for (const format of order) results.push(await measure(o, kafka, producer, round, format, run));
    }
  } finally {
    await producer.disconnect();
  }
  const table = o.formats.length === FORMATS.length ? report(o, results) : 'one format measured: no ratio (see the lines above)';
  process.stdout.write(`${table}\n`);
  if (o.json !== undefined) writeFileSync(o.json, `${JSON.stringify({ options: o, results }, null, 2)}\n`);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
} else {
  void produceJob(workerData as ProduceJob).then((ms) => parentPort?.postMessage(ms));
}
