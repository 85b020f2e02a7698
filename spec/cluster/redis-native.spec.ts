/**
 * Three Stompede node processes bridged to channels of the team's own (issue #7, item 5): routes with a channel
 * template in `format=raw` and `format=json`, exercised by applications that know nothing of Stompede: `redis-cli`
 * (the Redis binaries of the test services) and the `redis` npm client, against STOMP clients on every node.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { createClient } from 'redis';
import { requireService } from '../support/services.js';
import { StompedeCluster, until, type StompedeNode } from '../support/cluster.js';
import { connectedTcp, stompFrame, type RawFrame, type TcpRawClient } from '../support/raw.js';
import { waitQuiet } from '../support/timing.js';
import { ClientPool, type Subscription } from './clients.js';

/** `redis-cli` against the test Redis, as an operator or a shell script would run it. */
async function redisCli(...args: string[]): Promise<string> {
  const url = new URL(requireService('redis'));
  const { stdout } = await promisify(execFile)('redis-cli', ['-h', url.hostname, '-p', url.port || '6379', ...args], { timeout: 10_000 });
  return stdout.trim();
}

async function scrape(node: StompedeNode): Promise<string> {
  const answer = await fetch(`http://127.0.0.1:${node.opsPort}/metrics`);
  return answer.text();
}

/** The value of one series of a scrape (0 when absent). */
function series(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const open = line.indexOf('{');
    const close = line.indexOf('}');
    const pairs = new Map([...line.slice(open + 1, close).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => pairs.get(k) === v)) return Number(line.slice(close + 1).trim());
  }
  return 0;
}

/** Every value of a header in a frame's bytes, repeats included, in order (the parsed view keeps the first). */
function headerValues(f: RawFrame, name: string): string[] {
  const head = f.raw.subarray(0, f.raw.indexOf('\n\n')).toString('utf8');
  return head
    .split('\n')
    .slice(1)
    .filter((line) => line.startsWith(`${name}:`))
    .map((line) => line.slice(name.length + 1));
}

let seq = 0;
const unique = (label: string): string => `${label}${(++seq).toString(36)}${Date.now().toString(36)}`;

