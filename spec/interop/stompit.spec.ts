import { expect } from 'chai';
import stompit from 'stompit';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import {
  delay,
  expectEachDeliveredOnce,
  Inbox,
  sessionById,
  waitUntil,
  watchSessionErrors,
  within,
  type SessionErrorLog,
} from './harness.js';
import { SERVER_VERSION } from '../../broker/version.js';

/**
 * stompit 1.0.0 over TCP: CONNECT with `host` = the TCP host and `accept-version:1.0,1.1,1.2`; bodies streamed with
 * no content-length; `\x00\n` after every frame; ACK/NACK carry subscription, message-id and id; 100 ms of lateness
 * allowed on the server's heart-beats. Bytes the client writes are tapped so the frames it sends are asserted too.
 */

const HEARTBEAT_MS = 250;

interface Received {
  readonly headers: Readonly<Record<string, string | number | undefined>>;
  readonly body: string;
  readonly frame: stompit.IncomingFrame;
}

interface Peer {
  readonly client: stompit.Client;
  /** Every chunk the client wrote to its socket, decoded as UTF-8. */
  readonly written: string[];
  /** Every chunk the broker sent. */
  readonly read: Buffer[];
  /** When each lone LF (a server heart-beat) arrived. */
  readonly beatsIn: number[];
  /** Errors stompit reported (it destroys the connection on each). */
  readonly errors: Error[];
  readonly session: string;
  ended: boolean;
}

