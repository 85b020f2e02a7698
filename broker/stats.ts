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

export class BrokerStats {
  readonly framesIn = new Map<string, number>();
  readonly framesOut = new Map<string, number>();
  bytesIn = 0;
  bytesOut = 0;
  /** Messages accepted from clients, per route kind. */
  readonly routed = { local: 0, redis: 0, kafka: 0 };
  readonly errors = new Map<string, number>();
  slowConsumerDisconnects = 0;
  /** SEND accepted → delivered on this node, for messages that crossed a bus (ms). */
  readonly deliveryLatency = new Histogram();
  /** Time a bus took to accept a publish (ms). */
  readonly busLatency = new Histogram();
  /** Time a history read took for a replaying SUBSCRIBE (ms). */
  readonly historyLatency = new Histogram();

  frameIn(command: string): void {
    this.framesIn.set(command, (this.framesIn.get(command) ?? 0) + 1);
  }

  frameOut(command: string, n = 1): void {
    this.framesOut.set(command, (this.framesOut.get(command) ?? 0) + n);
  }

  error(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}
