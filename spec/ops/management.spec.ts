/**
 * Issue #9 item 2: the management API on the ops listener (admin users only), `stompede ctl` against it as a real
 * process, and the per-queue series of /metrics.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allowAll, hashPassword } from '../../broker/auth.js';
import { managementHttpHandler, type ManagementSource } from '../../broker/management.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { connectedTcp, stompFrame, type RawFrame, type TcpRawClient } from '../support/raw.js';
import { expectQuiet } from '../broker/harness.js';
import { runCli } from './cli.js';
import { parseSamples, sampleKey, wsPort } from './http.js';

interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  readonly json: unknown;
}

/** One request to the ops listener, with HTTP Basic credentials when given. */
function api(port: number, method: string, path: string, auth?: readonly [string, string]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (auth !== undefined) headers.authorization = `Basic ${Buffer.from(`${auth[0]}:${auth[1]}`).toString('base64')}`;
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const ADMIN = ['root', 'root-pw'] as const;
const USER = ['bob', 'bob-pw'] as const;
const LOGIN = (who: readonly [string, string]): Record<string, string> => ({
  'accept-version': '1.2',
  host: 'localhost',
  login: who[0],
  passcode: who[1],
  'heart-beat': '0,0',
});

type Row = Record<string, unknown>;

async function nextOf(client: TcpRawClient, command: string): Promise<RawFrame> {
  const f = await client.nextFrame(10_000);
  expect(f.command, f.raw.toString('latin1')).to.equal(command);
  return f;
}

/** SEND with a receipt, waiting for it: the message is in its queue once this resolves. */
async function sendReceipted(client: TcpRawClient, destination: string, body: string): Promise<void> {
  const receipt = uniqueName('r');
  client.send(stompFrame('SEND', { destination, receipt }, body));
  const f = await nextOf(client, 'RECEIPT');
  expect(f.headers.get('receipt-id')).to.equal(receipt);
}

async function subscribeReceipted(client: TcpRawClient, id: string, destination: string, ack = 'auto'): Promise<void> {
  client.send(stompFrame('SUBSCRIBE', { id, destination, ack, receipt: `sub-${id}` }));
  await nextOf(client, 'RECEIPT');
}

describe('ops › management API and stompede ctl (issue #9 item 2)', function () {
  this.timeout(60_000);
  let dir: string;
  let b: TestBroker;
  let ops: number;
  const clients: TcpRawClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stompede-mgmt-'));
    const users = {
      users: {
        [ADMIN[0]]: { password: await hashPassword(ADMIN[1]), admin: true, vhosts: { '/': { read: ['**'], write: ['**'] } } },
        [USER[0]]: await hashPassword(USER[1]),
      },
    };
    await writeFile(join(dir, 'users.json'), JSON.stringify(users));
    // A short failure delay: the 401 tests fail logins on purpose and later requests must not wait long for it.
    b = await startBroker({
      opsPort: 0,
      usersFile: join(dir, 'users.json'),
      maxDeliveries: 1,
      authFailureDelayMs: 1,
      authFailureDelayMaxMs: 5,
    });
    ops = b.addresses.ops?.port ?? 0;
  });
  after(async () => {
    for (const c of clients) c.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function client(who: readonly [string, string] = USER): Promise<TcpRawClient> {
    const c = await connectedTcp(b.tcpPort, LOGIN(who));
    clients.push(c);
    return c;
  }

  async function queueRow(name: string): Promise<Row | undefined> {
    const r = await api(ops, 'GET', '/api/queues', ADMIN);
    expect(r.status).to.equal(200);
    return (r.json as Row[]).find((q) => q.destination === name);
  }

  describe('protection', () => {
    it('answers 401 with WWW-Authenticate without credentials or with a wrong password, 403 to a non-admin user', async () => {
      const none = await api(ops, 'GET', '/api/overview');
      expect(none.status).to.equal(401);
      expect(String(none.headers['www-authenticate'])).to.match(/^Basic realm=/);
      const wrong = await api(ops, 'GET', '/api/queues', [ADMIN[0], 'nope']);
      expect(wrong.status).to.equal(401);
      expect(String(wrong.headers['www-authenticate'])).to.match(/^Basic realm=/);
      const bob = await api(ops, 'GET', '/api/connections', USER);
      expect(bob.status).to.equal(403);
      expect((bob.json as Row).error).to.include('not an admin');
      // A non-admin cannot act either: nothing is purged or closed.
      expect((await api(ops, 'POST', '/api/queues/%2Fqueue%2Fx/purge', USER)).status).to.equal(403);
    });

    it('is not served on the WebSocket port, only on the ops listener', async () => {
      const r = await api(wsPort(b), 'GET', '/api/overview', ADMIN);
      expect(r.status).to.equal(404);
      expect(r.body).to.not.include('"node"');
    });

    it('answers 404 for unknown endpoints and 405 for a wrong method', async () => {
      expect((await api(ops, 'GET', '/api/nothing', ADMIN)).status).to.equal(404);
      const r = await api(ops, 'GET', '/api/queues/%2Fqueue%2Fa/purge', ADMIN);
      expect(r.status).to.equal(405);
      expect(r.headers.allow).to.equal('POST');
    });

    it('on a node without a users file: answers when its listeners are on loopback, else 403', async () => {
      for (const [host, status] of [
        ['127.0.0.1', 200],
        ['0.0.0.0', 403],
      ] as const) {
        // Only the protection is under test: a stand-in broker, served on loopback whatever `host` says.
        const fake = {
          authenticator: allowAll,
          config: { host, clusterName: 'c' },
          nodeId: 'n',
          sessions: [],
          logger: { error: () => {} },
        } as unknown as ManagementSource;
        const server: Server = createServer((req, res) => {
          if (!managementHttpHandler(fake)(req, res)) res.writeHead(500).end();
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        try {
          const port = (server.address() as { port: number }).port;
          const r = await api(port, 'GET', '/api/connections');
          expect(r.status, `${host}: ${r.body}`).to.equal(status);
          if (status === 403) expect((r.json as Row).error).to.include('users-file');
        } finally {
          await new Promise((resolve) => server.close(resolve));
        }
      }
    });
  });

  describe('endpoints', () => {
    it('GET /api/overview: node, version, engines, routes, totals', async () => {
      await client();
      const r = await api(ops, 'GET', '/api/overview', ADMIN);
      expect(r.status).to.equal(200);
      const o = r.json as Row;
      expect(o.node).to.equal(b.broker.nodeId);
      expect(o.version).to.be.a('string');
      expect(o.ready).to.equal(true);
      expect(o.engines).to.deep.include({ role: 'history', engine: 'memory', healthy: true });
      expect(o.routes).to.deep.equal([{ pattern: '/**', kind: 'local', text: '/**=local' }]);
      expect((o.totals as Row).sessions).to.be.at.least(1);
    });

    it('GET /api/connections and /api/connections/:id: user, vhost, transport, address, version, heart-beats, subs, bytes', async () => {
      const c = await client();
      const topic = `/topic/${uniqueName('mt')}`;
      await subscribeReceipted(c, 's1', topic);
      const list = await api(ops, 'GET', '/api/connections', ADMIN);
      expect(list.status).to.equal(200);
      const local = `127.0.0.1:${c.socket.localPort ?? -1}`;
      const mine = (list.json as Row[]).find((s) => s.remoteAddress === local);
      expect(mine, JSON.stringify(list.json)).to.not.equal(undefined);
      const one = await api(ops, 'GET', `/api/connections/${encodeURIComponent(String(mine?.id))}`, ADMIN);
      expect(one.status).to.equal(200);
      const d = one.json as Row;
      expect(d).to.include({ user: 'bob', vhost: '/', transport: 'tcp', remoteAddress: local, version: '1.2', connected: true });
      expect(d.heartbeats).to.deep.equal({ outgoingMs: 0, incomingMs: 0 });
      expect(d.subscriptions).to.deep.equal([{ id: 's1', destination: topic, ack: 'auto', prefetch: 0, unacked: 0 }]);
      expect(d.bytesIn).to.be.greaterThan(100);
      expect(d.bytesOut).to.be.greaterThan(50);
      expect(Date.parse(String(d.connectedSince))).to.be.within(Date.now() - 60_000, Date.now());
      expect((await api(ops, 'GET', '/api/connections/no-such-id', ADMIN)).status).to.equal(404);
    });

    it('DELETE /api/connections/:id closes the connection with an ERROR naming the operator action', async () => {
      const c = await client();
      const local = `127.0.0.1:${c.socket.localPort ?? -1}`;
      const id = ((await api(ops, 'GET', '/api/connections', ADMIN)).json as Row[]).find((s) => s.remoteAddress === local)?.id;
      const r = await api(ops, 'DELETE', `/api/connections/${String(id)}`, ADMIN);
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({ closed: id });
      const error = await nextOf(c, 'ERROR');
      expect(error.headers.get('message')).to.equal('connection closed by an operator');
      expect(error.body.toString()).to.include('root');
      await c.closed(10_000);
      expect((await api(ops, 'GET', `/api/connections/${String(id)}`, ADMIN)).status).to.equal(404);
      expect((await api(ops, 'DELETE', `/api/connections/${String(id)}`, ADMIN)).status).to.equal(404);
    });

    it('GET /api/queues: depth, bytes, consumers, unacked; GET /api/destinations lists queues and topics', async () => {
      const q = `/queue/${uniqueName('mq')}`;
      const producer = await client();
      for (let i = 0; i < 3; i++) await sendReceipted(producer, q, `m${i}`);
      expect(await queueRow(q)).to.include({ depth: 3, consumers: 0, unacked: 0, dlqDepth: 0, shared: false });
      expect((await queueRow(q))?.bytes).to.be.greaterThan(0);
      const consumer = await client();
      consumer.send(stompFrame('SUBSCRIBE', { id: 'c', destination: q, ack: 'client-individual', 'prefetch-count': '1' }));
      await nextOf(consumer, 'MESSAGE');
      await expectQuiet(consumer);
      expect(await queueRow(q)).to.include({ depth: 2, consumers: 1, unacked: 1, deliveries: 1, redeliveries: 0 });
      const topic = `/topic/${uniqueName('mt')}`;
      await subscribeReceipted(consumer, 't', topic);
      const dests = (await api(ops, 'GET', '/api/destinations', ADMIN)).json as Row[];
      expect(dests).to.deep.include({ vhost: '/', destination: q, kind: 'queue', route: 'local', subscribers: 1, messages: 2 });
      expect(dests).to.deep.include({ vhost: '/', destination: topic, kind: 'topic', route: 'local', subscribers: 1, messages: null });
    });

    it('POST /api/queues/:name/purge drops the waiting messages; an unknown queue is 404', async () => {
      const q = `/queue/${uniqueName('mp')}`;
      const producer = await client();
      for (let i = 0; i < 4; i++) await sendReceipted(producer, q, `m${i}`);
      const r = await api(ops, 'POST', `/api/queues/${encodeURIComponent(q)}/purge`, ADMIN);
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({ vhost: '/', queue: q, purged: 4 });
      expect(await queueRow(q)).to.equal(undefined);
      // Nothing is left to deliver: a new consumer gets only what is sent after the purge.
      const consumer = await client();
      await subscribeReceipted(consumer, 'c', q);
      await sendReceipted(producer, q, 'after');
      expect((await nextOf(consumer, 'MESSAGE')).body.toString()).to.equal('after');
      expect((await api(ops, 'POST', `/api/queues/${encodeURIComponent('/queue/none-here')}/purge`, ADMIN)).status).to.equal(404);
    });

    it('POST /api/queues/:name.dlq/move sends dead-lettered messages back to their queue, without the dead-letter headers', async () => {
      const q = `/queue/${uniqueName('md')}`;
      const producer = await client();
      await sendReceipted(producer, q, 'poison');
      const consumer = await client();
      consumer.send(stompFrame('SUBSCRIBE', { id: 'c', destination: q, ack: 'client-individual' }));
      const first = await nextOf(consumer, 'MESSAGE');
      // maxDeliveries 1: the NACK dead-letters it.
      consumer.send(stompFrame('NACK', { id: first.headers.get('ack') ?? '', receipt: 'nack' }));
      await nextOf(consumer, 'RECEIPT');
      expect(await queueRow(q)).to.include({ depth: 0, dlqDepth: 1 });
      expect(await queueRow(`${q}.dlq`)).to.include({ depth: 1 });
      expect((await api(ops, 'POST', `/api/queues/${encodeURIComponent(q)}/move`, ADMIN)).status).to.equal(400);
      const r = await api(ops, 'POST', `/api/queues/${encodeURIComponent(`${q}.dlq`)}/move`, ADMIN);
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({ vhost: '/', from: `${q}.dlq`, to: q, moved: 1 });
      const back = await nextOf(consumer, 'MESSAGE');
      expect(back.body.toString()).to.equal('poison');
      expect(back.headers.get('destination')).to.equal(q);
      expect(back.headers.get('x-death-reason')).to.equal(undefined);
      expect(back.headers.get('x-original-destination')).to.equal(undefined);
      expect((await api(ops, 'POST', `/api/queues/${encodeURIComponent('/queue/none.dlq')}/move`, ADMIN)).status).to.equal(404);
    });

    it('/metrics has per-queue series: depth, consumers, unacked, DLQ depth, deliveries, redeliveries', async () => {
      const q = uniqueName('mm');
      const producer = await client();
      for (let i = 0; i < 2; i++) await sendReceipted(producer, `/queue/${q}`, `m${i}`);
      const consumer = await client();
      consumer.send(stompFrame('SUBSCRIBE', { id: 'c', destination: `/queue/${q}`, ack: 'client-individual', 'prefetch-count': '1' }));
      const m = await nextOf(consumer, 'MESSAGE');
      consumer.send(stompFrame('NACK', { id: m.headers.get('ack') ?? '' }));
      await nextOf(consumer, 'MESSAGE'); // the second message; the first went to the DLQ
      await expectQuiet(consumer);
      const metrics = await api(ops, 'GET', '/metrics');
      const samples = parseSamples(metrics.body);
      const at = (name: string): number | undefined => samples.get(sampleKey(name, { vhost: '/', queue: q }));
      expect(at('stompede_queue_messages')).to.equal(0);
      expect(at('stompede_queue_consumers')).to.equal(1);
      expect(at('stompede_queue_unacked')).to.equal(1);
      expect(at('stompede_queue_dlq_messages')).to.equal(1);
      expect(at('stompede_queue_deliveries_total')).to.equal(2);
      expect(samples.get(sampleKey('stompede_queue_messages', { vhost: '/', queue: `${q}.dlq` }))).to.equal(1);
    });
  });

  describe('stompede ctl (the real CLI)', () => {
    const ctl = (...args: string[]): ReturnType<typeof runCli> =>
      runCli(['ctl', ...args, '--url', `http://127.0.0.1:${ops}`], { STOMPEDE_CTL_USER: ADMIN[0], STOMPEDE_CTL_PASSWORD: ADMIN[1] });

    it('list queues prints an aligned table, and --json the API JSON', async () => {
      const q = `/queue/${uniqueName('mc')}`;
      const producer = await client();
      for (let i = 0; i < 5; i++) await sendReceipted(producer, q, `m${i}`);
      const r = await ctl('list', 'queues');
      expect(r.code, r.stderr).to.equal(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).to.match(/^VHOST\s+QUEUE\s+DEPTH\s+BYTES\s+CONSUMERS\s+UNACKED\s+DLQ\s+SHARED$/);
      const row = lines.find((l) => l.includes(q));
      expect(row).to.match(new RegExp(`^/\\s+${q}\\s+5\\s+\\d+\\s+0\\s+0\\s+0\\s+false$`));
      // Aligned: every column starts where its header does.
      expect(row?.indexOf(q)).to.equal(lines[0]?.indexOf('QUEUE'));
      const json = await ctl('list', 'queues', '--json');
      expect(json.code, json.stderr).to.equal(0);
      expect((JSON.parse(json.stdout) as Row[]).find((x) => x.destination === q)).to.include({ depth: 5, consumers: 0 });
    });

    it('list connections and destinations, overview, purge, close and dlq move', async () => {
      const conns = await ctl('list', 'connections');
      expect(conns.code, conns.stderr).to.equal(0);
      expect(conns.stdout.split('\n')[0]).to.match(/^ID\s+USER\s+VHOST\s+TRANSPORT\s+REMOTE\s+VERSION\s+HEARTBEAT/);
      expect((await ctl('list', 'destinations')).stdout).to.match(/^VHOST\s+DESTINATION\s+KIND\s+ROUTE\s+SUBSCRIBERS\s+MESSAGES/);
      const overview = await ctl('overview');
      expect(overview.stdout).to.include(`node ${b.broker.nodeId} of cluster`);
      const q = uniqueName('mx');
      const producer = await client();
      await sendReceipted(producer, `/queue/${q}`, 'x');
      const purge = await ctl('purge', q);
      expect(purge.code, purge.stderr).to.equal(0);
      expect(purge.stdout).to.equal(`purged 1 messages from /queue/${q}\n`);
      const move = await ctl('dlq', 'move', q);
      expect(move.code).to.equal(1);
      expect(move.stderr).to.equal(`stompede ctl: 404 no dead-letter queue /queue/${q}.dlq in virtual host /\n`);
      const victim = await client();
      const local = `127.0.0.1:${victim.socket.localPort ?? -1}`;
      const id = String(((await api(ops, 'GET', '/api/connections', ADMIN)).json as Row[]).find((s) => s.remoteAddress === local)?.id);
      const close = await ctl('close', id);
      expect(close.code, close.stderr).to.equal(0);
      expect((await nextOf(victim, 'ERROR')).headers.get('message')).to.equal('connection closed by an operator');
    });

    it('exits 1 with a clear line for a wrong password, a non-admin, an unreachable URL and an unknown list', async () => {
      const url = `http://127.0.0.1:${ops}`;
      const wrong = await runCli(['ctl', 'list', 'queues', '--url', url, '--user', ADMIN[0], '--password', 'bad']);
      expect(wrong.code).to.equal(1);
      expect(wrong.stderr).to.match(/^stompede ctl: 401 .*--user and --password/);
      const bob = await runCli(['ctl', '--url', url, '--user', USER[0], '--password', USER[1], 'list', 'queues']);
      expect(bob.code).to.equal(1);
      expect(bob.stderr).to.match(/^stompede ctl: 403 user "bob" is not an admin/);
      const dead = await runCli(['ctl', 'overview', '--url', 'http://127.0.0.1:1']);
      expect(dead.code).to.equal(1);
      expect(dead.stderr).to.match(/^stompede ctl: cannot reach http:\/\/127\.0\.0\.1:1 /);
      const what = await ctl('list', 'sessions');
      expect(what.code).to.equal(1);
      expect(what.stderr).to.include('choose connections, queues or destinations');
    });

    it('add-user --admin writes an admin entry (admin: true, every right on /)', async () => {
      const file = join(dir, 'more-users.json');
      const r = await runCli(['add-user', '--users-file', file, '--admin', '--password', 'pw2', 'ops']);
      expect(r.code, r.stderr).to.equal(0);
      const saved = JSON.parse(await readFile(file, 'utf8')) as { users: Record<string, Row> };
      expect(saved.users.ops).to.include({ admin: true });
      expect(saved.users.ops?.vhosts).to.deep.equal({ '/': { read: ['**'], write: ['**'] } });
    });
  });
});
