// The load scenarios. Every scenario is bounded in time and in message count, talks only to the given
// target, and measures *delivered* messages: publishers keep a window of messages in flight (sent but not yet
// delivered to every receiver that should get them), so the broker runs at the rate it can sustain instead
// of filling an unbounded queue. Phases: connect and subscribe (with receipts), warm-up, measure, drain.

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { StompClient, type AckMode, type ClientOptions, type CloseInfo, type StompFrame } from './client.js';
import { SubscriberWorkers } from './fanout-workers.js';
import {
  LatencyHistogram,
  SeqTracker,
  cpuPercent,
  makeBody,
  nowUs,
  readStamp,
  sampleProcess,
  type ProcessSample,
  type Stamp,
} from './stats.js';

export const SCENARIOS = ['fanout', 'pairs', 'chat', 'queue', 'conns', 'receipts'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchConfig {
  readonly scenario: ScenarioName;
  /** tcp://127.0.0.1:port or ws://127.0.0.1:port/path: the first of `targets`. */
  readonly target: string;
  /**
   * Every node to load (at least one, same transport). With several, publishers connect to the first and
   * subscribers/consumers are spread round-robin over the others; in `chat` and `conns` every client is placed
   * round-robin over all of them, so the members of a room sit on different nodes.
   */
  readonly targets: readonly string[];
  /** The broker's name in the report, e.g. "stompede" or "rabbitmq". */
  readonly label: string;
  readonly login: string | undefined;
  readonly passcode: string | undefined;
  /** CONNECT host header. */
  readonly host: string;
  readonly durationS: number;
  readonly warmupS: number;
  /** Upper bound on waiting for in-flight messages after the measurement. */
  readonly drainS: number;
  /** Messages in flight per publisher; undefined = the scenario's default. */
  readonly window: number | undefined;
  readonly sizeBytes: number;
  /** undefined = the scenario's default (0,0 for throughput, 10000,10000 for chat and conns). */
  readonly heartbeat: readonly [number, number] | undefined;
  /** Broker processes to sample (CPU and RSS are summed over them); empty for none. */
  readonly brokerPids: readonly number[];
  readonly trace: boolean;
  readonly subscribers: number;
  /**
   * fanout: worker threads that hold the subscriber connections (0: all in the main thread, with the publisher);
   * undefined = DEFAULT_FANOUT_WORKERS.
   */
  readonly workers: number | undefined;
  readonly pairs: number;
  readonly rooms: number;
  readonly roomSize: number;
  readonly chatIntervalMs: number;
  readonly producers: number;
  readonly consumers: number;
  /** receipts: publishers, each with `window` SENDs awaiting their RECEIPT. */
  readonly publishers: number;
  readonly prefetch: number;
  readonly conns: number;
  readonly concurrency: number;
  /** Per publisher, over the whole run. */
  readonly maxMessages: number;
  readonly log: (line: string) => void;
}

export type RateUnit = 'msg/s' | 'conn/s' | 'receipt/s';
export type LatencyOf = 'delivery' | 'connect' | 'receipt';

export interface BenchResult {
  readonly label: string;
  readonly scenario: ScenarioName;
  readonly target: string;
  /** Every target (node) of the run; one for a single-node run. */
  readonly targets: readonly string[];
  readonly transport: 'tcp' | 'ws';
  /** Delivered messages per second (every receiver counts), CONNECTED per second for `conns`, RECEIPTs per
   * second for `receipts`. */
  readonly rate: number;
  readonly rateUnit: RateUnit;
  /** What the percentiles measure: send→receive of a message, CONNECT→CONNECTED, or SEND→RECEIPT. */
  readonly latencyOf: LatencyOf;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  readonly maxMs: number | null;
  readonly measuredS: number;
  /** Published during the measurement window, per second. */
  readonly publishRate: number | null;
  readonly sent: number;
  /** Unique deliveries over the whole run. */
  readonly delivered: number;
  readonly expected: number;
  /** Expected deliveries that never arrived (after the drain); for `conns`, connections dropped while idle. */
  readonly lost: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  /** Times a publisher gave up waiting for a message (see STALL_MS) so that it could continue. */
  readonly stalls: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  /** Broker CPU during the measurement, % of one core (needs --broker-pid). */
  readonly brokerCpuPercent: number | null;
  /** This load generator's CPU during the measurement, % of one core: near 100 % means it is the bottleneck. */
  readonly clientCpuPercent: number | null;
  /** rate / broker CPU cores used: deliveries (or connections) per broker CPU-second. Steadier than the rate on a
   * shared machine, because it does not depend on how much CPU the broker got. */
  readonly perBrokerCpuSecond: number | null;
  readonly brokerRssKiB: number | null;
  readonly rssPerConnKiB: number | null;
  readonly connections: number;
  readonly notes: readonly string[];
  readonly startedAt: string;
}

const DEFAULT_WINDOW: Readonly<Record<ScenarioName, number>> = Object.freeze({
  fanout: 20,
  pairs: 50,
  chat: 0,
  queue: 50,
  conns: 0,
  receipts: 100,
});

const DEFAULT_HEARTBEAT: Readonly<Record<ScenarioName, readonly [number, number]>> = Object.freeze({
  fanout: [0, 0],
  pairs: [0, 0],
  chat: [10_000, 10_000],
  queue: [0, 0],
  conns: [10_000, 10_000],
  receipts: [0, 0],
});

/**
 * fanout's subscriber worker threads when --workers is not given. 0 on this 2-core machine: worker threads only
 * compete with the broker for the two cores, and lowered both brokers' figures (bench/README.md, 0 / 1 / 2 workers).
 */
export const DEFAULT_FANOUT_WORKERS = 0;

/** A publisher that has waited this long with a full window skips its oldest message (counted as a stall). */
const STALL_MS = 5000;
const MAX_ERROR_SAMPLES = 8;
const TRACE_CLIENTS = 2;
const TRACE_EVENTS_PER_CLIENT = 40;

export async function runScenario(cfg: BenchConfig): Promise<BenchResult> {
  const run = new Run(cfg);
  try {
    switch (cfg.scenario) {
      case 'fanout':
        return await fanout(run);
      case 'pairs':
        return await pairs(run);
      case 'chat':
        return await chat(run);
      case 'queue':
        return await queue(run);
      case 'conns':
        return await conns(run);
      case 'receipts':
        return await receipts(run);
      default: {
        const never: never = cfg.scenario;
        throw new TypeError(`unknown scenario ${String(never)}`);
      }
    }
  } finally {
    await run.closeAll();
  }
}

type Phase = 'setup' | 'warmup' | 'measure' | 'drain' | 'teardown';

/** State shared by every scenario: clients, errors, phase and the measurement. */
/** What the warm-up / measure / drain loop drives: Publisher and ReceiptPublisher alike. */
interface LoopPublisher {
  readonly sent: number;
  start(): void;
  stop(): void;
  checkStall(): void;
}

/** A windowed publisher is drained once every message it sent was delivered. */
function allDelivered(p: Publisher): boolean {
  return p.base >= p.sent;
}

class Run {
  readonly cfg: BenchConfig;
  readonly uniq = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  readonly clients: StompClient[] = [];
  readonly latency = new LatencyHistogram();
  readonly publishers: Publisher[] = [];
  phase: Phase = 'setup';
  errors = 0;
  readonly errorSamples: string[] = [];
  badBodies = 0;
  deliveredInWindow = 0;
  sentInWindow = 0;
  measureStartMs = 0;
  measureEndMs = 0;
  brokerAtStart: ProcessSample | undefined;
  brokerAtEnd: ProcessSample | undefined;
  #selfCpuAtStart: NodeJS.CpuUsage | undefined;
  selfCpuMicros = 0;
  readonly #stamp: Stamp = { publisher: 0, seq: 0, sentUs: 0 };
  #traced = 0;
  /** [0] is 1 while the measurement window is open; shared with the subscriber worker threads, which read it. */
  readonly measuring = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

  constructor(cfg: BenchConfig) {
    this.cfg = cfg;
  }

  get transport(): 'tcp' | 'ws' {
    return this.cfg.target.startsWith('ws:') ? 'ws' : 'tcp';
  }

  get heartbeat(): readonly [number, number] {
    return this.cfg.heartbeat ?? DEFAULT_HEARTBEAT[this.cfg.scenario];
  }

  get window(): number {
    return this.cfg.window ?? DEFAULT_WINDOW[this.cfg.scenario];
  }

  error(message: string): void {
    this.errors++;
    if (this.errorSamples.length < MAX_ERROR_SAMPLES) {
      this.errorSamples.push(message);
      this.cfg.log(`error: ${message}`);
    }
  }

  /** Where publisher i connects: the first target. */
  pubUrl(_i = 0): string {
    return this.cfg.targets[0] ?? this.cfg.target;
  }

  /** Where subscriber (or consumer) i connects: round-robin over every target but the first, if there are others. */
  subUrl(i: number): string {
    const t = this.cfg.targets;
    if (t.length <= 1) return this.cfg.target;
    return t[1 + (i % (t.length - 1))] ?? this.cfg.target;
  }

  /** Where client i connects when every client is spread over every target (chat, conns, receipts). */
  spreadUrl(i: number): string {
    const t = this.cfg.targets;
    return t.length <= 1 ? this.cfg.target : (t[i % t.length] ?? this.cfg.target);
  }

  /** Summed CPU time and RSS of every broker pid; undefined if there are none or one cannot be read. */
  sampleBrokers(): ProcessSample | undefined {
    const pids = this.cfg.brokerPids;
    if (pids.length === 0) return undefined;
    let cpuSeconds = 0;
    let rssKiB = 0;
    for (const pid of pids) {
      const s = sampleProcess(pid);
      if (!s) return undefined;
      cpuSeconds += s.cpuSeconds;
      rssKiB += s.rssKiB;
    }
    return { cpuSeconds, rssKiB, atMs: performance.now() };
  }

  clientOptions(url: string = this.cfg.target): ClientOptions {
    const cfg = this.cfg;
    const options: ClientOptions = {
      url,
      host: cfg.host,
      heartbeat: this.heartbeat,
      login: cfg.login,
      passcode: cfg.passcode,
    };
    if (!cfg.trace || this.#traced >= TRACE_CLIENTS) return options;
    const n = ++this.#traced;
    let events = 0;
    return {
      ...options,
      trace: (direction, data) => {
        if (++events > TRACE_EVENTS_PER_CLIENT) return;
        const text = typeof data === 'string' ? data : data.toString('latin1');
        cfg.log(`trace c${n} ${direction} ${JSON.stringify(text.length > 600 ? `${text.slice(0, 600)}…` : text)}`);
      },
    };
  }

  /** Connects one client (to the first target by default) and wires its errors into the run. */
  async open(url: string = this.cfg.target): Promise<StompClient> {
    const client = await StompClient.connect(this.clientOptions(url));
    this.adopt(client);
    return client;
  }

  adopt(client: StompClient): void {
    this.clients.push(client);
    client.onError = (err) => {
      if (this.phase !== 'teardown') this.error(`client ${client.id}: ${err.message}`);
    };
    client.onClose = (info: CloseInfo) => {
      if (this.phase === 'teardown' || info.reason === 'local' || info.reason === 'error') return;
      this.error(`client ${client.id}: ${info.reason === 'heartbeat-timeout' ? 'heart-beat timeout' : 'closed by the server'}`);
    };
  }

  /**
   * Connects n clients, client i to urlOf(i) (the first target by default), at most `concurrency` handshakes
   * at a time; fails on the first failure.
   */
  async openMany(n: number, urlOf: (i: number) => string = () => this.cfg.target): Promise<StompClient[]> {
    const settled = await mapLimit(n, this.cfg.concurrency, (i) => this.open(urlOf(i)));
    const out: StompClient[] = [];
    for (const [i, s] of settled.entries()) {
      if (s.status === 'rejected') throw new Error(`connect to ${urlOf(i)} failed: ${errorText(s.reason)}`);
      out.push(s.value);
    }
    return out;
  }

  /**
   * Handles one benchmark MESSAGE: parse the stamp, record it in the receiver's tracker for that publisher,
   * count it and its latency if new. Returns the publisher id and seq of a new delivery, or undefined.
   */
  receive(frame: StompFrame, trackers: ReadonlyArray<SeqTracker | undefined>): Stamp | undefined {
    const stamp = this.#stamp;
    if (!readStamp(frame.body, stamp)) {
      this.badBodies++;
      if (this.badBodies <= 3)
        this.error(`MESSAGE body without a benchmark stamp: ${JSON.stringify(frame.body.toString('latin1', 0, 80))}`);
      return undefined;
    }
    const tracker = trackers[stamp.publisher];
    if (tracker === undefined) {
      this.badBodies++;
      return undefined;
    }
    if (!tracker.add(stamp.seq)) return undefined;
    if (this.phase === 'measure') {
      this.deliveredInWindow++;
      this.latency.record(nowUs() - stamp.sentUs);
    }
    return stamp;
  }

  startMeasure(): void {
    this.phase = 'measure';
    Atomics.store(this.measuring, 0, 1);
    this.measureStartMs = performance.now();
    this.#selfCpuAtStart = process.cpuUsage();
    this.brokerAtStart = this.sampleBrokers();
  }

  endMeasure(): void {
    Atomics.store(this.measuring, 0, 0);
    this.measureEndMs = performance.now();
    const cpu = process.cpuUsage(this.#selfCpuAtStart);
    this.selfCpuMicros = cpu.user + cpu.system;
    this.brokerAtEnd = this.sampleBrokers();
    this.phase = 'drain';
  }

  get measuredS(): number {
    return (this.measureEndMs - this.measureStartMs) / 1000;
  }

  /** Warm-up, measurement and drain for closed-loop publishers; the drain ends once every one is `drained`. */
  async measureClosedLoop<P extends LoopPublisher>(publishers: readonly P[], drained: (p: P) => boolean): Promise<void> {
    const cfg = this.cfg;
    this.phase = 'warmup';
    const stallTimer = setInterval(() => {
      for (const p of publishers) p.checkStall();
    }, 500);
    try {
      for (const p of publishers) p.start();
      await sleep(cfg.warmupS * 1000);
      const sentBefore = sum(publishers.map((p) => p.sent));
      this.startMeasure();
      await sleep(cfg.durationS * 1000);
      this.endMeasure();
      this.sentInWindow = sum(publishers.map((p) => p.sent)) - sentBefore;
      for (const p of publishers) p.stop();
      await waitUntil(() => publishers.every(drained), cfg.drainS * 1000);
    } finally {
      clearInterval(stallTimer);
    }
  }

  brokerCpu(): number | null {
    return this.brokerAtStart && this.brokerAtEnd ? finite(cpuPercent(this.brokerAtStart, this.brokerAtEnd)) : null;
  }

  result(fields: {
    rate?: number;
    rateUnit?: RateUnit;
    latencyOf?: LatencyOf;
    sent: number;
    delivered: number;
    expected: number;
    lost: number;
    duplicates: number;
    outOfOrder: number;
    stalls?: number;
    rssPerConnKiB?: number | null;
    connections?: number;
    notes?: string[];
  }): BenchResult {
    const h = this.latency;
    const ms = (us: number): number | null => (Number.isFinite(us) ? Math.round(us) / 1000 : null);
    const measuredS = this.measuredS;
    const rate = fields.rate ?? (measuredS > 0 ? this.deliveredInWindow / measuredS : 0);
    const brokerCpu = this.brokerCpu();
    return {
      label: this.cfg.label,
      scenario: this.cfg.scenario,
      target: this.cfg.target,
      targets: this.cfg.targets,
      transport: this.transport,
      rate,
      rateUnit: fields.rateUnit ?? 'msg/s',
      latencyOf: fields.latencyOf ?? 'delivery',
      p50Ms: ms(h.quantileUs(0.5)),
      p99Ms: ms(h.quantileUs(0.99)),
      p999Ms: ms(h.quantileUs(0.999)),
      maxMs: h.count > 0 ? ms(h.maxUs) : null,
      measuredS,
      publishRate: fields.rateUnit === 'conn/s' || fields.rateUnit === 'receipt/s' || measuredS <= 0 ? null : this.sentInWindow / measuredS,
      sent: fields.sent,
      delivered: fields.delivered,
      expected: fields.expected,
      lost: fields.lost,
      duplicates: fields.duplicates,
      outOfOrder: fields.outOfOrder,
      stalls: fields.stalls ?? sum(this.publishers.map((p) => p.stalls)),
      errors: this.errors,
      errorSamples: this.errorSamples,
      brokerCpuPercent: brokerCpu,
      clientCpuPercent: measuredS > 0 ? (100 * this.selfCpuMicros) / 1e6 / measuredS : null,
      perBrokerCpuSecond: brokerCpu !== null && brokerCpu > 0 && fields.rateUnit !== 'conn/s' ? (100 * rate) / brokerCpu : null,
      brokerRssKiB: this.brokerAtEnd ? finite(this.brokerAtEnd.rssKiB) : null,
      rssPerConnKiB: fields.rssPerConnKiB ?? null,
      connections: fields.connections ?? this.clients.length,
      notes: fields.notes ?? [],
      startedAt: new Date(Date.now() - performance.now() + this.measureStartMs).toISOString(),
    };
  }

  /** Gracefully disconnects every client, a bounded number at a time. */
  async closeAll(): Promise<void> {
    this.phase = 'teardown';
    const clients = this.clients.splice(0);
    await mapLimit(clients.length, 500, async (i) => {
      const c = clients[i];
      if (c) await c.disconnect(2000);
    });
  }
}

/**
 * A publisher with a window of messages in flight: message `seq` is complete once `needed` receivers got it;
 * the publisher sends while fewer than `window` messages are incomplete.
 */
class Publisher {
  readonly id: number;
  readonly #run: Run;
  readonly #client: StompClient;
  readonly #destination: string;
  readonly #needed: number;
  readonly #window: number;
  readonly #ring: Uint32Array;
  sent = 0;
  /** The oldest incomplete message. */
  base = 0;
  stalls = 0;
  #active = false;
  #lastProgressMs = 0;

  constructor(run: Run, client: StompClient, destination: string, needed: number) {
    this.#run = run;
    this.id = run.publishers.length;
    run.publishers.push(this);
    this.#client = client;
    this.#destination = destination;
    this.#needed = needed;
    this.#window = Math.max(1, run.window);
    this.#ring = new Uint32Array(this.#window);
  }

  start(): void {
    this.#active = true;
    this.#lastProgressMs = performance.now();
    this.pump();
  }

  stop(): void {
    this.#active = false;
  }

  pump(): void {
    const max = this.#run.cfg.maxMessages;
    const size = this.#run.cfg.sizeBytes;
    while (this.#active && this.sent - this.base < this.#window && this.sent < max) {
      this.#client.send(this.#destination, makeBody(this.id, this.sent, size));
      this.sent++;
    }
  }

  /** A receiver got `seq` for the first time. */
  delivered(seq: number): void {
    if (seq < this.base || seq >= this.sent) return;
    const slot = seq % this.#window;
    this.#ring[slot] = (this.#ring[slot] ?? 0) + 1;
    if (seq === this.base) this.#advance();
  }

  #advance(): void {
    const before = this.base;
    while (this.base < this.sent) {
      const slot = this.base % this.#window;
      if ((this.#ring[slot] ?? 0) < this.#needed) break;
      this.#ring[slot] = 0;
      this.base++;
    }
    if (this.base !== before) {
      this.#lastProgressMs = performance.now();
      this.pump();
    }
  }

  /** If the window has been full for STALL_MS, give up on the oldest message (its loss shows in the result). */
  checkStall(): void {
    if (this.base >= this.sent || performance.now() - this.#lastProgressMs < STALL_MS) return;
    this.stalls++;
    if (this.stalls <= 3)
      this.#run.error(`publisher ${this.id}: message ${this.base} not delivered to all ${this.#needed} receivers within ${STALL_MS} ms`);
    this.#ring[this.base % this.#window] = 0;
    this.base++;
    this.#advance();
    this.#lastProgressMs = performance.now();
    this.pump();
  }
}

/** Totals of the trackers, as (receiver group, publisher) pairs, against what each publisher sent. */
function tally(pairs: ReadonlyArray<readonly [SeqTracker, number]>): {
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
} {
  let expected = 0;
  let delivered = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  for (const [tracker, sent] of pairs) {
    expected += sent;
    delivered += tracker.unique;
    duplicates += tracker.duplicates;
    outOfOrder += tracker.outOfOrder;
  }
  return { expected, delivered, lost: Math.max(0, expected - delivered), duplicates, outOfOrder };
}

// fanout: one publisher, many subscribers on one topic.
async function fanout(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  if ((cfg.workers ?? DEFAULT_FANOUT_WORKERS) > 0) return fanoutInWorkers(run);
  const destination = `/topic/bench.fanout.${run.uniq}`;
  const subs = await run.openMany(cfg.subscribers, (i) => run.subUrl(i));
  const pubClient = await run.open(run.pubUrl());
  const publisher = new Publisher(run, pubClient, destination, subs.length);
  const trackers = subs.map(() => new SeqTracker());
  await Promise.all(
    subs.map((sub, i) => {
      const mine = [trackers[i]];
      return sub.subscribe(
        destination,
        (frame) => {
          const s = run.receive(frame, mine);
          if (s) publisher.delivered(s.seq);
        },
        { receipt: true },
      );
    }),
  );
  cfg.log(`fanout: 1 publisher, ${subs.length} subscribers on ${destination}, window ${run.window}`);
  await run.measureClosedLoop([publisher], allDelivered);
  const t = tally(trackers.map((tr) => [tr, publisher.sent] as const));
  return run.result({ sent: publisher.sent, ...t, notes: [`${subs.length} subs`, 'subscribers in the main thread'] });
}

// fanout with the subscribers in worker threads (see fanout-workers.ts): same load, same checks.
async function fanoutInWorkers(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  const destination = `/topic/bench.fanout.${run.uniq}`;
  let publisher: Publisher | undefined;
  const client = { host: cfg.host, heartbeat: run.heartbeat, login: cfg.login, passcode: cfg.passcode };
  const pool = await SubscriberWorkers.start({
    workers: cfg.workers ?? DEFAULT_FANOUT_WORKERS,
    subscribers: cfg.subscribers,
    urlOf: (i) => run.subUrl(i),
    client,
    destination,
    publisher: run.publishers.length,
    concurrency: cfg.concurrency,
    measuring: run.measuring,
    onComplete: (seq) => publisher?.delivered(seq),
    onError: (message) => run.error(message),
  });
  try {
    const pubClient = await run.open(run.pubUrl());
    publisher = new Publisher(run, pubClient, destination, pool.size);
    cfg.log(`fanout: 1 publisher, ${cfg.subscribers} subscribers in ${pool.size} worker threads on ${destination}, window ${run.window}`);
    await run.measureClosedLoop([publisher], allDelivered);
    const reports = await pool.report();
    const sent = publisher.sent;
    let expected = 0;
    let delivered = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    for (const report of reports) {
      run.deliveredInWindow += report.deliveredInWindow;
      run.latency.merge(report.latency);
      run.badBodies += report.badBodies;
      for (const t of report.trackers) {
        expected += sent;
        delivered += t.unique;
        duplicates += t.duplicates;
        outOfOrder += t.outOfOrder;
      }
    }
    return run.result({
      sent,
      expected,
      delivered,
      lost: Math.max(0, expected - delivered),
      duplicates,
      outOfOrder,
      connections: cfg.subscribers + 1,
      notes: [`${cfg.subscribers} subs`, `${pool.size} subscriber threads`],
    });
  } finally {
    await pool.close();
  }
}

// pairs: independent publisher/subscriber pairs, each on its own topic.
async function pairs(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  const subs = await run.openMany(cfg.pairs, (i) => run.subUrl(i));
  const pubs = await run.openMany(cfg.pairs, (i) => run.pubUrl(i));
  const publishers: Publisher[] = [];
  const trackers: Array<readonly [SeqTracker, Publisher]> = [];
  for (let i = 0; i < cfg.pairs; i++) {
    const sub = subs[i];
    const pubClient = pubs[i];
    if (!sub || !pubClient) throw new Error('internal: missing pair client');
    const destination = `/topic/bench.pairs.${run.uniq}.${i}`;
    const publisher = new Publisher(run, pubClient, destination, 1);
    publishers.push(publisher);
    const tracker = new SeqTracker();
    trackers.push([tracker, publisher]);
    // The stamp's publisher id indexes this sparse array.
    const mine: Array<SeqTracker | undefined> = [];
    mine[publisher.id] = tracker;
    await sub.subscribe(
      destination,
      (frame) => {
        const s = run.receive(frame, mine);
        if (s) publisher.delivered(s.seq);
      },
      { receipt: true },
    );
  }
  cfg.log(`pairs: ${cfg.pairs} publisher/subscriber pairs, window ${run.window} each`);
  await run.measureClosedLoop(publishers, allDelivered);
  const t = tally(trackers.map(([tr, p]) => [tr, p.sent] as const));
  return run.result({ sent: sum(publishers.map((p) => p.sent)), ...t, notes: [`${cfg.pairs} pairs`] });
}

// queue: producers and client-individual consumers on one queue; every message must reach exactly one consumer.
async function queue(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  const destination = `/queue/bench.${run.uniq}`;
  const consumers = await run.openMany(cfg.consumers, (i) => run.subUrl(i));
  const producers = await run.openMany(cfg.producers, (i) => run.pubUrl(i));
  const publishers = producers.map((c) => new Publisher(run, c, destination, 1));
  // One receiver group: all consumers share one tracker per publisher.
  const trackers = publishers.map(() => new SeqTracker());
  const ack: AckMode = 'client-individual';
  let acks = 0;
  await Promise.all(
    consumers.map((consumer) =>
      consumer.subscribe(
        destination,
        (frame) => {
          consumer.ack(frame);
          acks++;
          const s = run.receive(frame, trackers);
          if (s) publishers[s.publisher]?.delivered(s.seq);
        },
        { ack, prefetchCount: cfg.prefetch, receipt: true },
      ),
    ),
  );
  cfg.log(
    `queue: ${producers.length} producers, ${consumers.length} consumers (${ack}, prefetch ${cfg.prefetch}) on ${destination}, window ${run.window}`,
  );
  await run.measureClosedLoop(publishers, allDelivered);
  const t = tally(publishers.map((p, i) => [trackers[i] ?? new SeqTracker(), p.sent] as const));
  return run.result({
    sent: sum(publishers.map((p) => p.sent)),
    ...t,
    outOfOrder: 0, // several consumers share one queue: arrival order across them means nothing
    notes: [`${producers.length}p/${consumers.length}c`, `${acks} acks`],
  });
}

// receipts: publishers that SEND with a `receipt` header, each keeping `window` SENDs awaiting their RECEIPT.
// The figure is RECEIPTs per second and SEND→RECEIPT latency: what a node sustains when every message must be
// confirmed (on a kafka route a RECEIPT means the record was acknowledged by Kafka with acks=all).
async function receipts(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  const clients = await run.openMany(cfg.publishers, (i) => run.spreadUrl(i));
  const pubs = clients.map((client, i) => new ReceiptPublisher(run, client, `/topic/bench.receipts.${run.uniq}.${i}`, i));
  cfg.log(`receipts: ${pubs.length} publishers, ${run.window} SENDs awaiting receipts each, on ${cfg.targets.length} node(s)`);
  await run.measureClosedLoop(pubs, (p) => p.inFlight === 0);
  const sent = sum(pubs.map((p) => p.sent));
  const confirmed = sum(pubs.map((p) => p.confirmed));
  const failed = sum(pubs.map((p) => p.failed));
  const measuredS = run.measuredS;
  const notes = [`${pubs.length} pubs × window ${run.window}`, `sent ${Math.round(measuredS > 0 ? run.sentInWindow / measuredS : 0)}/s`];
  if (failed > 0) notes.push(`${failed} receipts failed`);
  return run.result({
    rateUnit: 'receipt/s',
    latencyOf: 'receipt',
    sent,
    delivered: confirmed,
    expected: sent,
    lost: Math.max(0, sent - confirmed),
    duplicates: 0,
    outOfOrder: 0,
    stalls: sum(pubs.map((p) => p.stalls)),
    notes,
  });
}

/** A publisher whose SENDs each carry a receipt; at most `window` await their RECEIPT. */
class ReceiptPublisher {
  readonly #run: Run;
  readonly #client: StompClient;
  readonly #destination: string;
  readonly #id: number;
  readonly #window: number;
  sent = 0;
  confirmed = 0;
  failed = 0;
  stalls = 0;
  #active = false;
  #lastProgressMs = 0;

  constructor(run: Run, client: StompClient, destination: string, id: number) {
    this.#run = run;
    this.#client = client;
    this.#destination = destination;
    this.#id = id;
    this.#window = Math.max(1, run.window);
  }

  get inFlight(): number {
    return this.sent - this.confirmed - this.failed;
  }

  start(): void {
    this.#active = true;
    this.#lastProgressMs = performance.now();
    this.pump();
  }

  stop(): void {
    this.#active = false;
  }

  pump(): void {
    const run = this.#run;
    const max = run.cfg.maxMessages;
    while (this.#active && this.inFlight < this.#window && this.sent < max && this.#client.connected) {
      const startedMs = performance.now();
      const seq = this.sent++;
      this.#client.sendWithReceipt(this.#destination, makeBody(this.#id, seq, run.cfg.sizeBytes)).then(
        () => this.#done(startedMs),
        (err: unknown) => {
          this.failed++;
          if (this.failed <= 3) run.error(`publisher ${this.#id}: SEND ${seq}: ${errorText(err)}`);
        },
      );
    }
  }

  #done(startedMs: number): void {
    const now = performance.now();
    this.confirmed++;
    this.#lastProgressMs = now;
    if (this.#run.phase === 'measure') {
      this.#run.deliveredInWindow++;
      this.#run.latency.record((now - startedMs) * 1000);
    }
    this.pump();
  }

  /** A full window without any RECEIPT for STALL_MS is reported (once per stall period). */
  checkStall(): void {
    if (this.inFlight === 0 || performance.now() - this.#lastProgressMs < STALL_MS) return;
    this.stalls++;
    if (this.stalls <= 3) this.#run.error(`publisher ${this.#id}: no RECEIPT for ${STALL_MS} ms with ${this.inFlight} SENDs waiting`);
    this.#lastProgressMs = performance.now();
  }
}

// chat: rooms of members; every member sends at a fixed interval (staggered) and every member of the room,
// the sender included, receives. Open loop: a fixed offered load, so the latency is the figure of merit.
async function chat(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  const members = cfg.rooms * cfg.roomSize;
  const connectStart = performance.now();
  // Member m on node m mod N: the 10 members of a room sit on different nodes.
  const clients = await run.openMany(members, (m) => run.spreadUrl(m));
  const connectS = (performance.now() - connectStart) / 1000;
  const sent = new Array<number>(members).fill(0);
  // trackers[m][p]: what member m received from publisher p (only members of the same room).
  const trackers: Array<Array<SeqTracker | undefined>> = [];
  for (let m = 0; m < members; m++) trackers.push([]);
  await mapLimit(members, cfg.concurrency, async (m) => {
    const client = clients[m];
    const mine = trackers[m];
    if (!client || !mine) return;
    const room = Math.floor(m / cfg.roomSize);
    for (let p = room * cfg.roomSize; p < (room + 1) * cfg.roomSize; p++) mine[p] = new SeqTracker(16);
    await client.subscribe(`/topic/chat.room${room}.${run.uniq}`, (frame) => run.receive(frame, mine), { receipt: true });
  });
  cfg.log(
    `chat: ${members} connections in ${cfg.rooms} rooms of ${cfg.roomSize} (connected in ${connectS.toFixed(1)} s), one message per member every ${cfg.chatIntervalMs} ms`,
  );
  const timers: NodeJS.Timeout[] = [];
  let sending = true;
  const sendOne = (m: number): void => {
    const client = clients[m];
    const n = sent[m] ?? 0;
    if (!sending || !client || n >= cfg.maxMessages) return;
    const room = Math.floor(m / cfg.roomSize);
    client.send(`/topic/chat.room${room}.${run.uniq}`, makeBody(m, n, cfg.sizeBytes));
    sent[m] = n + 1;
    if (run.phase === 'measure') run.sentInWindow++;
  };
  run.phase = 'warmup';
  for (let m = 0; m < members; m++) {
    const offset = (m * cfg.chatIntervalMs) / members;
    timers.push(
      setTimeout(() => {
        sendOne(m);
        timers.push(setInterval(() => sendOne(m), cfg.chatIntervalMs));
      }, offset),
    );
  }
  const expected = (): number => sum(sent) * cfg.roomSize;
  const deliveredNow = (): number => sum(trackers.map((row) => sum(row.map((t) => t?.unique ?? 0))));
  try {
    await sleep(Math.max(cfg.warmupS * 1000, cfg.chatIntervalMs));
    run.startMeasure();
    await sleep(cfg.durationS * 1000);
    run.endMeasure();
  } finally {
    sending = false;
    for (const t of timers) clearTimeout(t);
  }
  await waitUntil(() => deliveredNow() >= expected(), cfg.drainS * 1000);
  const pairsList: Array<readonly [SeqTracker, number]> = [];
  trackers.forEach((row) => row.forEach((t, p) => t && pairsList.push([t, sent[p] ?? 0])));
  const t = tally(pairsList);
  return run.result({
    sent: sum(sent),
    ...t,
    notes: [`${members} conns`, `connect ${connectS.toFixed(1)} s`],
  });
}

// conns: many idle connections with heart-beats: connect rate, broker RSS per connection, survival while idle.
async function conns(run: Run): Promise<BenchResult> {
  const cfg = run.cfg;
  const pid = cfg.brokerPids.length > 0 ? cfg.brokerPids.join(',') : undefined;
  const before = run.sampleBrokers();
  if (pid !== undefined && !before) run.error(`cannot read /proc/{${pid}}/status (is --broker-pid right?)`);
  const connectLatency = run.latency;
  let failures = 0;
  let dropped = 0;
  let holding = false;
  // The measurement window is the connect phase: broker and client CPU are sampled around it.
  run.startMeasure();
  const t0 = performance.now();
  let lastConnectedMs = t0;
  const settled = await mapLimit(cfg.conns, cfg.concurrency, async (i) => {
    const started = performance.now();
    const client = await StompClient.connect(run.clientOptions(run.spreadUrl(i)));
    lastConnectedMs = performance.now();
    connectLatency.record((lastConnectedMs - started) * 1000);
    run.adopt(client);
    const prevClose = client.onClose;
    client.onClose = (info) => {
      if (holding && info.reason !== 'local') dropped++;
      prevClose(info);
    };
    return client;
  });
  for (const s of settled) {
    if (s.status === 'rejected') {
      failures++;
      if (failures <= 3) run.error(`connect failed: ${errorText(s.reason)}`);
    }
  }
  run.endMeasure();
  const ok = cfg.conns - failures;
  const connectS = (lastConnectedMs - t0) / 1000;
  const rate = connectS > 0 ? ok / connectS : 0;
  cfg.log(
    `conns: ${ok}/${cfg.conns} connected in ${connectS.toFixed(2)} s (${Math.round(rate)}/s), heart-beat ${run.heartbeat.join(',')}; holding ${cfg.durationS} s`,
  );
  await sleep(2000); // let the broker settle before reading its RSS
  const after = run.sampleBrokers();
  holding = true;
  const holdStartMs = performance.now();
  await sleep(cfg.durationS * 1000);
  const holdMs = performance.now() - holdStartMs;
  holding = false;
  const idle = run.sampleBrokers();
  run.phase = 'drain';
  const alive = run.clients.filter((c) => c.connected);
  const rssPerConnKiB = before && after && ok > 0 ? (after.rssKiB - before.rssKiB) / ok : null;
  const notes = [`${ok} conns`, `${alive.length} alive after ${cfg.durationS} s idle`];
  // Only meaningful if the hold outlasted the negotiated server→client heart-beat period.
  const serverBeatMs = alive[0]?.negotiatedHeartbeat.receiveMs ?? 0;
  if (serverBeatMs > 0 && holdMs > serverBeatMs * 1.2) {
    notes.push(`${alive.filter((c) => c.heartbeatsReceived > 0).length} got server heart-beats (every ${serverBeatMs} ms)`);
  } else if (run.heartbeat[1] > 0) {
    notes.push('server heart-beats not checked (hold shorter than the period, or none negotiated)');
  }
  if (rssPerConnKiB !== null && before && after) {
    notes.push(`RSS ${Math.round(before.rssKiB / 1024)}→${Math.round(after.rssKiB / 1024)} MiB`);
  }
  if (after && idle) notes.push(`idle broker CPU ${cpuPercent(after, idle).toFixed(1)}%`);
  if (failures > 0) notes.push(`${failures} connect failures`);
  return run.result({
    rate,
    rateUnit: 'conn/s',
    latencyOf: 'connect',
    sent: 0,
    delivered: 0,
    expected: 0,
    lost: dropped + failures,
    duplicates: 0,
    outOfOrder: 0,
    stalls: 0,
    rssPerConnKiB,
    connections: ok,
    notes,
  });
}

/** Runs fn(0..n-1) with at most `limit` in progress. */
async function mapLimit<R>(n: number, limit: number, fn: (i: number) => Promise<R>): Promise<Array<PromiseSettledResult<R>>> {
  const results = new Array<PromiseSettledResult<R>>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(i) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), n) }, worker));
  return results;
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

function sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

function errorText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
