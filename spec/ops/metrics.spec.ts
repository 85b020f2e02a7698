import { expect } from 'chai';
import type { PublishInput } from '../../broker/ports/bus.js';
import { MemoryBus } from '../../bridge/memory-bus.js';
import { brokerMetrics } from '../../broker/metrics.js';
import { SERVER_VERSION } from '../../broker/version.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { RawClient, connect, stompFrame, type RawClient as Client, type RawFrame } from '../support/raw.js';
import { delta, metricTypes, scrape, wsPort, type Samples } from './http.js';

const CONNECT_HEADERS = { 'accept-version': '1.2', host: 'localhost' };

/** A TCP client that remembers how many bytes it sent, so specs can check the broker's byte counters exactly. */
class CountingClient {
  sent = 0;
  constructor(readonly raw: Client) {}

  static async open(port: number): Promise<CountingClient> {
    const c = new CountingClient(await RawClient.tcp(port));
    c.sent += stompFrame('CONNECT', CONNECT_HEADERS).length;
    await connect(c.raw, CONNECT_HEADERS);
    return c;
  }

  send(command: string, headers: Record<string, string>, body = ''): void {
    const bytes = stompFrame(command, headers, body);
    this.sent += bytes.length;
    this.raw.send(bytes);
  }

  async frames(n: number): Promise<RawFrame[]> {
    const out: RawFrame[] = [];
    for (let i = 0; i < n; i++) out.push(await this.raw.nextFrame());
    return out;
  }
}

async function until(check: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function histogramOf(samples: Samples, name: string): { buckets: number[]; inf: number; sum: number; count: number } {
  const buckets: number[] = [];
  for (const [key, value] of samples) if (key.startsWith(`${name}_bucket{`) && !key.includes('+Inf')) buckets.push(value);
  return {
    buckets,
    inf: samples.get(`${name}_bucket{le="+Inf"}`) ?? NaN,
    sum: samples.get(`${name}_sum`) ?? NaN,
    count: samples.get(`${name}_count`) ?? NaN,
  };
}

const BUS_DELAY_MS = 30;

/** A MemoryBus that takes BUS_DELAY_MS to accept each publish: latencies with a known floor, to tell s from ms. */
class DelayedBus extends MemoryBus {
  override async publish(envelope: PublishInput): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, BUS_DELAY_MS));
    await super.publish(envelope);
  }
}

/** The documented bucket boundaries of every latency histogram, in seconds (0.25 ms to 10 s). */
const LE_SECONDS = [0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The `le` labels of a histogram's buckets, in exposition order. */
function bucketBounds(samples: Samples, name: string): string[] {
  const out: string[] = [];
  for (const key of samples.keys()) {
    const m = key.startsWith(`${name}_bucket{`) ? /le="([^"]*)"/.exec(key) : null;
    if (m !== null) out.push(m[1] as string);
  }
  return out;
}

