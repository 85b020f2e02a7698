// Failover of the kafka route: how long a kill -9 of one node of a three-node cluster stalls delivery on the
// nodes that survive it. Used by spec/cluster/failover.spec.ts (assertions) and by `bench/cluster.sh` (the
// `failover` scenario: figures over more kills).
//
//   node dist/bench/failover.js [--kills 10] [--destinations 10] [--interval-ms 20] [--json out.json]
//        [--node-args='--kafka-session-timeout-ms 3000 --kafka-heartbeat-interval-ms 500'] [--history memory]
//
// Needs the test services in the environment (STOMPEDE_TEST_REDIS_URL, STOMPEDE_TEST_KAFKA_BROKERS,
// STOMPEDE_TEST_MONGO_URL, as infra/services.sh writes them to .services/env); starts and ends its own nodes.
//
// One kill: subscribers on every node (one wildcard subscription each), one publisher per destination on a node
// that is not the victim, each SEND with a receipt, one at a time. The destinations are chosen so that their Kafka
// partitions cover every partition of the topic: whichever node dies, some of them were its partitions. Once
// messages flow, the victim gets SIGKILL at time K. A survivor has failed over when every destination has
// delivered to it a message sent at or after K: its figure is the arrival of the last such first message, minus K
// (the destinations of the dead node's partitions come last). Also reported: the longest any message sent after K
// waited on a survivor (the group rebalance stops every partition for a moment, not only the dead node's).
// Publishing goes on for a while, stops, and every receipted message must then have reached each survivor exactly
// once, in order per destination. The victim is started again before the next kill (victims rotate over the
// nodes; publishers sit on the node after the victim).

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Partitioners } from 'kafkajs';
import { KAFKA_BUS_DEFAULTS } from '../bridge/kafka-bus.js';
import { ClientPool, sequenceProblems, type Received, type Subscription } from '../spec/cluster/clients.js';
import { Publisher, seqOf } from '../spec/cluster/flow.js';
import { StompedeCluster, routesFor, sleep, uniqueRunName, type StompedeNode } from '../spec/support/cluster.js';
import { waitQuiet } from '../spec/support/timing.js';

