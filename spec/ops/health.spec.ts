import { expect } from 'chai';
import type { BusCapabilities, ClusterBus, Deliver, PublishInput } from '../../broker/ports/bus.js';
import type { SharedQueueMessage, SharedQueues } from '../../broker/ports/queues.js';
import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { createBroker, listen, type Broker, type BrokerOptions } from '../../broker/index.js';
import { composeHttpHandlers, type HttpHandler } from '../../broker/http.js';
import { startBroker, type TestBroker } from '../support/broker.js';
import { connect, RawClient } from '../support/raw.js';
import { freePort } from './cli.js';
import { http, parseSamples, wsPort } from './http.js';

/** A bus that does nothing and reports whatever health the test sets; `start` waits for `started` when given. */
class FakeBus implements ClusterBus {
  readonly name = 'fake';
  readonly capabilities: BusCapabilities = { ordered: false, durable: false, crossNode: true };
  healthy: boolean;
  readonly #started: Promise<void> | undefined;
  constructor(healthy: boolean, started?: Promise<void>) {
    this.healthy = healthy;
    this.#started = started;
  }
  async start(_deliver: Deliver): Promise<void> {
    await this.#started;
  }
  async publish(_envelope: PublishInput): Promise<void> {}
  async watch(): Promise<void> {}
  unwatch(): void {}
  async close(): Promise<void> {}
}