describe('interop › stompit 1.0.0 over TCP', function () {
  this.timeout(15_000);
  let t: TestBroker;
  let log: SessionErrorLog;
  let peers: Peer[] = [];

  before(async () => {
    t = await startBroker({ heartbeatMinMs: HEARTBEAT_MS });
    log = watchSessionErrors(t.broker);
  });

  afterEach(async () => {
    await Promise.all(peers.map((p) => close(p)));
    peers = [];
  });

  after(async () => {
    log?.stop();
    await t?.close();
  });

  async function open(options: stompit.ConnectOptions = {}): Promise<Peer> {
    const written: string[] = [];
    const read: Buffer[] = [];
    const beatsIn: number[] = [];
    const errors: Error[] = [];
    let connectResult: ((error: Error | null) => void) | undefined;
    const connected = new Promise<void>((resolve, reject) => {
      connectResult = (error) => (error === null ? resolve() : reject(error));
    });
    // noDelay: stompit writes header, body and `\x00\n` separately; with Nagle each frame would wait ~40 ms.
    const client = stompit.connect({ host: '127.0.0.1', port: t.tcpPort, noDelay: true, ...options }, (error) => connectResult?.(error));
    const socket = client.getTransportSocket();
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = (chunk: string | Uint8Array, ...rest: unknown[]) => {
      written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return write(chunk, ...rest);
    };
    socket.on('data', (chunk: Buffer) => {
      read.push(chunk);
      if (chunk.length === 1 && chunk[0] === 0x0a) beatsIn.push(Date.now());
    });
    client.on('error', (error: Error) => errors.push(error));
    await within(connected, 3000, 'CONNECTED');
    const peer: Peer = { client, written, read, beatsIn, errors, session: String(client.headers.session), ended: false };
    client.on('end', () => (peer.ended = true));
    client.on('error', () => (peer.ended = true));
    peers.push(peer);
    return peer;
  }

  /** Graceful DISCONNECT (with its receipt); a client that does not finish in time is destroyed. */
  async function close(peer: Peer): Promise<void> {
    if (peer.ended) return;
    const done = new Promise<void>((resolve) => peer.client.disconnect(() => resolve()));
    try {
      await within(done, 2000, 'DISCONNECT receipt');
    } catch {
      peer.client.destroy();
    }
    peer.ended = true;
  }

  /** SUBSCRIBE with a receipt: stompit's subscribe() cannot ask for one, so the frame is sent by hand. */
  async function subscribe(peer: Peer, headers: stompit.OutgoingHeaders & { id: string; destination: string }): Promise<Inbox<Received>> {
    const inbox = new Inbox<Received>();
    const ack = String(headers.ack ?? 'auto');
    peer.client.setImplicitSubscription(headers.id, ack, (error, frame) => {
      if (error !== null || frame === undefined) return;
      frame.readString('utf8', (_e, body) => inbox.push({ headers: { ...frame.headers }, body: body ?? '', frame }));
    });
    await withReceipt(peer, 'SUBSCRIBE', headers);
    return inbox;
  }

  function withReceipt(peer: Peer, command: string, headers: stompit.OutgoingHeaders, body?: string): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const frame = peer.client.sendFrame(command, headers, { onReceipt: resolve });
        if (body === undefined) frame.end();
        else frame.end(body);
      }),
      3000,
      `RECEIPT for ${command}`,
    );
  }

  function ackWithReceipt(peer: Peer, kind: 'ack' | 'nack', message: Received, headers: stompit.OutgoingHeaders = {}): Promise<void> {
    return within(
      new Promise<void>((resolve) => peer.client[kind](message.frame, headers, { onReceipt: resolve })),
      3000,
      `RECEIPT for ${kind}`,
    );
  }

  /** The frames a client wrote since `from` (an index into `written`), joined. */
  function wireSince(peer: Peer, from: number): string {
    return peer.written.slice(from).join('');
  }

  it('connects with CONNECT, host:localhost and accept-version 1.0,1.1,1.2, and gets a 1.2 session on the default vhost', async () => {
    const peer = await open({ host: 'localhost' });
    expect(peer.written.join('')).to.equal('CONNECT\naccept-version:1.0,1.1,1.2\nhost:localhost\nheart-beat:0,0\n\n\x00\n');
    expect(peer.client.headers).to.deep.equal({
      version: '1.2',
      session: peer.session,
      server: `stompede/${SERVER_VERSION}`,
      // stompit offers 0,0 by default: no heart-beats either way.
      'heart-beat': '0,0',
    });
    const session = sessionById(t.broker, peer.session);
    expect(session?.version).to.equal('1.2');
    expect(session?.vhost?.name).to.equal('/');
    expect(peer.errors).to.deep.equal([]);
  });

  it('publishes to a topic subscriber with receipts; the SEND has no content-length and ends with NUL LF', async () => {
    const dest = `/topic/${uniqueName('stompit')}`;
    const sub = await open();
    const pub = await open();
    const inbox = await subscribe(sub, { id: 'chat', destination: dest });
    const body = 'héllo, wörld\nsecond line: ✓';
    const mark = pub.written.length;
    await withReceipt(
      pub,
      'SEND',
      { destination: dest, 'content-type': 'text/plain;charset=utf-8', 'x-escaped': 'a:b\\c', 'x-plain': 'v' },
      body,
    );

    // STOMP 1.2 §Value Encoding: `:` and `\` escaped; no content-length, so the broker reads up to the NUL.
    expect(wireSince(pub, mark)).to.equal(
      `SEND\ndestination:${dest}\ncontent-type:text/plain;charset=utf-8\nx-escaped:a\\cb\\\\c\nx-plain:v\nreceipt:1\n\n${body}\x00\n`,
    );
    const message = await inbox.next('MESSAGE');
    expect(message.body).to.equal(body);
    expect(message.headers['message-id']).to.match(/^[A-Za-z0-9._-]+-[0-9a-z]+$/);
    expect(message.headers).to.deep.equal({
      subscription: 'chat',
      destination: dest,
      'message-id': message.headers['message-id'],
      'content-type': 'text/plain;charset=utf-8',
      'x-escaped': 'a:b\\c',
      'x-plain': 'v',
      'content-length': Buffer.byteLength(body),
    });
    expect([...sub.errors, ...pub.errors]).to.deep.equal([]);
    expect(log.errors).to.deep.equal([]);
  });

  it('routes wildcard topic subscriptions: * matches one segment, # any number', async () => {
    const base = uniqueName('stompit');
    const peer = await open();
    const star = await subscribe(peer, { id: 'star', destination: `/topic/${base}.*` });
    const hash = await subscribe(peer, { id: 'hash', destination: `/topic/${base}.#` });
    for (const name of ['a', 'a.b', 'z']) await withReceipt(peer, 'SEND', { destination: `/topic/${base}.${name}` }, name);

    const starred = await star.take(2, '* messages');
    expect(starred.map((m) => [m.headers.destination, m.body])).to.deep.equal([
      [`/topic/${base}.a`, 'a'],
      [`/topic/${base}.z`, 'z'],
    ]);
    const hashed = await hash.take(3, '# messages');
    expect(hashed.map((m) => m.body)).to.deep.equal(['a', 'a.b', 'z']);
    expect(hashed.every((m) => m.headers.subscription === 'hash')).to.equal(true);
  });

  for (const version of ['1.2', '1.1'] as const) {
    it(`STOMP ${version}: NACK in client-individual mode redelivers with redelivered:true, and ACK settles it`, async () => {
      const dest = `/queue/${uniqueName('stompit')}`;
      const connectHeaders = { 'accept-version': version };
      const consumer = await open({ connectHeaders });
      expect(consumer.client.headers.version).to.equal(version);
      const inbox = await subscribe(consumer, { id: 'work', destination: dest, ack: 'client-individual' });
      await withReceipt(consumer, 'SEND', { destination: dest, 'x-job': '1' }, 'job-1');

      const first = await inbox.next('first delivery');
      expect(first.body).to.equal('job-1');
      expect(first.headers.ack).to.be.a('string');
      expect(first.headers.redelivered).to.equal(undefined);
      const mark = consumer.written.length;
      await ackWithReceipt(consumer, 'nack', first);
      // stompit sends all three ways of naming the message, on every version.
      expect(wireSince(consumer, mark)).to.equal(
        `NACK\nsubscription:work\nmessage-id:${String(first.headers['message-id'])}\nid:${String(first.headers.ack)}\nreceipt:3\n\n\x00\n`,
      );

      const again = await inbox.next('redelivery');
      expect(again.body).to.equal('job-1');
      expect(again.headers).to.deep.equal({
        subscription: 'work',
        ack: again.headers.ack,
        destination: dest,
        'message-id': first.headers['message-id'],
        'x-job': '1',
        redelivered: 'true',
        'x-delivery-count': '1',
        'content-length': 5,
      });
      expect(again.headers.ack).to.not.equal(first.headers.ack);
      await ackWithReceipt(consumer, 'ack', again);
      await close(consumer);

      // Had the ACK not settled it, the disconnect would have returned job-1 to the queue, ahead of job-2.
      const next = await open({ connectHeaders });
      const inbox2 = await subscribe(next, { id: 'work2', destination: dest, ack: 'client-individual' });
      await withReceipt(next, 'SEND', { destination: dest }, 'job-2');
      const second = await inbox2.next('job-2');
      expect([second.body, second.headers.redelivered]).to.deep.equal(['job-2', undefined]);
      await ackWithReceipt(next, 'ack', second);
      expect(log.errors).to.deep.equal([]);
    });
  }

  it('a queue with two consumers gives each of 40 messages to exactly one of them, none lost', async () => {
    const dest = `/queue/${uniqueName('stompit-once')}`;
    const [a, b, producer] = [await open(), await open(), await open()];
    const inboxes = [await subscribe(a, { id: 'a', destination: dest }), await subscribe(b, { id: 'b', destination: dest })];
    const sent = Array.from({ length: 40 }, (_, i) => `job-${i}`);
    for (const body of sent) await withReceipt(producer, 'SEND', { destination: dest }, body);
    const total = (): number => inboxes.reduce((n, inbox) => n + inbox.pending.length, 0);
    await waitUntil(
      () => total() >= sent.length,
      5_000,
      () => `${sent.length} messages across both consumers; have ${total()}`,
    );
    // The UNSUBSCRIBE receipts come after any MESSAGE the broker sent before them: a duplicate would be here by then
    // (stompit reads a frame's body before the next frame, and hands the body over in a callback: one turn later).
    await withReceipt(a, 'UNSUBSCRIBE', { id: 'a' });
    await withReceipt(b, 'UNSUBSCRIBE', { id: 'b' });
    await new Promise((resolve) => setImmediate(resolve));
    expectEachDeliveredOnce(
      sent,
      inboxes.map((inbox) => inbox.pending.map((m) => m.body)),
    );
    expect(log.errors).to.deep.equal([]);
  });

  it('client mode: one ACK covers every earlier message; the unacknowledged rest return on disconnect', async () => {
    const dest = `/queue/${uniqueName('stompit')}`;
    const consumer = await open();
    const inbox = await subscribe(consumer, { id: 'c', destination: dest, ack: 'client' });
    for (const body of ['a', 'b', 'c']) await withReceipt(consumer, 'SEND', { destination: dest }, body);
    const got = await inbox.take(3, 'a, b, c');
    expect(got.map((m) => m.body)).to.deep.equal(['a', 'b', 'c']);
    await ackWithReceipt(consumer, 'ack', got[1] as Received);
    await close(consumer);

    const next = await open();
    const inbox2 = await subscribe(next, { id: 'c2', destination: dest, ack: 'client-individual' });
    const back = await inbox2.next('c, returned');
    expect([back.body, back.headers.redelivered, back.headers['x-delivery-count']]).to.deep.equal(['c', 'true', '1']);
    await ackWithReceipt(next, 'ack', back);
    await withReceipt(next, 'SEND', { destination: dest }, 'd');
    expect((await inbox2.next('d')).body).to.equal('d');
    expect(inbox2.pending).to.have.length(0);
  });

  it('transactions: SENDs take effect at COMMIT, in order, and are dropped by ABORT', async () => {
    const dest = `/topic/${uniqueName('stompit')}`;
    const sub = await open();
    const pub = await open();
    const inbox = await subscribe(sub, { id: 's', destination: dest });

    const tx = pub.client.begin('tx-1');
    tx.send({ destination: dest, 'x-n': '1' }).end('t1');
    tx.send({ destination: dest, 'x-n': '2' }).end('t2');
    await withReceipt(pub, 'SEND', { destination: dest }, 'outside');
    expect((await inbox.next('outside')).body).to.equal('outside');
    await within(new Promise<void>((resolve) => tx.commit({ onReceipt: resolve })), 3000, 'COMMIT receipt');
    const committed = await inbox.take(2, 'committed messages');
    expect(committed.map((m) => [m.body, m.headers['x-n'], m.headers.transaction])).to.deep.equal([
      ['t1', '1', undefined],
      ['t2', '2', undefined],
    ]);

    const tx2 = pub.client.begin('tx-2');
    tx2.send({ destination: dest }).end('dropped');
    await within(new Promise<void>((resolve) => tx2.abort({ onReceipt: resolve })), 3000, 'ABORT receipt');
    await withReceipt(pub, 'SEND', { destination: dest }, 'after-abort');
    expect((await inbox.next('after-abort')).body).to.equal('after-abort');
    expect(inbox.pending).to.have.length(0);
    expect(pub.written.join('')).to.contain('BEGIN\ntransaction:tx-1\n\n\x00\n');
    expect(log.errors).to.deep.equal([]);
  });

  it('transactions: an ACK in an aborted transaction does not settle; in a committed one it does', async () => {
    const dest = `/queue/${uniqueName('stompit')}`;
    const consumer = await open();
    const inbox = await subscribe(consumer, { id: 'q', destination: dest, ack: 'client-individual' });
    await withReceipt(consumer, 'SEND', { destination: dest }, 'm');
    const m = await inbox.next('m');
    consumer.client.begin('tx-a');
    await ackWithReceipt(consumer, 'ack', m, { transaction: 'tx-a' });
    await withReceipt(consumer, 'ABORT', { transaction: 'tx-a' });
    await withReceipt(consumer, 'UNSUBSCRIBE', { id: 'q' });

    const inbox2 = await subscribe(consumer, { id: 'q2', destination: dest, ack: 'client-individual' });
    const back = await inbox2.next('m, returned after the aborted ACK');
    expect([back.body, back.headers.redelivered]).to.deep.equal(['m', 'true']);
    consumer.client.begin('tx-b');
    await ackWithReceipt(consumer, 'ack', back, { transaction: 'tx-b' });
    await withReceipt(consumer, 'COMMIT', { transaction: 'tx-b' });
    await withReceipt(consumer, 'UNSUBSCRIBE', { id: 'q2' });

    const inbox3 = await subscribe(consumer, { id: 'q3', destination: dest, ack: 'client-individual' });
    await withReceipt(consumer, 'SEND', { destination: dest }, 'sentinel');
    const next = await inbox3.next('sentinel');
    expect([next.body, next.headers.redelivered]).to.deep.equal(['sentinel', undefined]);
    expect(log.errors).to.deep.equal([]);
  });

  it(`heart-beats flow both ways every ${HEARTBEAT_MS} ms and the connection stays up (server beats within stompit's 100 ms margin)`, async () => {
    const peer = await open({ heartbeat: [200, 200] });
    expect(peer.written[0]).to.contain('heart-beat:200,200\n');
    expect(peer.client.headers['heart-beat']).to.equal(`${HEARTBEAT_MS},${HEARTBEAT_MS}`);
    const start = Date.now();
    const sentBefore = peer.written.filter((w) => w === '\n').length;
    await delay(HEARTBEAT_MS * 6);

    const sent = peer.written.filter((w) => w === '\n').length - sentBefore;
    const received = peer.beatsIn.filter((at) => at >= start);
    expect(sent, 'client heart-beats').to.be.at.least(4);
    expect(received.length, 'server heart-beats').to.be.at.least(5);
    // stompit drops the connection when a whole (interval + 100 ms) passes without a byte.
    const gaps = received.slice(1).map((at, i) => at - (received[i] as number));
    expect(Math.max((received[0] as number) - start, ...gaps), 'longest silence from the server').to.be.below(HEARTBEAT_MS + 100);
    expect(peer.errors).to.deep.equal([]);
    expect(sessionById(t.broker, peer.session)?.connected, 'broker session alive').to.equal(true);

    const dest = `/topic/${uniqueName('stompit')}`;
    const inbox = await subscribe(peer, { id: 'hb', destination: dest });
    await withReceipt(peer, 'SEND', { destination: dest }, 'still here');
    expect((await inbox.next('message after heart-beats')).body).to.equal('still here');
    expect(log.errors).to.deep.equal([]);
  });

  it('reports a broker ERROR as an error event, without crashing the process', async () => {
    const peer = await open();
    const failed = new Promise<Error>((resolve) => peer.client.once('error', resolve));
    peer.client.send({ destination: '/nowhere' }).end('x');
    const error = await within(failed, 3000, 'error event');
    expect(error.message).to.equal('invalid destination "/nowhere"');
    // stompit 1.0.0 crashes the process (an unhandled 'error' on the frame stream) when an ERROR's content-type is
    // exactly `text/plain` and its content-length at most 4096; the charset parameter keeps it on the safe path.
    const wire = Buffer.concat(peer.read).toString('utf8');
    expect(wire).to.match(
      /\0ERROR\nmessage:invalid destination "\/nowhere"\ncontent-type:text\/plain;charset=utf-8\ncontent-length:\d+\n\n/,
    );
    expect(log.errors).to.deep.equal(['ERR_BAD_DESTINATION: invalid destination "/nowhere"']);
    log.errors.length = 0;
  });

  it('disconnects with a receipt, and the broker ends the session first', async () => {
    const peer = await open();
    expect(sessionById(t.broker, peer.session)).to.not.equal(undefined);
    const mark = peer.written.length;
    await within(
      new Promise<void>((resolve, reject) => peer.client.disconnect((e) => (e === null ? resolve() : reject(e)))),
      3000,
      'disconnect',
    );
    expect(wireSince(peer, mark)).to.equal('DISCONNECT\nreceipt:1\n\n\x00\n');
    expect(sessionById(t.broker, peer.session)).to.equal(undefined);
    expect(peer.errors).to.deep.equal([]);
  });
});
