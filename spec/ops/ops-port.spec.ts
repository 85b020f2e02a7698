/**
 * `opsPort`: `/metrics`, `/healthz` and `/readyz` on a plain-HTTP listener of their own (15692 by default), and
 * only there; with -1 they stay on the WebSocket port exactly as before (embedders and most specs use that).
 */
import { expect } from 'chai';
import { connect as netConnect } from 'node:net';
import type { HttpHandler } from '../../broker/http.js';
import { ConfigError, DEFAULT_CONFIG, loadConfig } from '../../broker/config.js';
import { connect, RawClient } from '../support/raw.js';
import { startBroker, type TestBroker } from '../support/broker.js';
import { RunningCli } from './cli.js';
import { http, parseSamples, wsPort } from './http.js';

const OPS = ['/metrics', '/healthz', '/readyz'] as const;

/** Resolves with the socket error code of a TCP connect to 127.0.0.1:port, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function opsPortOf(b: TestBroker): number {
  const ops = b.addresses.ops;
  if (ops === undefined) throw new Error('the broker has no ops listener');
  return ops.port;
}

describe('ops › the ops port (opsPort)', () => {
  let b: TestBroker | undefined;
  afterEach(async () => {
    await b?.close();
    b = undefined;
  });

  it("defaults to 15692, as RabbitMQ's Prometheus port", () => {
    expect(DEFAULT_CONFIG.opsPort).to.equal(15692);
    expect(loadConfig().opsPort).to.equal(15692);
  });

  it('with -1 opens no ops listener and keeps the three endpoints on the WebSocket port', async () => {
    b = await startBroker({ opsPort: -1 });
    expect(b.broker.config.opsPort).to.equal(-1);
    expect(b.addresses.ops).to.equal(undefined);
    for (const path of OPS) expect([path, (await http(wsPort(b), path)).status]).to.deep.equal([path, 200]);
  });

  it('with 0 listens on a free port of `host`, serves the three endpoints there and only there', async () => {
    b = await startBroker({ opsPort: 0 });
    const ops = b.addresses.ops;
    expect(ops).to.not.equal(undefined);
    const port = opsPortOf(b);
    expect(port).to.be.above(0).and.not.equal(wsPort(b));
    expect(ops?.host).to.equal('127.0.0.1');
    expect(ops?.url).to.equal(`http://127.0.0.1:${port}`);

    const health = await http(port, '/healthz');
    expect([health.status, health.body]).to.deep.equal([200, 'ok\n']);
    const ready = await http(port, '/readyz');
    expect(ready.status).to.equal(200);
    // The memory sample is detail that varies run to run; readiness itself is what this checks.
    const { memory, ...readiness } = JSON.parse(ready.body) as Record<string, unknown>;
    expect(readiness).to.deep.equal({ ready: true, state: 'ready', closing: false, engines: { history: true }, down: [] });
    expect(memory).to.have.keys('alarm', 'rssBytes', 'watermarkBytes');
    const metrics = await http(port, '/metrics');
    expect(metrics.status).to.equal(200);
    const info = [...parseSamples(metrics.body)].filter(([key]) => key.startsWith('stompede_info{'));
    expect(info).to.have.length(1);
    expect(info[0]?.[0]).to.include(`node="${b.broker.nodeId}"`);
    expect(info[0]?.[1]).to.equal(1);

    for (const path of OPS) {
      const onWs = await http(wsPort(b), path);
      expect([path, onWs.status]).to.deep.equal([path, 404]);
      expect(onWs.body).to.include('ops port').and.include('--ops-port');
      expect(onWs.body).not.to.include('stompede_');
      expect([path, (await http(wsPort(b), `${path}?x=1`)).status]).to.deep.equal([path, 404]);
    }
  });

  it('serves nothing else on the ops port: the chat page, its config and WebSocket upgrades are not there', async () => {
    b = await startBroker({ opsPort: 0 });
    const port = opsPortOf(b);
    for (const path of ['/', '/index.html', '/chat.js', '/chat/config.json', '/ws']) {
      expect([path, (await http(port, path)).status]).to.deep.equal([path, 404]);
    }
    expect((await http(port, '/metrics', 'POST')).status).to.equal(405);
    // The WebSocket port still carries STOMP and the page's config.
    const ws = await RawClient.ws(b.wsUrl, 'v12.stomp');
    try {
      expect((await connect(ws)).command).to.equal('CONNECTED');
    } finally {
      ws.close();
    }
    expect((await http(wsPort(b), '/chat/config.json')).status).to.equal(200);
  });

  it('keeps the endpoints off the WebSocket port even when an extra handler would answer them', async () => {
    const leaky: HttpHandler = (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('leaked\n');
      return true;
    };
    b = await startBroker({ opsPort: 0 }, { httpHandlers: [leaky] });
    for (const path of OPS) expect([path, (await http(wsPort(b), path)).status]).to.deep.equal([path, 404]);
    expect((await http(wsPort(b), '/anything')).body, 'the extra handler still runs for other paths').to.equal('leaked\n');
    expect((await http(opsPortOf(b), '/healthz')).body).to.equal('ok\n');
  });

  it('still serves the endpoints when the WebSocket port is disabled', async () => {
    b = await startBroker({ opsPort: 0, wsPort: -1 });
    expect(b.addresses.ws).to.equal(undefined);
    expect((await http(opsPortOf(b), '/healthz')).status).to.equal(200);
    expect((await http(opsPortOf(b), '/metrics')).status).to.equal(200);
  });

  it('closes the ops listener on shutdown', async () => {
    b = await startBroker({ opsPort: 0 });
    const port = opsPortOf(b);
    expect(await tryConnect(port)).to.equal('connected');
    await b.close();
    b = undefined;
    expect(await tryConnect(port)).to.equal('ECONNREFUSED');
  });

  it('validates opsPort: a port or -1, and not a port another listener uses', () => {
    const problems = (overrides: Parameters<typeof loadConfig>[0]): readonly string[] => {
      try {
        loadConfig(overrides);
        return [];
      } catch (error) {
        if (error instanceof ConfigError) return error.problems;
        throw error;
      }
    };
    expect(problems({ overrides: { opsPort: -2 } })).to.deep.equal(['opsPort: -2 is not a port (-1..65535)']);
    expect(problems({ overrides: { opsPort: 70000 } })).to.deep.equal(['opsPort: 70000 is not a port (-1..65535)']);
    expect(problems({ overrides: { opsPort: 15674 } })).to.deep.equal([
      'opsPort: 15674 is also wsPort; give each listener a port of its own',
    ]);
    expect(problems({ overrides: { opsPort: 61613 } })).to.deep.equal([
      'opsPort: 61613 is also port; give each listener a port of its own',
    ]);
    // The TLS ports count only when TLS is configured.
    expect(problems({ overrides: { opsPort: 61614 } })).to.deep.equal([]);
    expect(problems({ env: { STOMPEDE_OPS_PORT: '15692' } })).to.deep.equal([]);
    expect(loadConfig({ env: { STOMPEDE_OPS_PORT: '15692' } }).opsPort).to.equal(15692);
  });

  it('from the CLI: --ops-port 0 logs the ops URL at start, serves there, and the listener closes on SIGTERM', async () => {
    const cli = new RunningCli(['--port', '0', '--ws-port', '0', '--ops-port', '0', '--log-level', 'info']);
    try {
      const line = await cli.waitForLog((l) => String(l.msg).includes('listening'));
      const ops = line.ops as { host: string; port: number; url: string } | undefined;
      expect(ops?.port).to.be.a('number').and.above(0);
      expect(ops?.url).to.equal(`http://127.0.0.1:${ops?.port ?? 0}`);
      expect(String(line.msg)).to.include(`ops (/metrics, /healthz, /readyz) http://127.0.0.1:${ops?.port ?? 0}`);
      const ws = (line.ws as { port: number }).port;
      expect((await http(ops?.port ?? 0, '/metrics')).status).to.equal(200);
      expect((await http(ws, '/metrics')).status).to.equal(404);
      expect((await cli.stop()).code).to.equal(0);
      expect(await tryConnect(ops?.port ?? 0)).to.equal('ECONNREFUSED');
    } finally {
      await cli.stop();
    }
  });
});
