import { expect } from 'chai';
import { Client, type IFrame, type IMessage, type IStompSocket, type StompConfig, type StompHeaders } from '@stomp/stompjs';
import { WebSocket } from 'ws';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import {
  binaryFixture,
  delay,
  expectEachDeliveredOnce,
  Inbox,
  largeText,
  sessionById,
  waitUntil,
  watchSessionErrors,
  within,
  type SessionErrorLog,
} from './harness.js';
import { TcpStompSocket } from './tcp-stomp-socket.js';
import { SERVER_VERSION } from '../../broker/version.js';

/**
 * @stomp/stompjs 7 in Node, over WebSocket (the `ws` package, offering stompjs' v12/v11/v10.stomp subprotocols)
 * and over TCP (an IStompSocket adapter on node:net). stompjs always sends CONNECT with no `host`, escapes only in
 * 1.2, adds content-length to every non-empty body, trims received header values, and sends LF pings as text.
 * With `logRawCommunication` its debug log carries every frame it sends, which the specs assert byte for byte.
 */

const HEARTBEAT_MS = 250;
type Transport = 'ws' | 'tcp';

/** One stompjs client and what it was seen to send and receive. */
class Peer {
  readonly client: Client;
  connected: IFrame | undefined;
  /** Raw text of every frame stompjs sent (binary ones excepted), in order. */
  readonly sent: string[] = [];
  /** When each heart-beat went out, and when each one from the broker came in. */
  readonly pingsOut: number[] = [];
  readonly pongsIn: number[] = [];
  readonly stompErrors: IFrame[] = [];
  /** WebSocket only: every message the broker sent, as the `ws` package saw it. */
  readonly wsMessages: { binary: boolean; bytes: number }[] = [];
  ws: WebSocket | undefined;

  constructor(config: (peer: Peer) => StompConfig) {
    this.client = new Client(config(this));
  }
}

for (const transport of ['ws', 'tcp'] as const) describeStompjs(transport);