export interface FailoverOptions {
  readonly cluster: StompedeCluster;
  readonly kills: number;
  /** Kafka-routed topic destinations published to (default 10). */
  readonly destinations?: number;
  /** Pause of each publisher between a RECEIPT and its next SEND (default 20 ms). */
  readonly intervalMs?: number;
  /** Publishing after the kill once every survivor failed over (default 1,000 ms). */
  readonly afterMs?: number;
  /** A survivor that has not failed over by then fails the kill (default 30 s). */
  readonly failoverTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface KillResult {
  readonly kill: number;
  readonly victim: string;
  /** Kill to "every destination delivers again", per surviving node (ms). */
  readonly survivors: Readonly<Record<string, number>>;
  /** The slowest survivor of this kill (ms). */
  readonly failoverMs: number;
  /** The longest a message sent after the kill took to reach a survivor (ms). */
  readonly maxLatencyMs: number;
  readonly receipted: number;
  /** SENDs that got no RECEIPT (the publishers sit on a survivor: expected 0). */
  readonly unreceipted: number;
  /** Lost, duplicated or reordered messages on the survivors (empty when all is well). */
  readonly problems: readonly string[];
}

export interface FailoverResult {
  readonly kills: readonly KillResult[];
  /** Over the kills' `failoverMs`. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The longest a message sent after a kill took to reach a survivor, over all kills (ms). */
  readonly maxLatencyMs: number;
  readonly problems: readonly string[];
}

/** Nearest-rank percentile of `values` (0 for none). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

let runSeq = 0;

/** Kills nodes one at a time (restarting each before the next kill) and measures every failover. */
export async function measureFailover(options: FailoverOptions): Promise<FailoverResult> {
  const kills: KillResult[] = [];
  for (let k = 0; k < options.kills; k++) {
    const result = await killOnce(options, k);
    kills.push(result);
    const resumed = Object.entries(result.survivors).map(([n, ms]) => `${n} resumed after ${ms} ms`);
    const problems = result.problems.length > 0 ? `; ${result.problems.length} problems` : '';
    options.log?.(
      `kill ${k + 1}/${options.kills}: ${result.victim} down; ${resumed.join(', ')}; longest wait ${result.maxLatencyMs} ms; ` +
        `${result.receipted} receipted${problems}`,
    );
  }
  const figures = kills.map((r) => r.failoverMs);
  return {
    kills,
    p50Ms: percentile(figures, 50),
    p99Ms: percentile(figures, 99),
    maxMs: Math.max(0, ...figures),
    maxLatencyMs: Math.max(0, ...kills.map((r) => r.maxLatencyMs)),
    problems: kills.flatMap((r) => r.problems.map((p) => `kill ${r.kill + 1} (${r.victim}): ${p}`)),
  };
}

async function killOnce(options: FailoverOptions, k: number): Promise<KillResult> {
  const c = options.cluster;
  const count = options.destinations ?? 10;
  const victim = c.node(k % c.nodes.length);
  const publishOn = c.node((k + 1) % c.nodes.length);
  const base = `/topic/failover${(++runSeq).toString(36)}${Date.now().toString(36)}`;
  const destinations = coveringDestinations(base, count, KAFKA_BUS_DEFAULTS.partitions);
  const indexOf = new Map(destinations.map((d, i) => [d, i]));
  const pool = new ClientPool();
  const publishers: Publisher[] = [];
  try {
    const subs = new Map<StompedeNode, Subscription>();
    for (const n of c.nodes) subs.set(n, await (await pool.stompit(n)).subscribe(`${base}.*`));
    for (const [d, destination] of destinations.entries()) {
      publishers.push(
        new Publisher({
          connect: () => pool.stompit(publishOn),
          destination,
          prefix: `k${k}d${d}`,
          intervalMs: options.intervalMs ?? 20,
          receiptTimeoutMs: 30_000,
        }).start(),
      );
    }
    const survivors = c.nodes.filter((n) => n !== victim);
    // Flowing: every survivor has had a message of every destination.
    const everyDestination = (sub: Subscription, since: (d: number) => number): boolean => {
      const todo = new Set(publishers.map((_, d) => d));
      for (const m of sub.inbox.messages) {
        const d = indexOf.get(m.headers.destination ?? '');
        if (d !== undefined && seqOf(m.body) >= since(d)) todo.delete(d);
        if (todo.size === 0) return true;
      }
      return false;
    };
    await Promise.all(
      survivors.map((n) =>
        (subs.get(n) as Subscription).inbox.until(
          () => everyDestination(subs.get(n) as Subscription, () => 0),
          30_000,
          `${n.id}: every destination flowing`,
        ),
      ),
    );
    const killedAt = Date.now();
    await c.kill9(victim);
    // The first SEND of each destination at or after the kill (its seq), once the publisher has made it.
    const firstAfter = (d: number): number => {
      const r = (publishers[d] as Publisher).records.find((x) => x.sentAt >= killedAt);
      return r === undefined ? Number.POSITIVE_INFINITY : r.seq;
    };
    const timeoutMs = options.failoverTimeoutMs ?? 30_000;
    const resumed: Record<string, number> = {};
    await Promise.all(
      survivors.map(async (n) => {
        const sub = subs.get(n) as Subscription;
        // Checked on every arrival: the inbox's waiter sees the message that closes the gap as it lands.
        await sub.inbox.until(() => everyDestination(sub, firstAfter), timeoutMs, `${n.id}: every destination after the kill`);
        resumed[n.id] = resumeTime(sub, indexOf, firstAfter) - killedAt;
      }),
    );
    await sleep(options.afterMs ?? 1_000);
    await Promise.all(publishers.map((p) => p.stop()));
    const problems: string[] = [];
    for (const n of survivors) {
      const sub = subs.get(n) as Subscription;
      const sent = publishers.flatMap((p) => p.receipted());
      await sub.inbox
        .until(() => hasAll(sub, sent), 60_000, `${n.id}: every receipted message`)
        .catch((error: unknown) => problems.push(String(error)));
    }
    await waitQuiet(300);
    for (const n of survivors) {
      const sub = subs.get(n) as Subscription;
      for (const p of publishers) {
        const got = sub.inbox.messages.filter((m) => m.headers.destination === p.destination).map((m) => m.body);
        problems.push(...sequenceProblems(got, p.receipted(), `${n.id} ${p.destination}`));
      }
    }
    const all = publishers.flatMap((p) => p.records);
    const unreceipted = all.filter((r) => r.outcome !== 'receipt');
    for (const r of unreceipted.slice(0, 5)) problems.push(`SEND "${r.body}" on ${r.node}: ${r.outcome}`);
    const figures = Object.values(resumed);
    // How long each message sent after the kill took to arrive, on each survivor.
    const sentAt = new Map(all.filter((r) => r.sentAt >= killedAt).map((r) => [r.body, r.sentAt]));
    const waits = survivors.flatMap((n) =>
      (subs.get(n) as Subscription).inbox.messages.map((m: Received) => m.at - (sentAt.get(m.body) ?? m.at)),
    );
    return {
      kill: k,
      victim: victim.id,
      survivors: resumed,
      failoverMs: Math.max(...figures),
      maxLatencyMs: Math.max(0, ...waits),
      receipted: all.length - unreceipted.length,
      unreceipted: unreceipted.length,
      problems,
    };
  } finally {
    await Promise.all(publishers.map((p) => p.stop()));
    await pool.closeAll();
    // Started again before the next kill: its start resolves once it is ready, i.e. it has joined the group.
    if (!victim.running) await victim.start();
  }
}

/**
 * `count` destinations `<base>.d<i>` whose Kafka partitions (the record key is the destination, partitioned as our
 * producer does) cover all `partitions` when count allows: then every node owns some of them.
 */
export function coveringDestinations(base: string, count: number, partitions: number): string[] {
  const partitionOf = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 0,
    replicas: [0],
    isr: [0],
  }));
  const covered = new Set<number>();
  const chosen: string[] = [];
  const others: string[] = [];
  for (let i = 0; chosen.length < count && i < 10_000; i++) {
    const destination = `${base}.d${i}`;
    const partition = partitionOf({ topic: 't', partitionMetadata, message: { key: destination, value: null } });
    if (covered.has(partition) && covered.size < Math.min(partitions, count)) others.push(destination);
    else {
      covered.add(partition);
      chosen.push(destination);
    }
  }
  return [...chosen, ...others].slice(0, count);
}

