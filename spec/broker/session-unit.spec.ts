/**
 * Session unit specs: no socket, no Broker. A Session is given a fake SessionHost (which records every call the
 * session makes into the broker, and routes SENDs to subscriptions itself) and an in-memory Connection (which
 * parses, with frames/, every frame the session writes). What these pin down is the seam of issue #10 item 1:
 * what the broker sees of a client's frames, and when, and what the client sees back.
 */
import { expect } from 'chai';
import {
  EMPTY_BODY,
  FrameParser,
  MessageTemplate,
  encodeFrame,
  type Frame,
  type FrameError,
  type Headers,
  type StompVersion,
} from '../../frames/index.js';
import { allowAll, type Authenticator } from '../../broker/auth.js';
import { DEFAULT_CONFIG, type BrokerConfig } from '../../broker/config.js';
import type { Connection } from '../../broker/connection.js';
import type { Destination } from '../../broker/destinations.js';
import { BROKER_ERRORS, ProtocolError } from '../../broker/errors.js';
import { silentLogger } from '../../broker/ports/logger.js';
import { Session, type SessionHost } from '../../broker/session.js';
import { BrokerStats } from '../../broker/stats.js';
import type { QueuedMessage, Subscription } from '../../broker/subscription.js';
import { VirtualHost } from '../../broker/vhost.js';

type Header = readonly [string, string];

/** One call a session made into its host, in the order made. */
type HostCall =
  | { readonly call: 'sessionConnected'; readonly session: Session }
  | { readonly call: 'slowConsumer'; readonly session: Session }
  | { readonly call: 'sessionClosed'; readonly session: Session; readonly wasConnected: boolean }
  | { readonly call: 'sessionFailed'; readonly session: Session; readonly code: string }
  | { readonly call: 'admitUser'; readonly user: string }
  | { readonly call: 'publish'; readonly destination: string; readonly body: string; readonly headers: readonly Header[] }
  | { readonly call: 'subscribe'; readonly sub: Subscription }
  | { readonly call: 'unsubscribe'; readonly sub: Subscription }
  | { readonly call: 'acknowledge'; readonly messageId: string }
  | { readonly call: 'returnMessage'; readonly messageId: string };

/**
 * A broker reduced to what a session can see of it. SENDs reach the topic subscriptions of exact destination
 * name on this host, so SUBSCRIBE → SEND → MESSAGE runs through the seam without any broker code.
 */
class FakeHost implements SessionHost {
  readonly config: Readonly<BrokerConfig>;
  readonly stats = new BrokerStats();
  authenticator: Authenticator = allowAll;
  readonly serverHeader = 'fake-broker/9.9.9';
  memoryAlarm = false;
  readonly calls: HostCall[] = [];
  readonly vhost: VirtualHost;
  /** Live subscriptions, as the host was told of them. */
  readonly subscriptions: Subscription[] = [];
  /** What `publish` and `subscribe` return; a test may make them asynchronous or failing. */
  publishOutcome: () => void | Promise<void> = () => undefined;
  subscribeOutcome: () => void | Promise<void> = () => undefined;
  #messageSeq = 0;

  constructor(config: Partial<BrokerConfig> = {}) {
    // No connect timeout: a unit spec should leave no timer behind unless it asks for one.
    this.config = Object.freeze({ ...DEFAULT_CONFIG, connectTimeoutMs: 0, ...config });
    this.vhost = new VirtualHost('/', { maxMessages: 1000, maxBytes: 1 << 20, maxDeliveries: 0 });
  }

  /** Calls of one kind, in order. */
  called<K extends HostCall['call']>(call: K): Extract<HostCall, { call: K }>[] {
    return this.calls.filter((c): c is Extract<HostCall, { call: K }> => c.call === call);
  }

  lowMemoryError(): ProtocolError {
    throw new Error('not used by these specs');
  }

  resolveVhost(): VirtualHost {
    return this.vhost;
  }

  admitUser(user: string): void {
    this.calls.push({ call: 'admitUser', user });
  }

  sessionConnected(session: Session): void {
    this.calls.push({ call: 'sessionConnected', session });
  }

  sessionClosed(session: Session, wasConnected: boolean): void {
    this.calls.push({ call: 'sessionClosed', session, wasConnected });
  }

  sessionFailed(session: Session, problem: ProtocolError): void {
    this.calls.push({ call: 'sessionFailed', session, code: String(problem.code) });
  }