function describeStompjs(transport: Transport): void {
  describe(`interop › @stomp/stompjs 7 over ${transport === 'ws' ? 'WebSocket' : 'TCP'}`, function () {
    this.timeout(15_000);
    let t: TestBroker;
    let log: SessionErrorLog;
    let peers: Peer[] = [];
    let receipts = 0;

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

    async function open(overrides: StompConfig = {}): Promise<Peer> {
      const peer = new Peer((p) => ({
        webSocketFactory: (): IStompSocket => {
          if (transport === 'tcp') return new TcpStompSocket('127.0.0.1', t.tcpPort);
          const ws = new WebSocket(t.wsUrl, p.client.stompVersions.protocolVersions());
          // stompjs sets binaryType 'arraybuffer', which `ws` applies to binary messages only.
          ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
            const bytes = data instanceof ArrayBuffer ? data.byteLength : Buffer.isBuffer(data) ? data.length : Buffer.concat(data).length;
            p.wsMessages.push({ binary: isBinary, bytes });
          });
          p.ws = ws;
          return ws;
        },
        reconnectDelay: 0,
        logRawCommunication: true,
        debug: (line: string) => {
          if (line === '>>> PING') p.pingsOut.push(Date.now());
          else if (line.startsWith('>>> ')) p.sent.push(line.slice(4));
        },
        onStompError: (frame) => p.stompErrors.push(frame),
        onHeartbeatReceived: () => p.pongsIn.push(Date.now()),
        ...overrides,
      }));
      const connected = new Promise<IFrame>((resolve) => (peer.client.onConnect = resolve));
      peer.client.activate();
      peers.push(peer);
      peer.connected = await within(connected, 3000, 'CONNECTED');
      return peer;
    }

    /** DISCONNECT with a receipt, then the socket closes; a client that does not finish in time is discarded. */
    async function close(peer: Peer): Promise<void> {
      try {
        await within(peer.client.deactivate(), 2000, 'deactivate');
      } catch {
        await peer.client.deactivate({ force: true });
      }
    }

    function receipt(peer: Peer): { id: string; arrived: Promise<IFrame> } {
      const id = `r-${++receipts}`;
      const arrived = within(new Promise<IFrame>((resolve) => peer.client.watchForReceipt(id, resolve)), 3000, `RECEIPT ${id}`);
      return { id, arrived };
    }

    async function publish(peer: Peer, destination: string, body: string | Uint8Array, headers: StompHeaders = {}): Promise<void> {
      const r = receipt(peer);
      const params = typeof body === 'string' ? { body } : { binaryBody: body };
      peer.client.publish({ destination, headers: { ...headers, receipt: r.id }, ...params });
      await r.arrived;
    }

    async function subscribe(
      peer: Peer,
      destination: string,
      headers: StompHeaders = {},
    ): Promise<{ inbox: Inbox<IMessage>; unsubscribe(): Promise<void> }> {
      const inbox = new Inbox<IMessage>();
      const r = receipt(peer);
      const sub = peer.client.subscribe(destination, inbox.push, { ...headers, receipt: r.id });
      await r.arrived;
      return {
        inbox,
        unsubscribe: async () => {
          const u = receipt(peer);
          sub.unsubscribe({ receipt: u.id });
          await u.arrived;
        },
      };
    }

    async function settle(peer: Peer, message: IMessage, kind: 'ack' | 'nack', headers: StompHeaders = {}): Promise<void> {
      const r = receipt(peer);
      message[kind]({ ...headers, receipt: r.id });
      await r.arrived;
    }

    it('connects with CONNECT (accept-version 1.2,1.1,1.0, no host) and negotiates 1.2', async () => {
      const peer = await open();
      expect(peer.sent[0]).to.equal('CONNECT\naccept-version:1.2,1.1,1.0\nheart-beat:10000,10000\n\n\x00');
      expect(peer.connected?.headers).to.deep.equal({
        version: '1.2',
        session: peer.connected?.headers.session,
        server: `stompede/${SERVER_VERSION}`,
        // stomp.js offers 10000,10000 by default: above the floor, so honored as it is.
        'heart-beat': '10000,10000',
      });
      if (transport === 'ws') expect(peer.ws?.protocol).to.equal('v12.stomp');
      const session = sessionById(t.broker, peer.connected?.headers.session);
      expect(session?.version).to.equal('1.2');
      expect(session?.vhost?.name).to.equal('/');
    });

    it('publishes to a topic subscriber with receipts, escaping header values both ways', async () => {
      const dest = `/topic/${uniqueName('stompjs')}`;
      const sub = await open();
      const pub = await open();
      const { inbox } = await subscribe(sub, dest, { id: 'news' });
      const body = 'héllo, wörld ✓\nline two';
      const headers = { 'content-type': 'text/plain;charset=utf-8', 'x-escaped': 'a:b\\x\ny' };
      await publish(pub, dest, body, headers);

      const bytes = Buffer.byteLength(body);
      expect(pub.sent.at(-1)).to.equal(
        `SEND\ndestination:${dest}\ncontent-type:text/plain;charset=utf-8\nx-escaped:a\\cb\\\\x\\ny\nreceipt:r-${receipts}\ncontent-length:${bytes}\n\n${body}\x00`,
      );
      const message = await inbox.next('MESSAGE');
      expect(message.body).to.equal(body);
      expect(message.headers['message-id']).to.match(/^[A-Za-z0-9._-]+-[0-9a-z]+$/);
      expect(message.headers).to.deep.equal({
        subscription: 'news',
        destination: dest,
        'message-id': message.headers['message-id'],
        ...headers,
        'content-length': String(bytes),
      });
      if (transport === 'ws')
        expect(
          sub.wsMessages.filter((m) => m.binary),
          'binary WebSocket messages',
        ).to.deep.equal([]);
      expect([...sub.stompErrors, ...pub.stompErrors]).to.deep.equal([]);
      expect(log.errors).to.deep.equal([]);
    });

    it('carries a 1 MiB body through a queue, exactly', async () => {
      const dest = `/queue/${uniqueName('stompjs')}`;
      const peer = await open();
      const { inbox } = await subscribe(peer, dest);
      const body = largeText();
      expect(body.length).to.equal(1024 * 1024);
      await publish(peer, dest, body, { 'content-type': 'text/plain' });
      const message = await inbox.next('1 MiB MESSAGE', 10_000);
      expect(message.headers['content-length']).to.equal('1048576');
      expect(message.body.length).to.equal(body.length);
      expect(message.body === body, 'body identical').to.equal(true);
      // One frame, one WebSocket message: stompjs cannot reassemble a frame split across messages.
      if (transport === 'ws') expect(peer.wsMessages.filter((m) => m.bytes > body.length)).to.have.length(1);
      expect(log.errors).to.deep.equal([]);
    });

    it(`carries a binary body (NULs, invalid UTF-8) exactly${transport === 'ws' ? ', as a binary WebSocket message' : ''}`, async () => {
      const dest = `/queue/${uniqueName('stompjs')}`;
      const peer = await open();
      const { inbox } = await subscribe(peer, dest);
      const bytes = binaryFixture();
      await publish(peer, dest, bytes, { 'content-type': 'application/octet-stream' });
      const message = await inbox.next('binary MESSAGE');
      expect(message.headers['content-length']).to.equal(String(bytes.length));
      expect(message.headers['content-type']).to.equal('application/octet-stream');
      expect(Buffer.from(message.binaryBody).equals(Buffer.from(bytes)), 'body identical').to.equal(true);
      // The only binary WebSocket message of the session is that MESSAGE; CONNECTED and RECEIPTs are text.
      if (transport === 'ws') expect(peer.wsMessages.filter((m) => m.binary).map((m) => m.bytes > bytes.length)).to.deep.equal([true]);
      expect(log.errors).to.deep.equal([]);
    });

    it('NACK in client-individual mode redelivers with redelivered:true, and ACK settles it', async () => {
      const dest = `/queue/${uniqueName('stompjs')}`;
      const consumer = await open();
      const { inbox } = await subscribe(consumer, dest, { id: 'work', ack: 'client-individual' });
      await publish(consumer, dest, 'job-1', { 'x-job': '1' });
      const first = await inbox.next('first delivery');
      expect([first.body, first.headers.redelivered]).to.deep.equal(['job-1', undefined]);
      await settle(consumer, first, 'nack');
      // STOMP 1.2 §NACK: `id` is the MESSAGE's `ack` value.
      expect(consumer.sent.at(-1)).to.equal(`NACK\nreceipt:r-${receipts}\nid:${first.headers.ack}\nsubscription:work\n\n\x00`);

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
        'content-length': '5',
      });
      expect(again.headers.ack).to.not.equal(first.headers.ack);
      await settle(consumer, again, 'ack');
      await close(consumer);

      // Had the ACK not settled it, the disconnect would have returned job-1 ahead of job-2.
      const next = await open();
      const { inbox: inbox2 } = await subscribe(next, dest, { ack: 'client-individual' });
      await publish(next, dest, 'job-2');
      const second = await inbox2.next('job-2');
      expect([second.body, second.headers.redelivered]).to.deep.equal(['job-2', undefined]);
      await settle(next, second, 'ack');
      expect(log.errors).to.deep.equal([]);
    });

    it('a queue with two consumers gives each of 40 messages to exactly one of them, none lost', async () => {
      const dest = `/queue/${uniqueName('stompjs-once')}`;
      const [a, b, producer] = [await open(), await open(), await open()];
      const consumers = [await subscribe(a, dest), await subscribe(b, dest)];
      const sent = Array.from({ length: 40 }, (_, i) => `job-${i}`);
      for (const body of sent) await publish(producer, dest, body);
      const total = (): number => consumers.reduce((n, c) => n + c.inbox.pending.length, 0);
      await waitUntil(
        () => total() >= sent.length,
        5_000,
        () => `${sent.length} messages across both consumers; have ${total()}`,
      );
      // The UNSUBSCRIBE receipts come after any MESSAGE the broker sent before them: a duplicate would be here by then.
      for (const c of consumers) await c.unsubscribe();
      expectEachDeliveredOnce(
        sent,
        consumers.map((c) => c.inbox.pending.map((m) => m.body)),
      );
      expect(log.errors).to.deep.equal([]);
    });

    it('client mode: a NACK returns every earlier message in order, and one ACK settles them all', async () => {
      const dest = `/queue/${uniqueName('stompjs')}`;
      const consumer = await open();
      const s = await subscribe(consumer, dest, { ack: 'client' });
      for (const body of ['a', 'b']) await publish(consumer, dest, body);
      const got = await s.inbox.take(2, 'a, b');
      await settle(consumer, got[1] as IMessage, 'nack');
      const back = await s.inbox.take(2, 'a, b again');
      expect(back.map((m) => [m.body, m.headers.redelivered, m.headers['message-id']])).to.deep.equal(
        got.map((m) => [m.body, 'true', m.headers['message-id']]),
      );
      await settle(consumer, back[1] as IMessage, 'ack');
      await s.unsubscribe();

      const s2 = await subscribe(consumer, dest, { ack: 'client-individual' });
      await publish(consumer, dest, 'c');
      const next = await s2.inbox.next('c');
      expect([next.body, next.headers.redelivered]).to.deep.equal(['c', undefined]);
      expect(log.errors).to.deep.equal([]);
    });

    it('transactions: SENDs take effect at COMMIT, in order, and are dropped by ABORT', async () => {
      const dest = `/topic/${uniqueName('stompjs')}`;
      const sub = await open();
      const pub = await open();
      const { inbox } = await subscribe(sub, dest);

      const tx = pub.client.begin('tx-1');
      pub.client.publish({ destination: dest, body: 't1', headers: { transaction: tx.id } });
      pub.client.publish({ destination: dest, body: 't2', headers: { transaction: tx.id } });
      await publish(pub, dest, 'outside');
      expect((await inbox.next('outside')).body).to.equal('outside');
      tx.commit();
      await publish(pub, dest, 'after-commit');
      const committed = await inbox.take(3, 'committed messages');
      expect(committed.map((m) => [m.body, m.headers.transaction])).to.deep.equal([
        ['t1', undefined],
        ['t2', undefined],
        ['after-commit', undefined],
      ]);

      const tx2 = pub.client.begin('tx-2');
      pub.client.publish({ destination: dest, body: 'dropped', headers: { transaction: tx2.id } });
      tx2.abort();
      await publish(pub, dest, 'after-abort');
      expect((await inbox.next('after-abort')).body).to.equal('after-abort');
      expect(inbox.pending).to.have.length(0);
      expect(pub.sent).to.include.members([
        'BEGIN\ntransaction:tx-1\n\n\x00',
        'COMMIT\ntransaction:tx-1\n\n\x00',
        'ABORT\ntransaction:tx-2\n\n\x00',
      ]);
      expect(log.errors).to.deep.equal([]);
    });

    it('transactions: an ACK in an aborted transaction does not settle; in a committed one it does', async () => {
      const dest = `/queue/${uniqueName('stompjs')}`;
      const consumer = await open();
      const s1 = await subscribe(consumer, dest, { ack: 'client-individual' });
      await publish(consumer, dest, 'm');
      const m = await s1.inbox.next('m');
      const txa = consumer.client.begin();
      await settle(consumer, m, 'ack', { transaction: txa.id });
      txa.abort();
      await s1.unsubscribe();

      const s2 = await subscribe(consumer, dest, { ack: 'client-individual' });
      const back = await s2.inbox.next('m, returned after the aborted ACK');
      expect([back.body, back.headers.redelivered]).to.deep.equal(['m', 'true']);
      const txb = consumer.client.begin();
      await settle(consumer, back, 'ack', { transaction: txb.id });
      txb.commit();
      await s2.unsubscribe();

      const s3 = await subscribe(consumer, dest, { ack: 'client-individual' });
      await publish(consumer, dest, 'sentinel');
      const next = await s3.inbox.next('sentinel');
      expect([next.body, next.headers.redelivered]).to.deep.equal(['sentinel', undefined]);
      expect(log.errors).to.deep.equal([]);
    });

    it(`heart-beats flow both ways every ${HEARTBEAT_MS} ms and the connection stays up`, async () => {
      const peer = await open({ heartbeatIncoming: 200, heartbeatOutgoing: 200 });
      expect(peer.sent[0]).to.contain('\nheart-beat:200,200\n');
      const start = Date.now();
      await delay(HEARTBEAT_MS * 6);
      const pings = peer.pingsOut.filter((at) => at >= start).length;
      const pongs = peer.pongsIn.filter((at) => at >= start);
      expect(pings, 'client heart-beats').to.be.at.least(4);
      expect(pongs.length, 'server heart-beats').to.be.at.least(5);
      const gaps = pongs.slice(1).map((at, i) => at - (pongs[i] as number));
      // stompjs closes the socket after heartbeatToleranceMultiplier (2) intervals without a byte.
      expect(Math.max((pongs[0] as number) - start, ...gaps), 'longest silence from the server').to.be.below(HEARTBEAT_MS * 2);
      expect(peer.client.connected).to.equal(true);
      expect(sessionById(t.broker, peer.connected?.headers.session)?.connected, 'broker session alive').to.equal(true);

      const dest = `/topic/${uniqueName('stompjs')}`;
      const { inbox } = await subscribe(peer, dest);
      await publish(peer, dest, 'still here');
      expect((await inbox.next('message after heart-beats')).body).to.equal('still here');
      expect(log.errors).to.deep.equal([]);
    });

    it('disconnects with a receipt, and the broker ends the session first', async () => {
      const peer = await open();
      const session = peer.connected?.headers.session;
      expect(sessionById(t.broker, session)).to.not.equal(undefined);
      const disconnected = new Promise<IFrame>((resolve) => (peer.client.onDisconnect = resolve));
      await within(peer.client.deactivate(), 3000, 'deactivate');
      const frame = await within(disconnected, 100, 'onDisconnect');
      expect(frame.command).to.equal('RECEIPT');
      expect(frame.headers['receipt-id']).to.match(/^close-\d+$/);
      expect(peer.sent.at(-1)).to.equal(`DISCONNECT\nreceipt:${frame.headers['receipt-id']}\n\n\x00`);
      expect(sessionById(t.broker, session)).to.equal(undefined);
      expect(peer.stompErrors).to.deep.equal([]);
    });
  });
}