describe('ops › metrics', () => {
  let b: TestBroker;
  const clients: CountingClient[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.raw.close();
    await b?.close();
  });

  it('serves the broker metrics and the process metrics as Prometheus text', async () => {
    b = await startBroker();
    const { text, samples } = await scrape(wsPort(b));
    const types = metricTypes(text);
    const expected: Record<string, string> = {
      stompede_info: 'gauge',
      stompede_connections: 'gauge',
      stompede_sessions: 'gauge',
      stompede_engine_up: 'gauge',
      stompede_frames_received_total: 'counter',
      stompede_frames_sent_total: 'counter',
      stompede_received_bytes_total: 'counter',
      stompede_sent_bytes_total: 'counter',
      stompede_messages_routed_total: 'counter',
      stompede_errors_total: 'counter',
      stompede_slow_consumer_disconnects_total: 'counter',
      stompede_delivery_latency_seconds: 'histogram',
      stompede_bus_publish_latency_seconds: 'histogram',
      stompede_history_read_latency_seconds: 'histogram',
      // prom-client's default process metrics
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) expect(types.get(name), name).to.equal(type);
    expect(samples.get(`stompede_info{cluster="stompede",node="${b.broker.nodeId}",version="${SERVER_VERSION}"}`)).to.equal(1);
    expect(samples.get('stompede_engine_up{engine="history"}')).to.equal(1);
    expect(samples.get('stompede_slow_consumer_disconnects_total')).to.equal(0);
    for (const route of ['local', 'redis', 'kafka']) expect(samples.get(`stompede_messages_routed_total{route="${route}"}`)).to.equal(0);
  });

  it('counts frames, bytes, routed messages, errors and history reads exactly', async () => {
    b = await startBroker();
    const port = wsPort(b);
    const topic = `/topic/${uniqueName('metrics')}`;
    const before = (await scrape(port)).samples;

    const c1 = await CountingClient.open(b.tcpPort);
    clients.push(c1);
    c1.send('SUBSCRIBE', { id: 's1', destination: topic, 'x-history': '0', receipt: 'r1' });
    expect((await c1.frames(1)).map((f) => f.command)).to.deep.equal(['RECEIPT']);
    c1.send('SEND', { destination: topic, receipt: 'r2' }, 'hello');
    expect((await c1.frames(2)).map((f) => f.command).sort()).to.deep.equal(['MESSAGE', 'RECEIPT']);

    const c2 = await CountingClient.open(b.tcpPort);
    clients.push(c2);
    c2.send('SUBSCRIBE', { id: 's2' }); // no destination: ERR_MISSING_HEADER, then the broker closes
    expect((await c2.frames(1))[0]?.command).to.equal('ERROR');
    await c2.raw.closed();
    await until(() => b.broker.sessions.size === 1, 'the failed session to leave');

    const after = (await scrape(port)).samples;
    const d = (name: string, labels: Record<string, string> = {}): number => delta(before, after, name, labels);
    expect(d('stompede_frames_received_total', { command: 'CONNECT' })).to.equal(2);
    expect(d('stompede_frames_received_total', { command: 'SUBSCRIBE' })).to.equal(2);
    expect(d('stompede_frames_received_total', { command: 'SEND' })).to.equal(1);
    expect(d('stompede_frames_sent_total', { command: 'CONNECTED' })).to.equal(2);
    expect(d('stompede_frames_sent_total', { command: 'RECEIPT' })).to.equal(2);
    expect(d('stompede_frames_sent_total', { command: 'MESSAGE' })).to.equal(1);
    expect(d('stompede_frames_sent_total', { command: 'ERROR' })).to.equal(1);
    expect(d('stompede_received_bytes_total')).to.equal(c1.sent + c2.sent);
    expect(d('stompede_sent_bytes_total')).to.equal(c1.raw.rawBytes.length + c2.raw.rawBytes.length);
    expect(d('stompede_messages_routed_total', { route: 'local' })).to.equal(1);
    expect(d('stompede_messages_routed_total', { route: 'redis' })).to.equal(0);
    expect(d('stompede_errors_total', { code: 'ERR_MISSING_HEADER' })).to.equal(1);
    expect(d('stompede_history_read_latency_seconds_count')).to.equal(1);
    expect(d('stompede_history_read_latency_seconds_bucket', { le: '+Inf' })).to.equal(1);
    expect(d('stompede_bus_publish_latency_seconds_count')).to.equal(0);
    expect(after.get('stompede_sessions{transport="tcp",version="1.2"}')).to.equal(1);
    expect(after.get('stompede_connections{transport="tcp"}')).to.equal(1);

    // Collected at scrape time from the same counters: scraping again adds nothing.
    const again = (await scrape(port)).samples;
    for (const name of [
      'stompede_frames_received_total{command="CONNECT"}',
      'stompede_received_bytes_total',
      'stompede_errors_total{code="ERR_MISSING_HEADER"}',
    ]) {
      expect(again.get(name), name).to.equal(after.get(name));
    }
  });

  it('exports bus publish and delivery latencies as cumulative histograms in seconds', async () => {
    b = await startBroker({}, { fanout: new DelayedBus() });
    const port = wsPort(b);
    const topic = `/topic/${uniqueName('bus')}`;
    const before = (await scrape(port)).samples;
    const c = await CountingClient.open(b.tcpPort);
    clients.push(c);
    c.send('SUBSCRIBE', { id: 's1', destination: topic, receipt: 'r1' });
    await c.frames(1);
    // Every observation lies inside this window, so it bounds each one, in seconds.
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) c.send('SEND', { destination: topic, receipt: `p${i}` }, `m${i}`);
    const frames = await c.frames(6);
    const wallSeconds = (performance.now() - t0) / 1000;
    expect(frames.filter((f) => f.command === 'MESSAGE')).to.have.length(3);

    const after = (await scrape(port)).samples;
    expect(delta(before, after, 'stompede_messages_routed_total', { route: 'redis' })).to.equal(3);
    expect(after.get('stompede_engine_up{engine="fanout"}')).to.equal(1);
    for (const name of ['stompede_bus_publish_latency_seconds', 'stompede_delivery_latency_seconds']) {
      const h = histogramOf(after, name);
      expect(h.count, name).to.equal(3);
      expect(h.inf, name).to.equal(3);
      // Units: a histogram fed milliseconds would have a sum 1000 times too large, and its observations would land
      // in buckets far above the window (a 2 ms delivery counted as "2" sits under le="2.5", not le="0.005").
      // The broker observes whole milliseconds (Date.now), so each reading may be up to 1 ms off either way.
      const most = wallSeconds + 0.001;
      expect(h.sum, `${name}: 3 observations, each within the ${wallSeconds} s window and at least the bus delay`)
        .to.be.at.least((3 * (BUS_DELAY_MS - 1)) / 1000)
        .and.at.most(3 * most);
      const le = LE_SECONDS.find((b) => b >= most);
      if (le !== undefined) expect(after.get(`${name}_bucket{le="${le}"}`), `${name}: all 3 under le=${le}`).to.equal(3);
      expect(bucketBounds(after, name), `${name}: bucket boundaries in seconds`).to.deep.equal([...LE_SECONDS.map(String), '+Inf']);
      expect(h.buckets, name).to.have.length(15);
      for (let i = 1; i < h.buckets.length; i++) expect(h.buckets[i], name).to.be.at.least(h.buckets[i - 1] as number);
    }
    // The JSON form of the registry reads the same histogram.
    const json = await brokerMetrics(b.broker).registry.getMetricsAsJSON();
    const delivery = json.find((m) => m.name === 'stompede_delivery_latency_seconds');
    const count = delivery?.values.find((v) => (v as { metricName?: string }).metricName === 'stompede_delivery_latency_seconds_count');
    expect(count?.value).to.equal(3);
  });
});