  slowConsumer(session: Session): void {
    this.calls.push({ call: 'slowConsumer', session });
  }

  publish(_vhost: VirtualHost, destination: Destination, headers: readonly Header[], body: Buffer): void | Promise<void> {
    this.calls.push({ call: 'publish', destination: destination.full, body: body.toString(), headers: [...headers] });
    const id = `fake-${++this.#messageSeq}`;
    for (const sub of this.subscriptions) {
      if (sub.destination.full === destination.full) sub.consumer.deliver(sub, new MessageTemplate(destination.full, id, headers, body));
    }
    return this.publishOutcome();
  }

  subscribe(_vhost: VirtualHost, sub: Subscription, _headers: Headers): void | Promise<void> {
    this.calls.push({ call: 'subscribe', sub });
    this.subscriptions.push(sub);
    return this.subscribeOutcome();
  }

  unsubscribe(_vhost: VirtualHost, sub: Subscription): void {
    this.calls.push({ call: 'unsubscribe', sub });
    this.subscriptions.splice(this.subscriptions.indexOf(sub), 1);
  }

  returnMessage(_vhost: VirtualHost, message: QueuedMessage): void {
    this.calls.push({ call: 'returnMessage', messageId: message.template.messageId });
  }

  acknowledge(_vhost: VirtualHost, message: QueuedMessage): void {
    this.calls.push({ call: 'acknowledge', messageId: message.template.messageId });
  }
}

/** A Connection that keeps what the session writes, parsed back into frames with the codec. */
class MemoryConnection implements Connection {
  readonly transport = 'tcp' as const;
  readonly remoteAddress = 'memory:1';
  readonly bufferedBytes = 0;
  readonly frames: Frame[] = [];
  heartbeats = 0;
  ended = false;
  destroyed = false;
  #parser: FrameParser;

  constructor() {
    this.#parser = new FrameParser({
      frame: (frame: Frame) => this.frames.push(frame),
      heartbeat: () => this.heartbeats++,
      error: (error: FrameError) => {
        throw error;
      },
    });
    // CONNECTED is never escaped and the tests pick no header that 1.0 and 1.2 would encode differently.
    this.#parser.version = '1.2';
  }

  writeFrame(pieces: readonly Buffer[]): void {
    for (const piece of pieces) this.#parser.push(piece);
  }

  end(): void {
    this.ended = true;
  }

  destroy(): void {
    this.destroyed = true;
  }

  /** Frames written since the last call, as `COMMAND` strings, for order checks. */
  commands(): string[] {
    return this.frames.map((f) => f.command);
  }

  last(command: string): Frame {
    const found = this.frames.filter((f) => f.command === command).at(-1);
    if (found === undefined) throw new Error(`no ${command} frame among ${this.commands().join(', ') || 'none'}`);
    return found;
  }
}

/** Lets the session's promise chains (authentication, RECEIPT ordering) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Peer {
  readonly host: FakeHost;
  readonly connection: MemoryConnection;
  readonly session: Session;
  send(command: string, headers?: Record<string, string>, body?: string): void;
}

const sessions: Session[] = [];

function open(host: FakeHost, version: StompVersion = '1.2'): Peer {
  const connection = new MemoryConnection();
  const session = new Session(host, connection, `s${sessions.length + 1}`, silentLogger);
  sessions.push(session);
  return {
    host,
    connection,
    session,
    send(command, headers = {}, body) {
      session.receive(encodeFrame(command, Object.entries(headers), body === undefined ? EMPTY_BODY : Buffer.from(body), version));
    },
  };
}

/** A CONNECTed session on `host`. */
async function connected(host: FakeHost, login?: string): Promise<Peer> {
  const peer = open(host);
  peer.send('CONNECT', { 'accept-version': '1.2', host: '/', ...(login === undefined ? {} : { login, passcode: 'pw' }) });
  await settle();
  expect(peer.connection.commands()).to.deep.equal(['CONNECTED']);
  return peer;
}

/** A queue message, as a queue would hand it to a client-ack subscription. */
function queued(queue: string, messageId: string): QueuedMessage {
  const template = new MessageTemplate(`/queue/${queue}`, messageId, [], Buffer.from(messageId));
  return { template, queue, bytes: messageId.length, seq: 0, deliveries: 1 };
}