describe('cluster › redis named channels: raw and json formats with plain Redis clients (3 node processes)', function () {
  this.timeout(60_000);
  let cluster: StompedeCluster;
  /** Channel prefix of this run: `<cluster>.news.<x>` (raw), `<cluster>.orders.<x>` (json). */
  let run: string;
  const pool = new ClientPool();
  const raws: TcpRawClient[] = [];
  const plains: ReturnType<typeof createClient>[] = [];

  async function plain(): Promise<ReturnType<typeof createClient>> {
    const client = createClient({ url: requireService('redis') });
    await client.connect();
    plains.push(client);
    return client;
  }

  /** A raw STOMP 1.2 client on a node, subscribed to `destination` with a receipt. */
  async function rawSubscriber(node: StompedeNode, destination: string, id = 's1'): Promise<TcpRawClient> {
    const client = await connectedTcp(node.tcpPort);
    raws.push(client);
    client.send(stompFrame('SUBSCRIBE', { id, destination, receipt: `r-${id}` }));
    const receipt = await client.nextFrame(10_000);
    expect(receipt.command).to.equal('RECEIPT');
    return client;
  }

  before(async function () {
    this.timeout(120_000);
    requireService('redis');
    cluster = await StompedeCluster.start({
      name: 'spec-native',
      engines: ['redis'],
      routes: (name) =>
        [
          `/topic/news.*=redis:${name}.news.{1};format=raw`,
          `/topic/orders.*=redis:${name}.orders.{1};format=json`,
          // The channel is the destination's name: /topic/echo.x and /redis/echo.x share the channel echo.x.
          '/topic/echo.*=redis:echo.{1};format=raw',
          '/topic/**=redis',
          '/queue/**=redis',
        ].join(','),
    });
    run = cluster.name;
  });

  beforeEach(() => cluster.markLogs());

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') await waitQuiet(300);
    cluster.printLogsOnFailure(this.currentTest);
    await pool.closeAll();
    for (const c of raws.splice(0)) c.close();
    await Promise.all(plains.splice(0).map((c) => c.close()));
  });

  after(async function () {
    this.timeout(60_000);
    await cluster.close();
  });

  it('raw: `redis-cli PUBLISH` of plain text reaches STOMP subscribers on all 3 nodes, once per subscriber', async () => {
    const name = unique('sports');
    const destination = `/topic/news.${name}`;
    const subs: { label: string; sub: Subscription }[] = [];
    for (const node of cluster.nodes) {
      const client = await pool.stompit(node);
      subs.push({ label: client.label, sub: await client.subscribe(destination) });
    }
    const ws = await pool.stompjs(cluster.node(1));
    subs.push({ label: ws.label, sub: await ws.subscribe(destination) });
    // One receiver per node: the three subscribed node processes (the STOMP subscriptions of a node share one).
    expect(await redisCli('PUBLISH', `${run}.news.${name}`, 'hello from redis-cli')).to.equal('3');
    expect(await redisCli('PUBLISH', `${run}.news.${name}`, 'hello from redis-cli')).to.equal('3');
    await Promise.all(subs.map(({ label, sub }) => sub.inbox.count(2, 10_000, `${label}: both messages`)));
    await waitQuiet(300);
    for (const { label, sub } of subs) {
      expect(sub.inbox.bodies(), label).to.deep.equal(['hello from redis-cli', 'hello from redis-cli']);
      for (const m of sub.inbox.messages) {
        expect(m.headers.destination, label).to.equal(destination);
        expect(m.headers['content-type'], `${label}: a raw payload carries no content-type`).to.equal(undefined);
      }
    }
  });

  it('raw: a STOMP SEND is read by a plain Redis subscriber (redis npm client) as exactly the body bytes', async () => {
    const name = unique('sports');
    const reader = await plain();
    const seen: Buffer[] = [];
    await reader.subscribe(`${run}.news.${name}`, (message) => seen.push(message), true);
    const sender = await connectedTcp(cluster.node(1).tcpPort);
    raws.push(sender);
    const body = Buffer.from([0x68, 0x69, 0x00, 0xff, 0x0a, 0x3a]);
    sender.send(
      stompFrame(
        'SEND',
        {
          destination: `/topic/news.${name}`,
          'content-type': 'application/octet-stream',
          'content-length': String(body.length),
          receipt: 'r1',
        },
        body,
      ),
    );
    expect((await sender.nextFrame(10_000)).command).to.equal('RECEIPT');
    await until(() => seen.length === 1, 10_000, 'the plain subscriber to hear the SEND');
    await waitQuiet(200);
    expect(seen.length).to.equal(1);
    expect((seen[0] as Buffer).equals(body)).to.equal(true);
  });

  it('raw: a STOMP SEND is what `redis-cli SUBSCRIBE` prints, the plain payload', async () => {
    const name = unique('cli');
    const channel = `${run}.news.${name}`;
    const url = new URL(requireService('redis'));
    const cli = spawn('redis-cli', ['-h', url.hostname, '-p', url.port || '6379', '--raw', 'SUBSCRIBE', channel], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    cli.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    try {
      // `--raw` prints each reply element on a line: subscribe, the channel, the count; then message, channel, payload.
      await until(
        () => out.includes(`subscribe\n${channel}\n1\n`),
        10_000,
        'redis-cli to subscribe',
        () => JSON.stringify(out),
      );
      const client = await pool.stompit(cluster.node(2));
      await client.send(`/topic/news.${name}`, 'plain words from STOMP', { 'content-type': 'text/plain', 'x-extra': 'not on the channel' });
      await until(
        () => out.includes('plain words'),
        10_000,
        'redis-cli to print the message',
        () => JSON.stringify(out),
      );
      await waitQuiet(200);
      expect(out).to.equal(`subscribe\n${channel}\n1\nmessage\n${channel}\nplain words from STOMP\n`);
    } finally {
      cli.kill();
    }
  });

  it('json: a STOMP SEND with a binary body reaches a plain subscriber as {"headers","body","base64":true} and every node once', async () => {
    const name = unique('o');
    const destination = `/topic/orders.${name}`;
    const reader = await plain();
    const seen: string[] = [];
    await reader.subscribe(`${run}.orders.${name}`, (message) => seen.push(message));
    const subscribers = await Promise.all(cluster.nodes.map((n) => rawSubscriber(n, destination)));
    const sender = await connectedTcp(cluster.node(0).tcpPort);
    raws.push(sender);
    const body = Buffer.from([0xc3, 0x28, 0x00, 0xff]);
    sender.send(
      stompFrame(
        'SEND',
        [
          ['destination', destination],
          ['content-type', 'application/octet-stream'],
          ['tag', 'a'],
          ['tag', 'b'],
          ['content-length', String(body.length)],
          ['receipt', 'r1'],
        ],
        body,
      ),
    );
    expect((await sender.nextFrame(10_000)).command).to.equal('RECEIPT');
    await until(() => seen.length === 1, 10_000, 'the plain subscriber');
    const json = JSON.parse(seen[0] as string) as { headers: Record<string, unknown>; body: string; base64?: boolean };
    expect(json.base64).to.equal(true);
    expect(Buffer.from(json.body, 'base64').equals(body)).to.equal(true);
    expect(json.headers['content-type']).to.equal('application/octet-stream');
    // STOMP 1.2 §Repeated Header Entries: the broker keeps the first value of a repeated header.
    expect(json.headers.tag).to.equal('a');
    const frames: RawFrame[] = [];
    for (const s of subscribers) frames.push(await s.nextFrame(10_000));
    for (const f of frames) {
      expect(f.command).to.equal('MESSAGE');
      expect(f.body.equals(body)).to.equal(true);
      expect(f.headers.get('content-type')).to.equal('application/octet-stream');
      expect(headerValues(f, 'tag')).to.deep.equal(['a']);
    }
    await Promise.all(subscribers.map((s) => s.noFrame(300)));
    // The id travels in the payload: the same message-id on every node, the one the plain subscriber saw.
    expect(new Set(frames.map((f) => f.headers.get('message-id')))).to.deep.equal(new Set([json.headers['message-id']]));
  });

  it('json: a plain publisher’s headers and base64 body reach STOMP subscribers; its message-id names the message on every node', async () => {
    const name = unique('o');
    const destination = `/topic/orders.${name}`;
    const subscribers = await Promise.all(cluster.nodes.map((n) => rawSubscriber(n, destination)));
    const app = await plain();
    const bytes = Buffer.from([0x00, 0x01, 0xfe, 0xff]);
    const receivers = await app.publish(
      `${run}.orders.${name}`,
      JSON.stringify({
        headers: { 'message-id': 'order-4711', 'content-type': 'application/x-thing', priority: 7, destination: '/topic/elsewhere' },
        body: bytes.toString('base64'),
        base64: true,
      }),
    );
    expect(receivers).to.equal(3);
    for (const s of subscribers) {
      const f = await s.nextFrame(10_000);
      expect(f.command).to.equal('MESSAGE');
      expect(f.body.equals(bytes)).to.equal(true);
      expect(f.headers.get('message-id')).to.equal('order-4711');
      expect(f.headers.get('content-type')).to.equal('application/x-thing');
      expect(f.headers.get('priority')).to.equal('7');
      // The destination comes from the channel's mapping, never from the payload.
      expect(headerValues(f, 'destination')).to.deep.equal([destination]);
    }
    await Promise.all(subscribers.map((s) => s.noFrame(300)));
  });

  it('json: a payload that is not JSON is dropped, counted in stompede_bridge_records_dropped_total and logged; the next one flows', async () => {
    const name = unique('o');
    const destination = `/topic/orders.${name}`;
    const node = cluster.node(2);
    const labels = { reason: 'json-invalid' };
    const before = series(await scrape(node), 'stompede_bridge_records_dropped_total', labels);
    const subscriber = await rawSubscriber(node, destination);
    await redisCli('PUBLISH', `${run}.orders.${name}`, 'this is not json');
    await redisCli('PUBLISH', `${run}.orders.${name}`, '{"body":"fine"}');
    const f = await subscriber.nextFrame(10_000);
    expect(f.body.toString()).to.equal('fine');
    const after = series(await scrape(node), 'stompede_bridge_records_dropped_total', labels);
    expect(after - before).to.equal(1);
    await until(() => node.logSince(0).includes('json-invalid'), 5_000, 'the drop in the node log');
  });

  it('wildcards: `/topic/news.*` watches the channel pattern, maps channels back, and one PUBLISH is one MESSAGE per subscription', async () => {
    const name = unique('w');
    const node = cluster.node(0);
    const client = await pool.stompit(node);
    const wildcard = await client.subscribe('/topic/news.*');
    const exact = await client.subscribe(`/topic/news.${name}`);
    const other = await pool.stompit(cluster.node(1));
    const remote = await other.subscribe('/topic/news.*');
    // Only the patterns hear this channel: no node subscribed to it exactly.
    expect(Number(await redisCli('PUBLISH', `${run}.news.${name}x`, 'by pattern'))).to.be.at.least(2);
    // Node 0 hears this one through its channel and its pattern: still one MESSAGE per subscription.
    await redisCli('PUBLISH', `${run}.news.${name}`, 'both ways');
    await redisCli('PUBLISH', `${run}.news.${name}`, 'both ways');
    await wildcard.inbox.count(3, 10_000);
    await remote.inbox.count(3, 10_000);
    await exact.inbox.count(2, 10_000);
    await waitQuiet(300);
    expect(wildcard.inbox.messages.map((m) => `${m.headers.destination} ${m.body}`)).to.deep.equal([
      `/topic/news.${name}x by pattern`,
      `/topic/news.${name} both ways`,
      `/topic/news.${name} both ways`,
    ]);
    expect(remote.inbox.bodies()).to.deep.equal(['by pattern', 'both ways', 'both ways']);
    expect(exact.inbox.bodies()).to.deep.equal(['both ways', 'both ways']);
  });

  it('direct prefix: `/redis/<channel>` and a mapped topic of the same channel each get one PUBLISH once, on every node', async () => {
    const name = unique('d');
    const subs: { label: string; sub: Subscription }[] = [];
    for (const node of cluster.nodes) {
      const client = await pool.stompit(node);
      subs.push({ label: `${client.label} /redis/`, sub: await client.subscribe(`/redis/echo.${name}`) });
      subs.push({ label: `${client.label} /topic/`, sub: await client.subscribe(`/topic/echo.${name}`) });
    }
    await redisCli('PUBLISH', `echo.${name}`, 'to both');
    const sender = await pool.stompit(cluster.node(1));
    await sender.send(`/redis/echo.${name}`, 'sent to /redis/');
    await Promise.all(subs.map(({ label, sub }) => sub.inbox.count(2, 10_000, label)));
    await waitQuiet(300);
    for (const { label, sub } of subs) {
      expect(sub.inbox.bodies(), label).to.deep.equal(['to both', 'sent to /redis/']);
      expect(new Set(sub.inbox.messages.map((m) => m.headers.destination)), label).to.deep.equal(new Set([sub.destination]));
    }
  });

  it('other channels stay private: a SEND on a stompede route is not seen on any named channel of its name', async () => {
    const name = unique('p');
    const reader = await plain();
    const seen: string[] = [];
    await reader.pSubscribe(`*${name}*`, (message) => seen.push(message));
    const client = await pool.stompit(cluster.node(0));
    const sub = await client.subscribe(`/topic/chat.${name}`);
    await client.send(`/topic/chat.${name}`, 'private');
    await sub.inbox.count(1, 10_000);
    await waitQuiet(200);
    // The private channel is `<cluster>:t:/:/topic/chat.<name>`, in the binary envelope.
    expect(seen.length).to.equal(1);
    expect(seen[0]).to.not.equal('private');
  });
});