/** Shared queues that hold nothing and report whatever health the test sets. */
class FakeQueues implements SharedQueues {
  readonly name = 'fake';
  healthy: boolean;
  constructor(healthy: boolean) {
    this.healthy = healthy;
  }
  async start(): Promise<void> {}
  async push(): Promise<void> {}
  attach(): void {}
  detach(): void {}
  async take(): Promise<SharedQueueMessage[]> {
    return [];
  }
  async ack(): Promise<void> {}
  async requeue(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Engines for a broker with exactly `role` down. */
function oneEngineDown(role: 'fanout' | 'queues' | 'log'): Omit<BrokerOptions, 'config'> {
  switch (role) {
    case 'fanout':
      return { fanout: new FakeBus(false) };
    case 'queues':
      return { fanout: new FakeBus(true), queues: new FakeQueues(false) };
    case 'log':
      return { log: new FakeBus(false), routes: [{ pattern: '/**', kind: 'kafka', target: 'readiness' }] };
  }
}

describe('ops › health and readiness', () => {
  let b: TestBroker | undefined;
  afterEach(async () => {
    await b?.close();
    b = undefined;
  });

  it('answers /healthz with 200 while the process runs', async () => {
    b = await startBroker();
    const reply = await http(wsPort(b), '/healthz');
    expect(reply.status).to.equal(200);
    expect(reply.body).to.equal('ok\n');
    expect((await http(wsPort(b), '/healthz?probe=1')).status).to.equal(200);
  });

  it('is ready with no cluster engine configured (in-memory history only)', async () => {
    b = await startBroker();
    const reply = await http(wsPort(b), '/readyz');
    expect(reply.status).to.equal(200);
    expect(reply.headers['content-type']).to.equal('application/json');
    const body = JSON.parse(reply.body) as { memory: { rssBytes: number; watermarkBytes: number; alarm: boolean } };
    expect(body).to.deep.include({ ready: true, closing: false, engines: { history: true }, down: [] });
    // Memory is reported, never a reason to be unready.
    expect(body.memory.alarm).to.equal(false);
    expect(body.memory.rssBytes).to.be.above(0).and.below(body.memory.watermarkBytes);
  });

  it('answers /readyz with 503 naming the engine that is down, and 200 once it is back', async () => {
    const fanout = new FakeBus(false);
    b = await startBroker({}, { fanout });
    const down = await http(wsPort(b), '/readyz');
    expect(down.status).to.equal(503);
    expect(JSON.parse(down.body)).to.deep.include({
      ready: false,
      closing: false,
      engines: { fanout: false, history: true },
      down: ['fanout'],
    });
    expect((await http(wsPort(b), '/healthz')).status, 'liveness does not follow the engines').to.equal(200);

    fanout.healthy = true;
    const up = await http(wsPort(b), '/readyz');
    expect(up.status).to.equal(200);
    expect(JSON.parse(up.body)).to.deep.include({ ready: true, down: [] });
  });

  it('stays ready through a history store outage, which shows in /readyz detail and stompede_engine_up', async () => {
    const history = new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0 });
    let healthy = false;
    Object.defineProperty(history, 'healthy', { get: () => healthy });
    b = await startBroker({}, { history });
    const reply = await http(wsPort(b), '/readyz');
    expect(reply.status, 'MongoDB is shared by every node: failing on it would empty the load balancer').to.equal(200);
    expect(JSON.parse(reply.body)).to.deep.include({ ready: true, state: 'ready', engines: { history: false }, down: ['history'] });
    const metrics = parseSamples((await http(wsPort(b), '/metrics')).body);
    expect(metrics.get('stompede_engine_up{engine="history"}')).to.equal(0);
    healthy = true;
    expect(JSON.parse((await http(wsPort(b), '/readyz')).body)).to.deep.include({ ready: true, down: [] });
  });

  for (const role of ['fanout', 'queues', 'log'] as const) {
    it(`is not ready while the ${role} engine, which carries SENDs, is down`, async () => {
      b = await startBroker({}, oneEngineDown(role));
      const reply = await http(wsPort(b), '/readyz');
      expect(reply.status).to.equal(503);
      expect(JSON.parse(reply.body)).to.deep.include({ ready: false, state: 'engine-down', down: [role] });
    });
  }

  it('answers 503 "starting" on the ops port until the engines are up, before any client listener opens', async () => {
    let release = (): void => {};
    const fanout = new FakeBus(true, new Promise<void>((resolve) => (release = resolve)));
    const [opsPort, port] = [await freePort(), await freePort()];
    const broker: Broker = await createBroker({ config: { host: '127.0.0.1', port, wsPort: -1, opsPort }, fanout });
    const listening = listen(broker);
    try {
      let reply = await http(opsPort, '/readyz').catch(() => undefined);
      for (let i = 0; reply === undefined && i < 200; i++) {
        await new Promise((r) => setTimeout(r, 25));
        reply = await http(opsPort, '/readyz').catch(() => undefined);
      }
      expect(reply?.status).to.equal(503);
      expect(JSON.parse(reply?.body ?? '{}')).to.deep.include({ ready: false, state: 'starting' });
      expect((await http(opsPort, '/healthz')).status, 'alive while starting').to.equal(200);
      const early = await RawClient.tcp(port).then(
        (c) => (c.close(), 'connected'),
        (error: NodeJS.ErrnoException) => error.code,
      );
      expect(early, 'no client listener before the engines are up').to.equal('ECONNREFUSED');
      release();
      await listening;
      expect((await http(opsPort, '/readyz')).status).to.equal(200);
    } finally {
      release();
      await listening.catch(() => undefined);
      await broker.close();
    }
  });

  it('closes the ops listener again when the engines fail to start', async () => {
    const failing = Promise.reject(new Error('no Redis today'));
    failing.catch(() => undefined); // awaited by start(), later: not an unhandled rejection meanwhile
    const fanout = new FakeBus(true, failing);
    const opsPort = await freePort();
    const broker = await createBroker({ config: { host: '127.0.0.1', port: 0, wsPort: -1, opsPort }, fanout });
    try {
      const failed = await listen(broker).then(
        () => 'listening',
        (error: Error) => error.message,
      );
      expect(failed).to.equal('no Redis today');
      const probe = await http(opsPort, '/healthz').then(
        (r) => String(r.status),
        (error: NodeJS.ErrnoException) => error.code,
      );
      expect(probe, 'nothing left listening: an embedder may retry on the same port').to.equal('ECONNREFUSED');
    } finally {
      await broker.close();
    }
  });

  it('answers 503 "draining" after drain() while every listener keeps serving new clients', async () => {
    b = await startBroker({ opsPort: 0 });
    const ops = b.addresses.ops?.port ?? 0;
    b.broker.drain();
    const reply = await http(ops, '/readyz');
    expect(reply.status).to.equal(503);
    expect(JSON.parse(reply.body)).to.deep.include({ ready: false, state: 'draining', closing: false });
    expect((await http(ops, '/healthz')).status).to.equal(200);
    const c = await RawClient.tcp(b.tcpPort);
    try {
      expect((await connect(c)).command).to.equal('CONNECTED');
    } finally {
      c.close();
    }
  });

  it('is not ready once shutting down', async () => {
    b = await startBroker();
    expect(b.broker.readiness().ready).to.equal(true);
    const closing = b.broker.close();
    expect(b.broker.readiness()).to.deep.equal({ ready: false, state: 'closing', closing: true, engines: { history: true } });
    await closing;
  });

  it('answers only GET and HEAD on its paths, and 404 elsewhere', async () => {
    b = await startBroker();
    const post = await http(wsPort(b), '/metrics', 'POST');
    expect(post.status).to.equal(405);
    expect(post.headers.allow).to.equal('GET, HEAD');
    const head = await http(wsPort(b), '/readyz', 'HEAD');
    expect(head.status).to.equal(200);
    expect(head.body).to.equal('');
    expect((await http(wsPort(b), '/nothing-here')).status).to.equal(404);
  });

  it('tries extra handlers in order after its own paths, which they cannot shadow', async () => {
    const seen: string[] = [];
    const page: HttpHandler = (request, response) => {
      seen.push(request.url ?? '');
      if (request.url !== '/' && request.url !== '/healthz') return false;
      response.writeHead(200, { 'content-type': 'text/html' }).end('<p>chat</p>');
      return true;
    };
    const never: HttpHandler = () => {
      throw new Error('not reached: an earlier handler answered');
    };
    b = await startBroker({}, { httpHandlers: [composeHttpHandlers([page]), never] });
    const root = await http(wsPort(b), '/');
    expect(root.status).to.equal(200);
    expect(root.body).to.equal('<p>chat</p>');
    expect((await http(wsPort(b), '/healthz')).body).to.equal('ok\n');
    expect(seen).to.deep.equal(['/']);
  });
});
