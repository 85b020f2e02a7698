import { expect } from 'chai';
import type { BusCapabilities, ClusterBus, Deliver, PublishInput } from '../../broker/ports/bus.js';
import { composeHttpHandlers, type HttpHandler } from '../../broker/http.js';
import { startBroker, type TestBroker } from '../support/broker.js';
import { http, wsPort } from './http.js';

/** A bus that does nothing and reports whatever health the test sets. */
class FakeBus implements ClusterBus {
  readonly name = 'fake';
  readonly capabilities: BusCapabilities = { ordered: false, durable: false, crossNode: true };
  healthy: boolean;
  constructor(healthy: boolean) {
    this.healthy = healthy;
  }
  async start(_deliver: Deliver): Promise<void> {}
  async publish(_envelope: PublishInput): Promise<void> {}
  async watch(): Promise<void> {}
  unwatch(): void {}
  async close(): Promise<void> {}
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

  it('is not ready once shutting down', async () => {
    b = await startBroker();
    expect(b.broker.readiness().ready).to.equal(true);
    const closing = b.broker.close();
    expect(b.broker.readiness()).to.deep.equal({ ready: false, closing: true, engines: { history: true } });
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