/** When the last destination's first message sent after the kill arrived. */
function resumeTime(sub: Subscription, indexOf: ReadonlyMap<string, number>, firstAfter: (d: number) => number): number {
  const firstArrival = new Map<number, number>();
  for (const m of sub.inbox.messages) {
    const d = indexOf.get(m.headers.destination ?? '');
    if (d !== undefined && !firstArrival.has(d) && seqOf(m.body) >= firstAfter(d)) firstArrival.set(d, m.at);
  }
  return Math.max(...firstArrival.values());
}

function hasAll(sub: Subscription, sent: readonly string[]): boolean {
  const got = new Set(sub.inbox.bodies());
  return sent.every((b) => got.has(b));
}

// ---- CLI -------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    strict: true,
    options: {
      kills: { type: 'string', default: '10' },
      destinations: { type: 'string', default: '10' },
      'interval-ms': { type: 'string', default: '20' },
      'node-args': { type: 'string', default: '' },
      history: { type: 'string', default: 'mongo' },
      json: { type: 'string' },
    },
  });
  const name = uniqueRunName('bench-failover');
  const nodeArgs = values['node-args'].split(/\s+/).filter((a) => a !== '');
  const started = Date.now();
  const cluster = await StompedeCluster.start({
    name: 'bench-failover',
    // --history memory (diagnosis only): no MongoDB, to tell the history store's share of the failover time.
    engines: values.history === 'memory' ? ['redis', 'kafka'] : ['redis', 'kafka', 'mongo'],
    routes: (clusterName) => routesFor('kafka', clusterName),
    args: nodeArgs,
  });
  const log = (line: string): void => void process.stderr.write(`failover: ${line}\n`);
  log(`cluster ${cluster.name} ready in ${Date.now() - started} ms (node logs in ${cluster.artifactDir}); run ${name}`);
  try {
    const result = await measureFailover({
      cluster,
      kills: Number(values.kills),
      destinations: Number(values.destinations),
      intervalMs: Number(values['interval-ms']),
      log,
    });
    const receipted = result.kills.reduce((s, r) => s + r.receipted, 0);
    process.stdout.write(
      `| failover (kafka ×3) | ${result.kills.length} kills | p50 ${result.p50Ms} ms | p99 ${result.p99Ms} ms | ` +
        `max ${result.maxMs} ms | ` +
        `longest wait ${result.maxLatencyMs} ms | ` +
        `${receipted} receipted, ${result.problems.length} problems |\n`,
    );
    for (const p of result.problems.slice(0, 20)) log(`problem: ${p}`);
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ nodeArgs, ...result }, null, 2)}\n`);
    process.exitCode = result.problems.length > 0 ? 1 : 0;
  } finally {
    await cluster.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`failover: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
