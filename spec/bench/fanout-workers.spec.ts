/**
 * The fanout scenario with its subscribers in worker threads (bench/fanout-workers.ts) against a real broker:
 * every delivery is counted once across threads, the closed loop needs every worker, a worker that cannot connect
 * fails the run, and latency histograms merge exactly.
 */
import { expect } from 'chai';
import { CompletionCounter } from '../../bench/fanout-workers.js';
import { runScenario, type BenchConfig } from '../../bench/scenarios.js';
import { LatencyHistogram } from '../../bench/stats.js';
import { startBroker, type TestBroker } from '../support/broker.js';

function fanoutConfig(port: number, workers: number, subscribers: number): BenchConfig {
  const target = `tcp://127.0.0.1:${port}`;
  return {
    scenario: 'fanout',
    target,
    targets: [target],
    label: 'spec',
    login: undefined,
    passcode: undefined,
    host: '/',
    durationS: 1,
    warmupS: 0.2,
    drainS: 10,
    window: undefined,
    sizeBytes: 100,
    heartbeat: undefined,
    brokerPids: [],
    trace: false,
    subscribers,
    workers,
    pairs: 1,
    rooms: 1,
    roomSize: 1,
    chatIntervalMs: 1000,
    producers: 1,
    consumers: 1,
    publishers: 1,
    prefetch: 1,
    conns: 1,
    concurrency: 10,
    maxMessages: 10_000_000,
    log: () => {},
  };
}

describe('bench fanout with subscriber worker threads', function () {
  this.timeout(60_000);
  let broker: TestBroker;

  beforeEach(async () => {
    broker = await startBroker();
  });

  afterEach(async () => {
    await broker.close();
  });

  for (const workers of [0, 3]) {
    it(`counts every delivery exactly once with ${workers} worker threads (7 subscribers)`, async () => {
      const r = await runScenario(fanoutConfig(broker.tcpPort, workers, 7));
      expect(r.errorSamples).to.deep.equal([]);
      expect(r.errors).to.equal(0);
      expect(r.sent).to.be.greaterThan(0);
      expect(r.expected).to.equal(r.sent * 7);
      expect(r.delivered).to.equal(r.expected);
      expect([r.lost, r.duplicates, r.outOfOrder, r.stalls]).to.deep.equal([0, 0, 0, 0]);
      expect(r.connections).to.equal(8);
      // Deliveries and publishes counted in the same window: seven deliveries per message, give or take the
      // messages in flight at its edges (the window is 20 messages).
      expect(r.publishRate).to.be.a('number');
      const perMessage = r.rate / (r.publishRate ?? 1);
      expect(perMessage).to.be.within(6, 8);
      expect(r.p50Ms).to.be.a('number').and.to.be.greaterThan(0);
      expect(r.maxMs).to.be.at.least(r.p50Ms ?? 0);
      if (workers > 0) expect(r.notes).to.include(`${workers} subscriber threads`);
      else expect(r.notes).to.include('subscribers in the main thread');
    });
  }

  it('uses at most one thread per subscriber', async () => {
    const r = await runScenario(fanoutConfig(broker.tcpPort, 4, 2));
    expect(r.errors).to.equal(0);
    expect(r.notes).to.include('2 subscriber threads');
    expect([r.lost, r.duplicates]).to.deep.equal([0, 0]);
    expect(r.delivered).to.equal(r.sent * 2);
  });

  it('fails the run when a worker cannot connect its subscribers', async () => {
    const closed = await startBroker();
    const port = closed.tcpPort;
    await closed.close();
    let failure: unknown;
    try {
      await runScenario(fanoutConfig(port, 2, 4));
    } catch (err) {
      failure = err;
    }
    expect(failure).to.be.instanceOf(Error);
    expect((failure as Error).message).to.match(/subscriber worker \d/);
  });
});

describe('CompletionCounter', () => {
  it('completes a message on the first delivery to its last receiver, whatever the order', () => {
    const c = new CompletionCounter(3);
    expect([c.add(5), c.add(5), c.add(7), c.add(6)]).to.deep.equal([false, false, false, false]);
    expect(c.incomplete).to.equal(3);
    expect(c.add(5)).to.equal(true);
    expect([c.add(7), c.add(6), c.add(7), c.add(6)]).to.deep.equal([false, false, true, true]);
    expect(c.incomplete).to.equal(0);
  });

  it('completes at once with a single receiver, and refuses no receivers', () => {
    expect(new CompletionCounter(1).add(0)).to.equal(true);
    expect(() => new CompletionCounter(0)).to.throw(TypeError);
  });
});

describe('LatencyHistogram snapshot and merge', () => {
  it('gives the same percentiles as one histogram that recorded everything', () => {
    const all = new LatencyHistogram();
    const parts = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()];
    for (let i = 0; i < 3000; i++) {
      const us = 1 + ((i * 7919) % 50_000);
      all.record(us);
      parts[i % 3]?.record(us);
    }
    const merged = new LatencyHistogram();
    for (const p of parts) merged.merge(p.snapshot());
    expect(merged.count).to.equal(all.count);
    expect(merged.maxUs).to.equal(all.maxUs);
    expect(merged.meanUs).to.be.closeTo(all.meanUs, 1e-6);
    for (const q of [0.01, 0.5, 0.9, 0.99, 0.999, 1]) expect(merged.quantileUs(q), `q=${q}`).to.equal(all.quantileUs(q));
  });

  it('refuses a snapshot of another bucket layout', () => {
    const h = new LatencyHistogram();
    expect(() => h.merge({ counts: new Float64Array(3), total: 1, max: 1, sum: 1 })).to.throw(TypeError);
  });
});