/** Subscribes `peer` to a queue in `ack` mode and hands it three messages m1..m3, as the queue would. */
async function threeUnacked(peer: Peer, ack: 'client' | 'client-individual'): Promise<Subscription> {
  peer.send('SUBSCRIBE', { id: 'q', destination: '/queue/work', ack });
  await settle();
  const sub = peer.host.called('subscribe')[0]?.sub;
  if (sub === undefined) throw new Error('the host saw no SUBSCRIBE');
  for (const id of ['m1', 'm2', 'm3']) peer.session.deliver(sub, queued('work', id).template, queued('work', id));
  return sub;
}

function header(frame: Frame, name: string): string | undefined {
  return frame.headers.get(name);
}

describe('broker › Session unit (no socket: fake SessionHost, in-memory Connection)', () => {
  afterEach(() => {
    // Heart-beat and close timers belong to sessions: ending each one clears them.
    for (const s of sessions.splice(0)) s.transportClosed();
  });

  describe('CONNECT', () => {
    it('negotiates the highest common version and tells the host once CONNECTED is written', async () => {
      const host = new FakeHost();
      const peer = open(host);
      peer.send('CONNECT', { 'accept-version': '1.0,1.1', host: '/' });
      expect(host.called('sessionConnected')).to.have.length(0); // authentication is asynchronous
      await settle();
      const c = peer.connection.last('CONNECTED');
      expect(header(c, 'version')).to.equal('1.1');
      expect(header(c, 'server')).to.equal('fake-broker/9.9.9');
      expect(header(c, 'session')).to.equal(peer.session.id);
      expect(peer.session.version).to.equal('1.1');
      expect(peer.session.connected).to.equal(true);
      expect(host.calls.map((c) => c.call)).to.deep.equal(['admitUser', 'sessionConnected']);
      expect(host.called('sessionConnected')[0]?.session).to.equal(peer.session);
    });

    it('speaks 1.0 to a CONNECT without accept-version, with no heart-beat header', async () => {
      const peer = open(new FakeHost());
      peer.send('CONNECT', { 'heart-beat': '1000,1000' }, undefined);
      await settle();
      const c = peer.connection.last('CONNECTED');
      expect(header(c, 'version')).to.equal('1.0');
      expect(c.headers.has('heart-beat')).to.equal(false);
    });

    it('answers heart-beat with the intervals negotiated from the client offer and the floor, and beats when asked', async () => {
      const host = new FakeHost({ heartbeatMinMs: 20 });
      const peer = open(host);
      peer.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': '0,5' });
      await settle();
      // The client wants beats every 5 ms: it gets the 20 ms floor; it offers none, so none are expected of it.
      expect(header(peer.connection.last('CONNECTED'), 'heart-beat')).to.equal('20,0');
      // Generous bound: a beat is due after 5 ms of silence, checked every 10 ms.
      const deadline = Date.now() + 5000;
      while (peer.connection.heartbeats === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(peer.connection.heartbeats).to.be.greaterThan(0);
    });

    it('refuses an invalid heart-beat header with ERROR and closes; the host never sees it connected', async () => {
      const host = new FakeHost();
      const peer = open(host);
      peer.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': 'soon', receipt: 'r1' });
      await settle();
      const e = peer.connection.last('ERROR');
      expect(header(e, 'message')).to.equal('invalid heart-beat header "soon"');
      expect(header(e, 'receipt-id')).to.equal('r1');
      expect(peer.connection.ended).to.equal(true);
      expect(host.calls.map((c) => c.call)).to.deep.equal(['sessionFailed', 'sessionClosed']);
      expect(host.called('sessionClosed')[0]?.wasConnected).to.equal(false);
    });

    it('refuses an unsupported version, naming the versions it speaks', async () => {
      const peer = open(new FakeHost());
      peer.send('CONNECT', { 'accept-version': '2.0' });
      await settle();
      const e = peer.connection.last('ERROR');
      expect(header(e, 'version')).to.equal('1.0,1.1,1.2');
      expect(peer.host.called('sessionFailed')[0]?.code).to.equal(BROKER_ERRORS.ERR_UNSUPPORTED_VERSION);
    });

    it('answers a bad login with ERROR "Access refused" and the reason; the user is never admitted', async () => {
      const host = new FakeHost();
      host.authenticator = { authenticate: async () => ({ ok: false, reason: 'login or passcode is wrong' }) };
      const peer = open(host);
      peer.send('CONNECT', { 'accept-version': '1.2', login: 'mallory', passcode: 'guess' });
      await settle();
      expect(peer.connection.commands()).to.deep.equal(['ERROR']);
      const e = peer.connection.last('ERROR');
      expect(header(e, 'message')).to.equal('Access refused');
      expect(e.body.toString()).to.equal('Authentication failed: login or passcode is wrong.\n');
      expect(peer.connection.ended).to.equal(true);
      expect(peer.session.connected).to.equal(false);
      expect(host.calls.map((c) => c.call)).to.deep.equal(['sessionFailed', 'sessionClosed']);
      expect(host.called('sessionFailed')[0]?.code).to.equal(BROKER_ERRORS.ERR_BAD_CREDENTIALS);
    });

    it('admits a good login through the host, which may refuse it (maxConnectionsPerUser)', async () => {
      const host = new FakeHost();
      host.authenticator = { authenticate: async (c) => ({ ok: true, user: c.login ?? '?' }) };
      const alice = await connected(host, 'alice');
      expect(header(alice.connection.last('CONNECTED'), 'user-name')).to.equal('alice');
      host.admitUser = (user) => {
        throw new ProtocolError(BROKER_ERRORS.ERR_LIMIT_EXCEEDED, `too many connections for ${user}`);
      };
      const again = open(host);
      again.send('CONNECT', { 'accept-version': '1.2', login: 'alice', passcode: 'pw' });
      await settle();
      expect(header(again.connection.last('ERROR'), 'message')).to.equal('too many connections for alice');
      expect(again.connection.ended).to.equal(true);
      expect(host.called('sessionConnected').map((c) => c.session)).to.deep.equal([alice.session]);
    });

    it('refuses any other frame before CONNECT', async () => {
      const peer = open(new FakeHost());
      peer.send('SEND', { destination: '/topic/a' }, 'early');
      await settle();
      expect(header(peer.connection.last('ERROR'), 'message')).to.equal('SEND before CONNECT');
      expect(peer.host.called('publish')).to.have.length(0);
    });
  });

  describe('SUBSCRIBE', () => {
    it('hands the host a subscription, then delivers what the host routes to it as MESSAGE', async () => {
      const host = new FakeHost();
      const sub = await connected(host);
      const pub = await connected(host);
      sub.send('SUBSCRIBE', { id: 's-1', destination: '/topic/news', receipt: 'sub' });
      await settle();
      const [seen] = host.called('subscribe');
      expect(seen?.sub.id).to.equal('s-1');
      expect(seen?.sub.destination.full).to.equal('/topic/news');
      expect(seen?.sub.ackMode).to.equal('auto');
      expect(header(sub.connection.last('RECEIPT'), 'receipt-id')).to.equal('sub');

      pub.send('SEND', { destination: '/topic/news', 'x-tag': 'a', receipt: 'sent' }, 'hello');
      await settle();
      const [published] = host.called('publish');
      expect(published?.body).to.equal('hello');
      // Frame-level headers stay with the SEND; user headers travel with the message.
      expect(published?.headers).to.deep.equal([['x-tag', 'a']]);
      expect(header(pub.connection.last('RECEIPT'), 'receipt-id')).to.equal('sent');
      const m = sub.connection.last('MESSAGE');
      expect(m.body.toString()).to.equal('hello');
      expect(header(m, 'subscription')).to.equal('s-1');
      expect(header(m, 'destination')).to.equal('/topic/news');
      expect(header(m, 'message-id')).to.equal('fake-1');
      expect(header(m, 'x-tag')).to.equal('a');
      expect(m.headers.has('ack')).to.equal(false);
    });

    it('holds the RECEIPT until the host has made the subscription live', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      let live!: () => void;
      host.subscribeOutcome = () => new Promise<void>((resolve) => (live = resolve));
      peer.send('SUBSCRIBE', { id: 's', destination: '/topic/slow', receipt: 'r' });
      await settle();
      expect(host.called('subscribe')).to.have.length(1);
      expect(peer.connection.commands()).to.deep.equal(['CONNECTED']);
      live();
      await settle();
      expect(peer.connection.commands()).to.deep.equal(['CONNECTED', 'RECEIPT']);
    });

    it('gives the host back the same subscription on UNSUBSCRIBE, and refuses an unknown id', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      peer.send('SUBSCRIBE', { id: 's', destination: '/topic/t' });
      peer.send('UNSUBSCRIBE', { id: 's' });
      await settle();
      expect(host.called('unsubscribe')[0]?.sub).to.equal(host.called('subscribe')[0]?.sub);
      peer.send('UNSUBSCRIBE', { id: 's' });
      await settle();
      expect(header(peer.connection.last('ERROR'), 'message')).to.equal('no subscription with id "s"');
    });
  });

  describe('ACK and NACK', () => {
    it('client-individual: each ACK or NACK settles exactly the message it names', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      await threeUnacked(peer, 'client-individual');
      const acks = peer.connection.frames.filter((f) => f.command === 'MESSAGE').map((m) => header(m, 'ack') ?? '');
      expect(acks).to.have.length(3);
      peer.send('ACK', { id: acks[1] ?? '' });
      peer.send('NACK', { id: acks[0] ?? '' });
      await settle();
      expect(host.calls.filter((c) => c.call === 'acknowledge' || c.call === 'returnMessage')).to.deep.equal([
        { call: 'acknowledge', messageId: 'm2' },
        { call: 'returnMessage', messageId: 'm1' },
      ]);
      // Settled once: a second ACK of the same id is an ERROR.
      peer.send('ACK', { id: acks[1] ?? '', receipt: 'again' });
      await settle();
      const e = peer.connection.last('ERROR');
      expect(header(e, 'message')).to.equal('ACK for an unknown or already acknowledged message');
      expect(header(e, 'receipt-id')).to.equal('again');
    });

    it('client: an ACK settles the message it names and every earlier one; a NACK likewise', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      await threeUnacked(peer, 'client');
      const acks = peer.connection.frames.filter((f) => f.command === 'MESSAGE').map((m) => header(m, 'ack') ?? '');
      peer.send('ACK', { id: acks[1] ?? '' });
      await settle();
      expect(host.called('acknowledge').map((c) => c.messageId)).to.deep.equal(['m1', 'm2']);
      peer.send('NACK', { id: acks[2] ?? '' });
      await settle();
      expect(host.called('returnMessage').map((c) => c.messageId)).to.deep.equal(['m3']);
    });

    it('returns unacknowledged messages to the host when the connection goes away', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      const sub = await threeUnacked(peer, 'client-individual');
      peer.session.transportClosed();
      expect(host.called('unsubscribe')[0]?.sub).to.equal(sub);
      expect(host.called('returnMessage').map((c) => c.messageId)).to.deep.equal(['m1', 'm2', 'm3']);
      expect(host.called('sessionClosed')[0]?.wasConnected).to.equal(true);
    });
  });

  describe('shutdown', () => {
    it('RECEIPTs every SEND taken before it, takes no frame after it, then sends ERROR "server shutting down"', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      let accept!: () => void;
      host.publishOutcome = () => new Promise<void>((resolve) => (accept = resolve));
      peer.send('SEND', { destination: '/topic/durable', receipt: 'r1' }, 'taken');
      const stopped = peer.session.shutdown();
      // Written by the client as the node stops: it must either be answered or not be published at all.
      peer.send('SEND', { destination: '/topic/durable', receipt: 'r2' }, 'too late');
      await settle();
      expect(host.called('publish').map((c) => c.body)).to.deep.equal(['taken']);
      expect(peer.connection.commands()).to.deep.equal(['CONNECTED']);
      accept();
      await stopped;
      expect(peer.connection.commands()).to.deep.equal(['CONNECTED', 'RECEIPT', 'ERROR']);
      expect(header(peer.connection.last('RECEIPT'), 'receipt-id')).to.equal('r1');
      expect(header(peer.connection.last('ERROR'), 'message')).to.equal('server shutting down');
      expect(host.called('publish').map((c) => c.body)).to.deep.equal(['taken']);
    });
  });

  describe('transactions', () => {
    it('shows the host nothing of a transaction until COMMIT, then every SEND in order', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      peer.send('BEGIN', { transaction: 't', receipt: 'b' });
      peer.send('SEND', { destination: '/topic/a', transaction: 't', receipt: 's1' }, 'one');
      peer.send('SEND', { destination: '/queue/b', transaction: 't', receipt: 's2' }, 'two');
      await settle();
      expect(host.called('publish')).to.have.length(0);
      // Each frame is acknowledged as held, before COMMIT.
      const receipts = peer.connection.frames.filter((f) => f.command === 'RECEIPT').map((f) => header(f, 'receipt-id'));
      expect(receipts).to.deep.equal(['b', 's1', 's2']);
      peer.send('COMMIT', { transaction: 't', receipt: 'c' });
      await settle();
      expect(host.called('publish').map((c) => [c.destination, c.body])).to.deep.equal([
        ['/topic/a', 'one'],
        ['/queue/b', 'two'],
      ]);
      // The transaction header is the frame's, not the message's.
      expect(host.called('publish')[0]?.headers).to.deep.equal([]);
      expect(header(peer.connection.last('RECEIPT'), 'receipt-id')).to.equal('c');
    });

    it('drops the SENDs of an aborted transaction, and of one left open at disconnect', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      peer.send('BEGIN', { transaction: 'x' });
      peer.send('SEND', { destination: '/topic/a', transaction: 'x' }, 'aborted');
      peer.send('ABORT', { transaction: 'x' });
      peer.send('BEGIN', { transaction: 'y' });
      peer.send('SEND', { destination: '/topic/a', transaction: 'y' }, 'left open');
      await settle();
      peer.session.transportClosed();
      expect(host.called('publish')).to.have.length(0);
      expect(peer.connection.commands()).to.deep.equal(['CONNECTED']);
    });

    it('holds a transactional ACK until COMMIT; after ABORT the message is still unacknowledged', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      await threeUnacked(peer, 'client-individual');
      const acks = peer.connection.frames.filter((f) => f.command === 'MESSAGE').map((m) => header(m, 'ack') ?? '');
      peer.send('BEGIN', { transaction: 'a' });
      peer.send('ACK', { id: acks[0] ?? '', transaction: 'a' });
      peer.send('ABORT', { transaction: 'a' });
      await settle();
      expect(host.called('acknowledge')).to.have.length(0);
      peer.send('BEGIN', { transaction: 'b' });
      peer.send('ACK', { id: acks[0] ?? '', transaction: 'b' });
      peer.send('NACK', { id: acks[2] ?? '', transaction: 'b' });
      await settle();
      expect(host.called('acknowledge')).to.have.length(0);
      expect(host.called('returnMessage')).to.have.length(0);
      peer.send('COMMIT', { transaction: 'b' });
      await settle();
      expect(host.called('acknowledge').map((c) => c.messageId)).to.deep.equal(['m1']);
      expect(host.called('returnMessage').map((c) => c.messageId)).to.deep.equal(['m3']);
    });

    it('sends the COMMIT RECEIPT only once the host accepted every SEND, and ERROR when it refused one', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      let accept!: () => void;
      host.publishOutcome = () => new Promise<void>((resolve) => (accept = resolve));
      peer.send('BEGIN', { transaction: 'd' });
      peer.send('SEND', { destination: '/topic/durable', transaction: 'd' }, 'kept');
      peer.send('COMMIT', { transaction: 'd', receipt: 'c1' });
      await settle();
      expect(host.called('publish')).to.have.length(1);
      expect(peer.connection.commands()).to.deep.equal(['CONNECTED']);
      accept();
      await settle();
      expect(header(peer.connection.last('RECEIPT'), 'receipt-id')).to.equal('c1');

      host.publishOutcome = () => Promise.reject(new Error('engine down'));
      peer.send('BEGIN', { transaction: 'e' });
      peer.send('SEND', { destination: '/topic/durable', transaction: 'e' }, 'lost');
      peer.send('COMMIT', { transaction: 'e', receipt: 'c2' });
      await settle();
      const e = peer.connection.last('ERROR');
      expect(header(e, 'receipt-id')).to.equal('c2');
      expect(header(e, 'message')).to.equal('internal error');
    });

    it('refuses COMMIT of a transaction that was never begun', async () => {
      const host = new FakeHost();
      const peer = await connected(host);
      peer.send('COMMIT', { transaction: 'nope' });
      await settle();
      expect(header(peer.connection.last('ERROR'), 'message')).to.equal('unknown transaction "nope"');
      expect(host.called('sessionFailed')[0]?.code).to.equal(BROKER_ERRORS.ERR_UNKNOWN_TRANSACTION);
    });
  });
});
