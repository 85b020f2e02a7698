import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectedTcp, stompFrame } from '../support/raw.js';
import { SERVER_VERSION } from '../../broker/version.js';
import { RunningCli, freePort, runCli } from './cli.js';
import { http } from './http.js';
import { waitQuiet } from '../support/timing.js';

/** pino's numeric levels. */
const INFO = 30;
const WARN = 40;

function printed(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout) as Record<string, unknown>;
}

async function untilHealthy(port: number, cli: RunningCli, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await http(port, '/healthz')).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the CLI never answered /healthz; stdout:\n${cli.stdout}\nstderr:\n${cli.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('ops › CLI', function () {
  this.timeout(30_000);
  const running: RunningCli[] = [];
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await Promise.all(running.splice(0).map((c) => c.stop()));
  });

  function start(args: string[], env: Record<string, string> = {}): RunningCli {
    const cli = new RunningCli(args, env);
    running.push(cli);
    return cli;
  }

  describe('--print-config', () => {
    it('masks passwords in connection strings given as flags', async () => {
      const r = await runCli([
        '--print-config',
        '--redis',
        'redis://user:secret@host:6379',
        '--mongo',
        'mongodb://admin:hunter2@mongo:27017/db?authSource=admin',
      ]);
      expect(r.code, r.stderr).to.equal(0);
      const shown = printed(r.stdout);
      expect(shown.redis).to.equal('redis://user:***@host:6379');
      expect(shown.mongo).to.equal('mongodb://admin:***@mongo:27017/db?authSource=admin');
      expect(r.stdout).to.not.include('secret').and.not.include('hunter2');
    });

    it('masks the password-only form, and passwords from STOMPEDE_* variables and YAML files', async () => {
      const file = join(dir, 'secret.yaml');
      writeFileSync(file, 'mongo: mongodb://app:p%40ss@mongo:27017\nport: 61623\n');
      const r = await runCli(['--print-config', '--config', file], { STOMPEDE_REDIS: 'redis://:s3cret@redis:6379/0' });
      expect(r.code, r.stderr).to.equal(0);
      const shown = printed(r.stdout);
      expect(shown.redis).to.equal('redis://:***@redis:6379/0');
      expect(shown.mongo).to.equal('mongodb://app:***@mongo:27017');
      expect(shown.port).to.equal(61623);
      expect(r.stdout).to.not.include('s3cret').and.not.include('p%40ss');
    });

    it('leaves URLs without a password as they are', async () => {
      const r = await runCli(['--print-config', '--redis', 'redis://redis:6379']);
      expect(printed(r.stdout).redis).to.equal('redis://redis:6379');
    });
  });

  describe('logs', () => {
    it('--log-level warn hides the info lines; info shows the start with the addresses', async () => {
      const [tcp, ws, ops] = [await freePort(), await freePort(), await freePort()];
      const quiet = start(['--port', String(tcp), '--ws-port', String(ws), '--ops-port', String(ops), '--log-level', 'warn']);
      await untilHealthy(ops, quiet);
      const quietResult = await quiet.stop();
      expect(quietResult.code).to.equal(0);
      expect(
        quiet.logs.filter((l) => (l.level as number) < WARN),
        quiet.stdout,
      ).to.deep.equal([]);

      const loud = start(['--port', '0', '--ws-port', '0', '--log-level', 'info', '--node-id', 'n-log']);
      const line = await loud.waitForLog((l) => String(l.msg).includes('listening'));
      expect(line.level).to.equal(INFO);
      expect(line.node).to.equal('n-log');
      expect(line.tcp).to.have.property('port').that.is.above(0);
    });

    it('logs ISO timestamps, the generated node id on every line, and every URL a user needs at start', async () => {
      const cli = start(['--port', '0', '--ws-port', '0', '--log-level', 'info']);
      const line = await cli.waitForLog((l) => String(l.msg).includes('listening'));
      expect(line.time)
        .to.be.a('string')
        .and.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Math.abs(Date.parse(String(line.time)) - Date.now())).to.be.below(60_000);
      const node = String(line.node);
      expect(node, 'generated: 8 hex digits').to.match(/^[0-9a-f]{8}$/);
      const [tcp, ws, ops] = [line.tcp, line.ws, line.ops].map((a) => (a as { port: number }).port);
      expect(line.urls).to.deep.equal({
        stomp: `tcp://127.0.0.1:${tcp}`,
        websocket: `ws://127.0.0.1:${ws}/ws`,
        chat: `http://127.0.0.1:${ws}/`,
        ops: `http://127.0.0.1:${ops}`,
      });
      expect(line.msg).to.equal(
        `stompede ${SERVER_VERSION} node ${node} listening: STOMP tcp://127.0.0.1:${tcp}, WebSocket ws://127.0.0.1:${ws}/ws, ` +
          `chat page http://127.0.0.1:${ws}/, ops (/metrics, /healthz, /readyz) http://127.0.0.1:${ops}`,
      );
      expect((await cli.stop()).code).to.equal(0);
      expect(cli.logs.length).to.be.above(2);
      for (const l of cli.logs) expect([l.msg, l.node]).to.deep.equal([l.msg, node]);
    });

    it('logs nothing per message, even at trace level', async () => {
      const cli = start(['--port', '0', '--ws-port', '0', '--log-level', 'trace']);
      const line = await cli.waitForLog((l) => String(l.msg).includes('listening'));
      const linesBefore = cli.logs.length;
      const client = await connectedTcp((line.tcp as { port: number }).port);
      try {
        client.send(stompFrame('SUBSCRIBE', { id: '1', destination: '/topic/per-message' }));
        for (let i = 0; i < 50; i++) client.send(stompFrame('SEND', { destination: '/topic/per-message' }, `m${i}`));
        client.send(stompFrame('DISCONNECT', { receipt: 'bye' }));
        let messages = 0;
        for (;;) {
          const f = await client.nextFrame();
          if (f.command === 'MESSAGE') messages++;
          if (f.command === 'RECEIPT') break;
        }
        expect(messages).to.equal(50);
      } finally {
        client.close();
      }
      // Log lines reach us through the child's stdout: give a busy machine longer to show any.
      await waitQuiet(100);
      expect(cli.logs.slice(linesBefore), cli.stdout).to.deep.equal([]);
    });
  });

  describe('shutdown', () => {
    /** Polls /readyz on the ops port until it answers `status`. */
    async function untilReadyz(port: number, status: number, timeoutMs = 10_000): Promise<Record<string, unknown>> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const reply = await http(port, '/readyz');
        if (reply.status === status) return JSON.parse(reply.body) as Record<string, unknown>;
        if (Date.now() > deadline) throw new Error(`/readyz answered ${reply.status}, not ${status}: ${reply.body}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    async function startNode(drainMs: number): Promise<{ cli: RunningCli; tcp: number; ops: number }> {
      const cli = start(['--port', '0', '--ws-port', '0', '--shutdown-drain-ms', String(drainMs)]);
      const line = await cli.waitForLog((l) => String(l.msg).includes('listening'));
      return { cli, tcp: (line.tcp as { port: number }).port, ops: (line.ops as { port: number }).port };
    }

    it('SIGTERM drains: /readyz answers 503 "draining" while a new STOMP connection still succeeds, then the node exits', async () => {
      const { cli, tcp, ops } = await startNode(1500);
      await untilReadyz(ops, 200);
      const signalled = Date.now();
      cli.signal('SIGTERM');
      expect(await untilReadyz(ops, 503)).to.deep.include({ ready: false, state: 'draining', closing: false });
      const client = await connectedTcp(tcp);
      client.close();
      expect((await http(ops, '/healthz')).status, 'alive while draining').to.equal(200);
      const result = await cli.exited;
      expect(result.code, result.stderr).to.equal(0);
      // Generous bounds: the drain lasts 1.5 s, then the close takes what it takes on a busy machine.
      expect(Date.now() - signalled).to.be.within(1400, 15_000);
      const draining = cli.logs.find((l) => String(l.msg).startsWith('SIGTERM: draining for 1500 ms'));
      expect(draining?.level).to.equal(INFO);
    });

    it('a second SIGTERM during the drain stops at once', async () => {
      const { cli, ops } = await startNode(600_000);
      cli.signal('SIGTERM');
      await untilReadyz(ops, 503);
      cli.signal('SIGTERM');
      const result = await cli.exited;
      expect(result.code, result.stderr).to.equal(0);
      expect(cli.logs.some((l) => String(l.msg).startsWith('SIGTERM during the drain: stopping now'))).to.equal(true);
    });

    it('SIGINT (Ctrl-C) stops without a drain', async () => {
      const { cli } = await startNode(600_000);
      cli.signal('SIGINT');
      const result = await cli.exited;
      expect(result.code, result.stderr).to.equal(0);
      expect(cli.logs.some((l) => String(l.msg) === 'SIGINT: stopping')).to.equal(true);
    });
  });

  describe('first errors say what to do', () => {
    let blocker: Server | undefined;
    afterEach(async () => {
      await new Promise<void>((r) => (blocker === undefined ? r() : blocker.close(() => r())));
      blocker = undefined;
    });

    it('a port in use names the flag and the variable', async () => {
      blocker = createServer();
      const busy = await new Promise<number>((resolve) => {
        blocker?.listen(0, '127.0.0.1', () => {
          const a = blocker?.address();
          resolve(typeof a === 'object' && a !== null ? a.port : 0);
        });
      });
      const r = await runCli(['--port', String(busy), '--ws-port', '0']);
      expect(r.code).to.equal(1);
      expect(r.stderr.trim()).to.equal(
        `stompede: port ${busy} on 127.0.0.1 is already in use: stop the program using it, or choose another port with --port (STOMPEDE_PORT)`,
      );
    });

    it('an unreachable Redis exits 1 naming the URL and --redis', async () => {
      const port = await freePort();
      const r = await runCli(['--port', '0', '--ws-port', '0', '--redis', `redis://127.0.0.1:${port}`]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(`cannot reach Redis at redis://127.0.0.1:${port}`).and.include('--redis');
      expect(r.stderr).to.not.match(/^\s+at /m);
    });

    it('an unreachable Kafka exits 1 naming the brokers and --kafka', async () => {
      const port = await freePort();
      const r = await runCli(['--port', '0', '--ws-port', '0', '--kafka', `127.0.0.1:${port}`]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(`cannot reach Kafka at 127.0.0.1:${port}`).and.include('--kafka');
      expect(r.stderr).to.not.match(/^\s+at /m);
    });

    it('an unreachable MongoDB does not stop the node nor make it unready: /readyz shows it, a warning names --mongo', async () => {
      const port = await freePort();
      const mongo = `mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=500`;
      const cli = start(['--port', '0', '--ws-port', '0', '--mongo', mongo]);
      const line = await cli.waitForLog((l) => String(l.msg).includes('listening'));
      const ops = (line.ops as { port: number }).port;
      const ready = await http(ops, '/readyz');
      expect(ready.status, 'a history outage is detail, not a reason to leave the load balancer').to.equal(200);
      expect(JSON.parse(ready.body)).to.deep.include({ ready: true, state: 'ready', down: ['history'] });
      const metrics = await http(ops, '/metrics');
      expect(metrics.body).to.match(/^stompede_engine_up\{engine="history"\} 0$/m);
      const warning = await cli.waitForLog((l) => String(l.msg).startsWith('history store down'), 15_000);
      expect(warning.level).to.equal(WARN);
      expect(warning.msg).to.include(`MongoDB at ${mongo} (--mongo, STOMPEDE_MONGO)`).and.include('/readyz answers 200');
    });

    it('a missing users file says how to create it', async () => {
      const file = join(dir, 'no-such-users.json');
      const r = await runCli(['--port', '0', '--ws-port', '0', '--users-file', file]);
      expect(r.code).to.equal(1);
      expect(r.stderr.trim()).to.equal(
        `stompede: ${file} does not exist: create it with \`stompede add-user --users-file ${file} <login>\`, or fix --users-file (STOMPEDE_USERS_FILE)`,
      );
    });

    it('an invalid configuration lists every problem and exits 2', async () => {
      const r = await runCli(['--port', 'abc', '--log-level', 'loud']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('--port: "abc" is not a number').and.include('--log-level: "loud" is not one of');
    });

    it('a bad node id is a configuration error (exit 2, named with the other problems), not a crash at start', async () => {
      const r = await runCli(['--node-id', 'no spaces please', '--port', 'abc']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('--node-id: "no spaces please" may use only letters').and.include('--port: "abc" is not a number');
    });
  });
});
