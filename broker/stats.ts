/**
 * Counters the hot path can afford: plain number increments, no allocation. Metrics exporters read them when
 * scraped, so a node that nobody scrapes pays almost nothing for them.
 */
export class Histogram {
  /** Upper bounds in milliseconds, chosen to separate loopback (sub-ms), LAN and disk-bound (Kafka) latencies. */
  static readonly BUCKETS_MS = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;
  readonly counts = new Array<number>(Histogram.BUCKETS_MS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    let i = 0;
    const b = Histogram.BUCKETS_MS;
    while (i < b.length && ms > (b[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += ms;
    this.count++;
  }
}

/**
 * Every resource limit and defence that can refuse a client, as the fixed label set of
 * `stompede_limit_hits_total{limit}`: labels never come from client input, so a scan cannot grow `/metrics`.
 * Add a name here when adding a limit.
 */
export const LIMITS = [
  'connections',
  'connections-per-user',
  'subscriptions',
  'transactions',
  'transaction-bytes',
  'unacked',
  'outbound-bytes',
  'destinations',
  'history-bytes',
  'memory',
  'idle',
  'handshake',
  'auth-failures',
  'permission',
  'websocket-message',
] as const;
export type LimitName = (typeof LIMITS)[number];

/**
 * Commands a client may send, the label set of `stompede_frames_received_total{command}`. Anything else (a
 * scanner's junk) is counted as `unknown`, so client input never becomes a label value.
 */
export const CLIENT_COMMANDS: ReadonlySet<string> = new Set([
  'CONNECT',
  'STOMP',
  'SEND',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'NACK',
  'BEGIN',
  'COMMIT',
  'ABORT',
  'DISCONNECT',
]);

export class BrokerStats {
  readonly framesIn = new Map<string, number>();
  readonly framesOut = new Map<string, number>();
  bytesIn = 0;
  bytesOut = 0;
  /** Messages accepted from clients, per route kind. */
  readonly routed = { local: 0, redis: 0, kafka: 0 };
  readonly errors = new Map<string, number>();
  slowConsumerDisconnects = 0;
  /** Refusals by limit (see LIMITS); every name is present from the start, so the series exist at 0. */
  readonly limitHits = new Map<LimitName, number>(LIMITS.map((name) => [name, 0]));
  /** SEND accepted → delivered on this node, for messages that crossed a bus (ms). */
  readonly deliveryLatency = new Histogram();
  /** Time a bus took to accept a publish (ms). */
  readonly busLatency = new Histogram();
  /** Time a history read took for a replaying SUBSCRIBE (ms). */
  readonly historyLatency = new Histogram();

  frameIn(command: string): void {
    const label = CLIENT_COMMANDS.has(command) ? command : 'unknown';
    this.framesIn.set(label, (this.framesIn.get(label) ?? 0) + 1);
  }

  frameOut(command: string, n = 1): void {
    this.framesOut.set(command, (this.framesOut.get(command) ?? 0) + n);
  }

  limitHit(name: LimitName): void {
    this.limitHits.set(name, (this.limitHits.get(name) ?? 0) + 1);
  }

  error(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}
