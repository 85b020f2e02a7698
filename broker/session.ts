import {
  EMPTY_BODY,
  type FrameError,
  FrameParser,
  HEARTBEAT,
  ackLine,
  encodeFrame,
  type Frame,
  type FrameLimits,
  type FrameSink,
  type Headers,
  type MessageTemplate,
  type StompVersion,
} from '../frames/index.js';
import { allowAll, type Authenticator } from './auth.js';
import type { BrokerConfig } from './config.js';
import type { Connection, ConnectionHandler } from './connection.js';
import { parseDestination, isPattern, type Destination } from './destinations.js';
import { BROKER_ERRORS, ProtocolError } from './errors.js';
import type { Logger } from './ports/logger.js';
import { allowsName, allowsRead, type RightsSource, type VhostRights } from './permissions.js';
import { redeliveryTemplate } from './queue.js';
import type { BrokerStats } from './stats.js';
import { ACK_MODES, Subscription, type AckMode, type Consumer, type Delivery, type QueuedMessage } from './subscription.js';
import type { VirtualHost } from './vhost.js';

/**
 * Everything a Session knows of the broker, and nothing more. The Broker hands each session a private object of
 * this shape (its callbacks are not public API); the unit specs hand it a fake. Config and stats are the broker's
 * own objects and the methods call straight into it, so nothing is allocated or wrapped per frame.
 */
export interface SessionHost {
  readonly config: Readonly<BrokerConfig>;
  /** Counters bumped on the hot path (plain increments). */
  readonly stats: BrokerStats;
  readonly authenticator: Authenticator;
  /** The CONNECTED `server` header: `name/version`. */
  readonly serverHeader: string;
  /** True while SENDs are refused for memory; `lowMemoryError` is the refusal. */
  readonly memoryAlarm: boolean;
  /** Says why a destination cannot be routed on this node (no engine for `/kafka/...`, a bad topic name). */
  readonly routes?: { problem(destination: string, vhost?: string): string | undefined } | undefined;
  lowMemoryError(): ProtocolError;
  /** The virtual host a CONNECT's `host` header names; throws the ERROR for one this node does not serve. */
  resolveVhost(host: string | undefined): VirtualHost;
  /** At CONNECTED time: throws the ERROR for a login past maxConnectionsPerUser. */
  admitUser(user: string): void;
  /** The session sent CONNECTED: it counts against its virtual host and user from now on. */
  sessionConnected(session: Session): void;
  /** The session is gone (once), connected or not. */
  sessionClosed(session: Session, wasConnected: boolean): void;
  /** The session is about to send this ERROR and close. */
  sessionFailed(session: Session, problem: ProtocolError): void;
  /** The session is about to be closed as a slow consumer. */
  slowConsumer(session: Session): void;
  /** A SEND, accepted and authorized: route it. A Promise when its RECEIPT must wait. */
  publish(
    vhost: VirtualHost,
    destination: Destination,
    headers: readonly (readonly [string, string])[],
    body: Buffer,
  ): void | Promise<void>;
  /** Makes a subscription live (after replaying history when `headers` ask). A Promise when its RECEIPT must wait. */
  subscribe(vhost: VirtualHost, sub: Subscription, headers: Headers): void | Promise<void>;
  unsubscribe(vhost: VirtualHost, sub: Subscription): void;
  /** An unacknowledged queue message goes back for redelivery (NACK, UNSUBSCRIBE, disconnect). */
  returnMessage(vhost: VirtualHost, message: QueuedMessage): void;
  /** The client acknowledged a queue message. */
  acknowledge(vhost: VirtualHost, message: QueuedMessage): void;
}

/** Session states, as small integers: the state is compared on every frame. */
const AWAITING_CONNECT = 0;
const CONNECTING = 1;
const CONNECTED = 2;
const CLOSED = 3;
type State = typeof AWAITING_CONNECT | typeof CONNECTING | typeof CONNECTED | typeof CLOSED;

/** Highest first: STOMP 1.2 §Protocol Negotiation picks the highest version both sides support. */
const SUPPORTED: readonly StompVersion[] = ['1.2', '1.1', '1.0'];
const SUPPORTED_HEADER = '1.0,1.1,1.2';

/** Client frames that may carry a body; a body on any other is an ERROR (STOMP 1.2 §STOMP Frames). */
const BODY_ALLOWED = new Set(['SEND']);

/**
 * Most frames a client may pipeline behind a CONNECT that is still being authenticated (they wait in
 * `Session.#backlog`): bounded so that a client cannot make us buffer without limit before we know who it is.
 */
const MAX_BACKLOG_FRAMES = 1000;

/** Headers of a SEND that describe the frame itself, not the message: MESSAGE sets its own. */
const NOT_COPIED = new Set(['destination', 'transaction', 'receipt', 'content-length', 'message-id', 'subscription', 'ack']);

/**
 * How often a paused replay looks at the socket again, besides the transport's drain event (which a WebSocket
 * raises only above outboundHighWaterBytes, and a TCP socket only above its own high-water mark).
 */
const REPLAY_POLL_MS = 10;

/**
 * Permission decisions remembered per session, by destination: the per-frame cost of authorization is one Map
 * lookup. Bounded: a client cycling through names only makes the cache start over.
 */
const MAX_CACHED_DECISIONS = 256;

/** `#rightsSeen` before the first check: differs from every real value, so the first check fills the caches. */
const UNSEEN: unique symbol = Symbol('unseen');

/** Shared by every session with nothing in flight: one settled Promise instead of one per connection. */
const RESOLVED: Promise<void> = Promise.resolve();

type TxAction = { readonly kind: 'SEND' | 'ACK' | 'NACK'; readonly frame: Frame; readonly bytes: number };

/** One client connection: its protocol state machine, subscriptions, unacknowledged deliveries and transactions. */
export class Session implements FrameSink, Consumer, ConnectionHandler {
  readonly id: string;
  readonly connection: Connection;
  /** The broker, as far as a session may see it. */
  #broker: SessionHost;
  /** The node's logger; the per-session child is made on first use (pino children cost ~10 µs to create). */
  #parentLog: Logger;
  #childLog: Logger | undefined;
  #parser: FrameParser;
  #state: State = AWAITING_CONNECT;
  version: StompVersion = '1.2';
  vhost: VirtualHost | undefined;
  user: string | undefined;
  /** What the user may do, looked up per frame; undefined: every right (no authenticator, or one without rights). */
  #rights: RightsSource | undefined;
  /** The rights the caches below were computed for; a reload makes new objects, which empties the caches. */
  #rightsSeen: VhostRights | undefined | typeof UNSEEN = UNSEEN;
  #mayRead: Map<string, boolean> | undefined;
  #mayWrite: Map<string, boolean> | undefined;
  /** Stamp `user-id` on published messages: only when someone authenticated the user (see docs/security.md). */
  #stampUser = false;

  readonly subscriptions = new Map<string, Subscription>();
  /**
   * Client-ack deliveries by ack id, across subscriptions. Made on first client-ack delivery: most sessions
   * (auto-ack subscribers, publishers) never need it.
   */
  #ackMap: Map<string, Delivery> | undefined;
  #ackSeq = 0;
  #txMap: Map<string, TxAction[]> | undefined;
  /** Bytes of the frames held in all open transactions, against maxTransactionBytes. */
  #txBytes = 0;
  /** Reading from the peer is paused while our unsent bytes to it are above outboundHighWaterBytes. */
  #readPaused = false;
  /** Bytes received from and sent to this peer, for the management API (two additions per chunk, nothing more). */
  bytesIn = 0;
  bytesOut = 0;
  /** When the transport handed the connection over (ms since the epoch). */
  readonly openedAt = Date.now();
  /** The negotiated heart-beat intervals once CONNECTed (ms; 0: none in that direction). */
  heartbeats: { readonly outgoingMs: number; readonly incomingMs: number } = { outgoingMs: 0, incomingMs: 0 };

  /** Frames that arrived while `#busy` (a CONNECT being authenticated), handled in order once it is done. */
  #backlog: Frame[] = [];
  #busy = false;
  /** Frames whose outcome (RECEIPT or ERROR) waits on asynchronous work, and the chain that keeps them in order. */
  #inflight = 0;
  #tail: Promise<void> = RESOLVED;

  #lastRead = Date.now();
  #lastWrite = Date.now();
  #timers: NodeJS.Timeout[] = [];
  #closeTimer: NodeJS.Timeout | undefined;
  #closing = false;
  /** Set while the ERROR of #fail is written, so that a limit that frame passes does not fail the session twice. */
  #failing = false;
  /** Replays waiting for the socket to drain, and the timer that looks again meanwhile. */
  #replayWaiters: ((ready: boolean) => void)[] = [];
  #replayTimer: NodeJS.Timeout | undefined;
  #replaysStopped = false;

  constructor(broker: SessionHost, connection: Connection, id: string, log: Logger) {
    this.#parentLog = log;
    this.#broker = broker;
    this.connection = connection;
    this.id = id;
    const c = broker.config;
    this.#parser = new FrameParser(this, limitsOf(c, c.maxFrameBytesUnauthenticated));
    if (c.connectTimeoutMs > 0) {
      this.#timers.push(
        setTimeout(() => {
          if (this.#state === AWAITING_CONNECT || this.#state === CONNECTING) {
            this.#fail(
              new ProtocolError(
                BROKER_ERRORS.ERR_CONNECT_TIMEOUT,
                'no CONNECT frame received in time',
                `A connection must send CONNECT within ${c.connectTimeoutMs} ms.`,
              ),
            );
          }
        }, c.connectTimeoutMs),
      );
    }
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
  }

  get #acks(): Map<string, Delivery> {
    this.#ackMap ??= new Map();
    return this.#ackMap;
  }

  get #transactions(): Map<string, TxAction[]> {
    this.#txMap ??= new Map();
    return this.#txMap;
  }

  get #log(): Logger {
    this.#childLog ??= this.#parentLog.child({
      session: this.id,
      transport: this.connection.transport,
      remote: this.connection.remoteAddress,
      user: this.user,
      vhost: this.vhost?.name,
      version: this.#state === CONNECTED ? this.version : undefined,
    });
    return this.#childLog;
  }

  get connected(): boolean {
    return this.#state === CONNECTED;
  }

  get closed(): boolean {
    return this.#state === CLOSED;
  }

  /** Bytes from the transport, in any split. */
  receive(chunk: Buffer): void {
    // STOMP 1.2 §Heart-beating: any data counts as a sign of life, not only heart-beat EOLs.
    this.#lastRead = Date.now();
    this.#broker.stats.bytesIn += chunk.length;
    this.bytesIn += chunk.length;
    if (this.#state === CLOSED) return;
    this.#parser.push(chunk);
    // Flow control, as RabbitMQ does: a client whose frames make us write faster than it reads (RECEIPTs it never
    // collects) is not read from until it drains, so its replies wait in its own socket, not in our memory.
    if (
      this.#state === CONNECTED &&
      !this.#readPaused &&
      this.connection.pauseReading !== undefined &&
      this.connection.bufferedBytes > this.#broker.config.outboundHighWaterBytes
    ) {
      this.#readPaused = true;
      this.connection.pauseReading();
    }
  }

  /** Most recent byte in either direction (ms since the epoch), for the idle timeout. */
  get lastActivity(): number {
    return Math.max(this.#lastRead, this.#lastWrite);
  }

  /** The broker's idle sweep: a CONNECTed session silent both ways for idleTimeoutMs is closed. */
  checkIdle(now: number): void {
    const limit = this.#broker.config.idleTimeoutMs;
    if (this.#state !== CONNECTED || limit === 0 || now - this.lastActivity <= limit) return;
    this.#broker.stats.limitHit('idle');
    this.#fail(
      new ProtocolError(
        BROKER_ERRORS.ERR_IDLE_TIMEOUT,
        `idle timeout (limit ${limit} ms without traffic)`,
        `Nothing was sent or received for more than ${limit} ms; negotiate heart-beats to keep a quiet connection open.`,
      ),
    );
  }

  /**
   * An operator closed this connection (management API): ERROR naming the operator action, then close, as for any
   * other refusal; the client's unacknowledged queue messages go back for redelivery.
   */
  closeByOperator(reason: string): void {
    this.#fail(new ProtocolError(BROKER_ERRORS.ERR_CLOSED_BY_OPERATOR, 'connection closed by an operator', reason));
  }

  /** Refuses the connection before anything is read from it (a node-wide limit): ERROR, then close. */
  refuse(problem: ProtocolError): void {
    this.#fail(problem);
  }

  /** The socket drained below the high-water mark: queues may hand us more. */
  drained(): void {
    this.#wakeReplays();
    if (this.#state !== CONNECTED) return;
    if (this.#readPaused) {
      this.#readPaused = false;
      // What the peer sent meanwhile (heart-beats included) waited in its socket: it was alive all along.
      this.#lastRead = Date.now();
      this.connection.resumeReading?.();
    }
    for (const sub of this.subscriptions.values()) {
      if (sub.destination.kind === 'queue') this.vhost?.queues.get(sub.destination.name)?.dispatch();
    }
  }

  /** The transport closed (peer went away, or we closed it). */
  transportClosed(): void {
    this.#teardown();
  }

  /** Broker shutdown: let in-flight work finish and its receipts go out, then close. */
  shutdown(): Promise<void> {
    // Frames from here on are not taken: one taken now would be done (a SEND published) after the goodbye below
    // had dropped its RECEIPT, and a client resending what got no RECEIPT would make a duplicate. So every frame
    // taken is answered, and one that was not answered was not taken.
    this.#parser.stop();
    // A replay waiting on a client that does not read would hold the shutdown forever: it stops here.
    this.#replaysStopped = true;
    this.#wakeReplays();
    return this.#tail.then(() => {
      if (this.#state === CLOSED) return;
      this.#fail(
        new ProtocolError(BROKER_ERRORS.ERR_SHUTDOWN, 'server shutting down', 'The broker is stopping; reconnect to another node.'),
      );
    });
  }

  // ---- FrameSink ------------------------------------------------------------------------------------------

  frame(frame: Frame): void {
    if (this.#busy) {
      if (this.#backlog.length >= MAX_BACKLOG_FRAMES) {
        this.#fail(
          new ProtocolError(
            BROKER_ERRORS.ERR_NOT_CONNECTED,
            'too many frames before CONNECTED',
            `At most ${MAX_BACKLOG_FRAMES} frames may be sent before the CONNECTED frame arrives.`,
          ),
        );
        return;
      }
      this.#backlog.push(frame);
      return;
    }
    this.#handle(frame);
  }

  heartbeat(): void {}

  error(error: FrameError): void {
    this.#fail(new ProtocolError(error.code, error.message, `The frame could not be parsed: ${error.message}.`, [], { cause: error }));
  }

  // ---- Consumer -------------------------------------------------------------------------------------------

  get writable(): boolean {
    return this.#state === CONNECTED && this.connection.bufferedBytes < this.#broker.config.outboundHighWaterBytes;
  }

  deliver(sub: Subscription, template: MessageTemplate, queued?: QueuedMessage): void {
    this.#broker.stats.frameOut('MESSAGE');
    const t = queued !== undefined && queued.deliveries > 1 ? redeliveryTemplate(queued) : template;
    const tail = t.tail(this.version);
    if (sub.ackMode === 'auto') {
      this.#write([sub.prefix, tail], t.utf8Body);
    } else {
      // A topic does not wait for ACKs the way a queue does (Subscription.ready): past the window the subscriber
      // is treated like a slow consumer, rather than every unacked message being kept for it.
      // (prefetch-count has never applied to topics, so only the node's limit does.)
      const max = this.#broker.config.maxUnackedPerSubscription;
      if (sub.destination.kind === 'topic' && sub.pending.size >= max) {
        this.#broker.stats.limitHit('unacked');
        this.#fail(
          new ProtocolError(
            BROKER_ERRORS.ERR_LIMIT_EXCEEDED,
            `too many unacknowledged messages (limit ${max} per subscription)`,
            `Subscription "${sub.id}" has ${sub.pending.size} messages waiting for ACK; acknowledge them, or use ack:auto.`,
          ),
        );
        return;
      }
      const ackId = (++this.#ackSeq).toString(36);
      const delivery: Delivery = { ackId, messageId: t.messageId, subscription: sub, queued };
      sub.pending.set(ackId, delivery);
      this.#acks.set(ackId, delivery);
      // STOMP 1.2 §SUBSCRIBE ack Header: client-ack MESSAGEs carry `ack`, whose value ACK/NACK must echo as `id`.
      this.#write([sub.prefix, ackLine(ackId), tail], t.utf8Body);
      // The queue now holds back further messages for this subscription: counted once per time it fills up.
      if (sub.destination.kind === 'queue' && sub.pending.size === sub.window && (sub.prefetch === 0 || sub.window < sub.prefetch)) {
        this.#broker.stats.limitHit('unacked');
      }
    }
  }

  /**
   * Replays send while fewer than this many bytes wait on the socket: under the queue high-water mark, and at
   * most half of maxOutboundBytes, so one more record never makes a reading client a slow consumer.
   */
  get #replayHighWater(): number {
    const c = this.#broker.config;
    return Math.max(1, Math.min(c.outboundHighWaterBytes, Math.floor(c.maxOutboundBytes / 2)));
  }

  readyForReplay(): boolean | Promise<boolean> {
    if (this.#state !== CONNECTED || this.#closing || this.#replaysStopped) return false;
    if (this.connection.bufferedBytes < this.#replayHighWater) return true;
    return new Promise((resolve) => {
      this.#replayWaiters.push(resolve);
      this.#checkReplaysSoon();
    });
  }

  #checkReplaysSoon(): void {
    this.#replayTimer ??= setTimeout(() => {
      this.#replayTimer = undefined;
      this.#wakeReplays();
    }, REPLAY_POLL_MS);
  }

  /** Lets waiting replays go on when the socket has room, or stop when the session is gone. */
  #wakeReplays(): void {
    if (this.#replayWaiters.length === 0) return;
    const gone = this.#state !== CONNECTED || this.#closing || this.#replaysStopped;
    if (!gone && this.connection.bufferedBytes >= this.#replayHighWater) {
      this.#checkReplaysSoon();
      return;
    }
    clearTimeout(this.#replayTimer);
    this.#replayTimer = undefined;
    for (const resolve of this.#replayWaiters.splice(0)) resolve(!gone);
  }

  overflowed(): void {
    if (this.#state === CONNECTED && !this.#closing) this.#slowConsumer();
  }

  // ---- dispatch -------------------------------------------------------------------------------------------

  #handle(frame: Frame): void {
    this.#broker.stats.frameIn(frame.command);
    let outcome: void | Promise<void>;
    try {
      outcome = this.#dispatch(frame);
    } catch (error) {
      this.#fail(error, frame);
      return;
    }
    if (outcome instanceof Promise) {
      this.#busy = true;
      outcome.then(
        () => {
          this.#busy = false;
          while (!this.#busy && this.#backlog.length > 0 && this.#state !== CLOSED) this.#handle(this.#backlog.shift() as Frame);
        },
        (error: unknown) => this.#fail(error, frame),
      );
    }
  }

  /** Returns a Promise only when later frames must wait for this one (CONNECT while authenticating). */
  #dispatch(frame: Frame): void | Promise<void> {
    const command = frame.command;
    if (this.#state === CLOSED) return;
    // STOMP 1.2 §STOMP Frames: only SEND, MESSAGE and ERROR frames may have a body (CONNECT included).
    if (frame.body.length > 0 && !BODY_ALLOWED.has(command)) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_BODY_NOT_ALLOWED,
        `${command} frame must not have a body`,
        'Only SEND frames may carry a body.',
      );
    }
    if (command === 'CONNECT' || command === 'STOMP') return this.#onConnect(frame);
    if (this.#state !== CONNECTED) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_NOT_CONNECTED,
        `${command} before CONNECT`,
        'The first frame on a connection must be CONNECT or STOMP.',
      );
    }
    switch (command) {
      case 'SEND':
        return this.#finish(frame, this.#onSend(frame));
      case 'SUBSCRIBE':
        return this.#finish(frame, this.#onSubscribe(frame));
      case 'UNSUBSCRIBE':
        return this.#finish(frame, this.#onUnsubscribe(frame));
      case 'ACK':
      case 'NACK':
        return this.#finish(frame, this.#onAck(frame, command));
      case 'BEGIN':
        return this.#finish(frame, this.#onBegin(frame));
      case 'COMMIT':
        return this.#finish(frame, this.#onCommit(frame));
      case 'ABORT':
        return this.#finish(frame, this.#onAbort(frame));
      case 'DISCONNECT':
        return this.#onDisconnect(frame);
      default:
        throw new ProtocolError(
          BROKER_ERRORS.ERR_UNKNOWN_COMMAND,
          `unknown command "${command}"`,
          'Client frames are CONNECT, STOMP, SEND, SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT and DISCONNECT.',
        );
    }
  }

  /**
   * Sends the frame's RECEIPT once it has been processed (STOMP 1.2 §RECEIPT). Work that finishes later (a
   * durable bus) is chained, so RECEIPTs and ERRORs leave in the order their frames arrived.
   */
  #finish(frame: Frame, work: void | Promise<void>): void {
    const receipt = frame.headers.get('receipt');
    if (!(work instanceof Promise) && this.#inflight === 0) {
      if (receipt !== undefined) this.#sendReceipt(receipt);
      return;
    }
    this.#inflight++;
    const previous = this.#tail;
    this.#tail = (async () => {
      let failure: unknown;
      try {
        await work;
      } catch (error) {
        failure = error ?? new Error('unknown failure');
      }
      await previous;
      this.#inflight--;
      if (this.#state === CLOSED) return;
      if (failure !== undefined) this.#fail(failure, frame);
      else if (receipt !== undefined) this.#sendReceipt(receipt);
    })();
  }

  // ---- CONNECT --------------------------------------------------------------------------------------------

  #onConnect(frame: Frame): Promise<void> {
    if (this.#state !== AWAITING_CONNECT) {
      throw new ProtocolError(BROKER_ERRORS.ERR_ALREADY_CONNECTED, 'already connected', 'CONNECT may be sent only once per connection.');
    }
    const h = frame.headers;
    // STOMP 1.2 §Protocol Negotiation: no accept-version means the client speaks 1.0 only.
    const offered = h.get('accept-version');
    const accepted = offered === undefined ? ['1.0'] : offered.split(',').map((v) => v.trim());
    const version = SUPPORTED.find((v) => accepted.includes(v));
    if (version === undefined) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_UNSUPPORTED_VERSION,
        'Supported protocol versions are 1.0, 1.1 and 1.2',
        `The client offered accept-version "${offered ?? ''}"; this server speaks ${SUPPORTED_HEADER}.`,
        [['version', SUPPORTED_HEADER]],
      );
    }
    this.version = version;
    // Set before any pipelined frame is parsed: escaping follows the negotiated version (STOMP 1.2 §Value Encoding).
    this.#parser.version = version;

    let heartbeat: [number, number] = [0, 0];
    const hb = h.get('heart-beat');
    if (version !== '1.0' && hb !== undefined) {
      const m = /^(\d{1,9}),(\d{1,9})$/.exec(hb);
      if (m === null) {
        throw new ProtocolError(
          BROKER_ERRORS.ERR_BAD_HEADER_VALUE,
          `invalid heart-beat header "${hb}"`,
          'heart-beat must be two non-negative integers separated by a comma, e.g. 10000,10000.',
        );
      }
      heartbeat = [Number(m[1]), Number(m[2])];
    }
    const vhost = this.#broker.resolveVhost(h.get('host'));
    this.#state = CONNECTING;
    // With no authentication configured every client is already trusted, so frames pipelined behind CONNECT
    // get the full limits; otherwise they wait under the lower pre-authentication limit (as RabbitMQ does).
    if (this.#broker.authenticator === allowAll) this.#authenticated();
    const connection = this.connection;
    return this.#broker.authenticator
      .authenticate({
        login: h.get('login'),
        passcode: h.get('passcode'),
        host: vhost.name,
        // A getter: the address string is built only for authenticators that look at it.
        get remoteAddress() {
          return connection.remoteAddress;
        },
      })
      .then((result) => {
        if (this.#state !== CONNECTING) return;
        if (!result.ok) {
          throw new ProtocolError(BROKER_ERRORS.ERR_BAD_CREDENTIALS, 'Access refused', `Authentication failed: ${result.reason}.`);
        }
        // A user whose rights list virtual hosts may use only those.
        const rights = result.rights?.();
        if (result.rights !== undefined && (rights === undefined || (rights.vhosts !== undefined && !rights.vhosts.has(vhost.name)))) {
          this.#broker.stats.limitHit('permission');
          throw new ProtocolError(
            BROKER_ERRORS.ERR_ACCESS_REFUSED,
            `access refused: user "${result.user}" may not use virtual host "${vhost.name}"`,
            'The user has no permissions on this virtual host.',
          );
        }
        // Only now is the login known, so only now can connections per user be counted (SessionHost.sessionConnected).
        this.#broker.admitUser(result.user);
        this.user = result.user;
        this.vhost = vhost;
        this.#rights = result.rights;
        this.#stampUser = this.#broker.authenticator !== allowAll;
        this.#state = CONNECTED;
        this.#authenticated();
        this.#childLog = undefined; // made again with the user and virtual host on next use
        const headers: [string, string][] = [
          ['version', version],
          ['session', this.id],
          ['server', this.#broker.serverHeader],
        ];
        // STOMP 1.0 has no heart-beating: such sessions get none (STOMP 1.1 §Heart-beating).
        const beats = version === '1.0' ? undefined : negotiateHeartbeats(heartbeat[0], heartbeat[1], this.#broker.config.heartbeatMinMs);
        if (beats !== undefined) headers.push(['heart-beat', `${beats.outbound},${beats.inbound}`]);
        if (result.user !== 'anonymous') headers.push(['user-name', result.user]);
        this.#writeFrame('CONNECTED', headers);
        this.#clearTimers(); // the connect timeout
        if (beats !== undefined) this.#startHeartbeats(beats.outbound, beats.inbound);
        this.#broker.sessionConnected(this);
      });
  }

  /** The peer is trusted from here on: frames and transport messages get the full limits. */
  #authenticated(): void {
    this.#parser.setLimits(limitsOf(this.#broker.config, this.#broker.config.maxFrameBytes));
    this.connection.authenticated?.();
  }

  /** `outbound`: we beat at least this often; `inbound`: the client promised to (ms; 0: none that way). */
  #startHeartbeats(outbound: number, inbound: number): void {
    const c = this.#broker.config;
    this.heartbeats = { outgoingMs: outbound, incomingMs: inbound };
    if (outbound === 0 && inbound === 0) return;
    const limit = inbound * c.heartbeatGrace;
    // One timer per session for both directions (10,000 idle sessions are 10,000 timers, not 20,000). It ticks at
    // half the shorter interval; a beat goes out once a quarter of the outbound interval passed silently, so the
    // gap never reaches the interval (some clients, stompit among them, allow only 100 ms of lateness).
    const tick = Math.max(1, Math.floor(Math.min(outbound || Infinity, inbound || Infinity) / 2));
    this.#timers.push(
      setInterval(() => {
        const now = Date.now();
        // While we are not reading (flow control), the peer's heart-beats wait in the socket unread.
        if (inbound > 0 && !this.#readPaused && now - this.#lastRead > limit) {
          this.#fail(
            new ProtocolError(
              BROKER_ERRORS.ERR_HEARTBEAT_TIMEOUT,
              'heart-beat timeout',
              `Nothing was received for more than ${limit} ms (negotiated interval ${inbound} ms × grace ${c.heartbeatGrace}).`,
            ),
          );
        } else if (outbound > 0 && now - this.#lastWrite >= outbound / 4) {
          this.#write([HEARTBEAT], true);
        }
      }, tick),
    );
  }

  // ---- SEND -----------------------------------------------------------------------------------------------

  #onSend(frame: Frame): void | Promise<void> {
    // Refused before anything is buffered, transactional SENDs included: RabbitMQ's memory alarm blocks publishers.
    if (this.#broker.memoryAlarm) throw this.#broker.lowMemoryError();
    const destination = this.#destination(frame);
    // Checked now, also inside a transaction: a refused SEND fails at once, not at COMMIT.
    this.#authorize('write', destination);
    const tx = frame.headers.get('transaction');
    if (tx !== undefined) {
      this.#hold(tx, 'SEND', frame);
      return;
    }
    return this.#publish(destination, frame);
  }

  #publish(destination: Destination, frame: Frame): void | Promise<void> {
    const headers: [string, string][] = [];
    const stamp = this.#stampUser;
    for (const entry of frame.headers) if (!NOT_COPIED.has(entry[0]) && !(stamp && entry[0] === 'user-id')) headers.push(entry);
    // Receivers can trust `user-id`: the broker sets it from the login and drops any the sender wrote (as RabbitMQ does).
    if (stamp) headers.push(['user-id', this.user as string]);
    return this.#broker.publish(this.#vhost(), destination, headers, frame.body);
  }

  // ---- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------------------------------------

  #onSubscribe(frame: Frame): void | Promise<void> {
    const h = frame.headers;
    const destination = this.#destination(frame);
    // A SUBSCRIBE reads, history included (x-history, x-resume-after, x-stream-offset are reads too).
    this.#authorize('read', destination);
    // STOMP 1.2 §SUBSCRIBE id Header: required since 1.1; a 1.0 subscription without one is named by its destination.
    const id = this.version === '1.0' ? (h.get('id') ?? destination.full) : this.#required(frame, 'id');
    const maxSubs = this.#broker.config.maxSubscriptionsPerConnection;
    if (this.subscriptions.size >= maxSubs) {
      this.#broker.stats.limitHit('subscriptions');
      throw new ProtocolError(
        BROKER_ERRORS.ERR_LIMIT_EXCEEDED,
        `too many subscriptions (limit ${maxSubs} per connection)`,
        `This connection already holds ${this.subscriptions.size} subscriptions; UNSUBSCRIBE some, or open another connection.`,
      );
    }
    if (this.subscriptions.has(id)) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_DUPLICATE_SUBSCRIPTION,
        `subscription id "${id}" is already in use`,
        'Each subscription on a connection needs a different id (STOMP 1.2 §SUBSCRIBE).',
      );
    }
    const ackText = h.get('ack') ?? 'auto';
    if (!(ACK_MODES as readonly string[]).includes(ackText)) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_BAD_HEADER_VALUE,
        `invalid ack mode "${ackText}"`,
        'ack must be auto, client or client-individual.',
      );
    }
    const prefetchText = h.get('prefetch-count');
    let prefetch = 0;
    if (prefetchText !== undefined) {
      if (!/^\d{1,9}$/.test(prefetchText)) {
        throw new ProtocolError(
          BROKER_ERRORS.ERR_BAD_HEADER_VALUE,
          `invalid prefetch-count "${prefetchText}"`,
          'prefetch-count must be a non-negative integer (0 means unlimited).',
        );
      }
      prefetch = Number(prefetchText);
    }
    const wildcard = destination.kind === 'topic' && isPattern(destination.name);
    const sub = new Subscription({
      id,
      consumer: this,
      destination,
      ackMode: ackText as AckMode,
      prefetch,
      pattern: wildcard ? destination.name.split('.') : undefined,
      version: this.version,
      maxUnacked: this.#broker.config.maxUnackedPerSubscription,
    });
    this.subscriptions.set(id, sub);
    return this.#broker.subscribe(this.#vhost(), sub, h);
  }

  #onUnsubscribe(frame: Frame): void {
    // STOMP 1.0 lets UNSUBSCRIBE name the destination instead of the id; 1.1 and 1.2 require the id.
    const id = this.version === '1.0' ? (frame.headers.get('id') ?? frame.headers.get('destination')) : frame.headers.get('id');
    if (id === undefined) throw this.#missing(frame, 'id');
    let sub = this.subscriptions.get(id);
    if (sub === undefined && this.version === '1.0' && !frame.headers.has('id')) {
      // STOMP 1.0 §UNSUBSCRIBE: the destination names the subscription even when SUBSCRIBE gave it an id.
      for (const s of this.subscriptions.values())
        if (s.destination.full === id) {
          sub = s;
          break;
        }
    }
    // STOMP 1.2 §UNSUBSCRIBE: the id MUST match an existing subscription.
    if (sub === undefined) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_UNKNOWN_SUBSCRIPTION,
        `no subscription with id "${id}"`,
        'UNSUBSCRIBE must name the id of an existing subscription.',
      );
    }
    this.#removeSubscription(sub);
  }

  #removeSubscription(sub: Subscription): void {
    this.subscriptions.delete(sub.id);
    const vhost = this.#vhost();
    this.#broker.unsubscribe(vhost, sub);
    // Unacknowledged queue messages go back for redelivery to someone else (STOMP 1.2 §SUBSCRIBE ack Header).
    for (const delivery of sub.pending.values()) {
      this.#acks.delete(delivery.ackId);
      if (delivery.queued !== undefined) this.#broker.returnMessage(vhost, delivery.queued);
    }
    sub.pending.clear();
  }

  // ---- ACK / NACK -----------------------------------------------------------------------------------------

  #onAck(frame: Frame, kind: 'ACK' | 'NACK'): void {
    const targets = this.#ackTargets(frame, kind);
    const tx = frame.headers.get('transaction');
    if (tx !== undefined) {
      // STOMP 1.2 §ACK: an ACK in a transaction takes effect at COMMIT; until then the message stays unacked.
      this.#hold(tx, kind, frame);
      return;
    }
    this.#settle(targets, kind);
  }

  /** The deliveries an ACK/NACK covers: one in client-individual mode, it and all earlier ones in client mode. */
  #ackTargets(frame: Frame, kind: 'ACK' | 'NACK'): Delivery[] {
    const h = frame.headers;
    const id = h.get('id');
    let delivery = id === undefined ? undefined : this.#acks.get(id);
    if (delivery === undefined) {
      // STOMP 1.0/1.1 name the message by message-id (+ subscription in 1.1); Spring's 1.1 client sends
      // message-id alone, and some 1.2 clients put the message-id in `id`, so both are looked up.
      const messageId = h.get('message-id') ?? id;
      const subId = h.get('subscription');
      if (messageId !== undefined) delivery = this.#findByMessageId(messageId, subId);
    }
    if (delivery === undefined) {
      if (id === undefined && h.get('message-id') === undefined) throw this.#missing(frame, this.version === '1.2' ? 'id' : 'message-id');
      throw new ProtocolError(
        BROKER_ERRORS.ERR_UNKNOWN_ACK,
        `${kind} for an unknown or already acknowledged message`,
        `No unacknowledged message matches ${id !== undefined ? `id "${id}"` : `message-id "${h.get('message-id') ?? ''}"`}.`,
      );
    }
    const sub = delivery.subscription;
    if (sub.ackMode !== 'client') return [delivery];
    // STOMP 1.2 §SUBSCRIBE ack Header: in client mode an ACK (and a NACK) covers every earlier message of the subscription.
    const covered: Delivery[] = [];
    for (const d of sub.pending.values()) {
      covered.push(d);
      if (d === delivery) break;
    }
    return covered;
  }

  #findByMessageId(messageId: string, subId: string | undefined): Delivery | undefined {
    const subs = subId !== undefined ? [this.subscriptions.get(subId)] : this.subscriptions.values();
    for (const sub of subs) {
      if (sub === undefined) continue;
      for (const d of sub.pending.values()) if (d.messageId === messageId) return d;
    }
    return undefined;
  }

  #settle(targets: readonly Delivery[], kind: 'ACK' | 'NACK'): void {
    const vhost = this.#vhost();
    for (const d of targets) {
      if (!this.#acks.delete(d.ackId)) continue; // settled meanwhile (e.g. by an earlier cumulative ACK)
      d.subscription.pending.delete(d.ackId);
      if (d.queued === undefined) continue;
      if (kind === 'NACK') this.#broker.returnMessage(vhost, d.queued);
      else this.#broker.acknowledge(vhost, d.queued);
    }
    // Room under prefetch-count: the queues of the settled subscriptions may deliver again.
    const first = targets[0];
    if (first !== undefined && first.subscription.destination.kind === 'queue')
      vhost.queues.get(first.subscription.destination.name)?.dispatch();
  }

  // ---- transactions ---------------------------------------------------------------------------------------

  #onBegin(frame: Frame): void {
    const tx = this.#required(frame, 'transaction');
    // STOMP 1.2 §BEGIN: transaction identifiers are unique within a connection.
    if (this.#transactions.has(tx)) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_DUPLICATE_TRANSACTION,
        `transaction "${tx}" is already open`,
        'BEGIN must name a transaction that is not open.',
      );
    }
    const max = this.#broker.config.maxTransactionsPerConnection;
    if (this.#transactions.size >= max) {
      this.#broker.stats.limitHit('transactions');
      throw new ProtocolError(
        BROKER_ERRORS.ERR_LIMIT_EXCEEDED,
        `too many open transactions (limit ${max} per connection)`,
        `This connection already has ${this.#transactions.size} open transactions; COMMIT or ABORT one before the next BEGIN.`,
      );
    }
    this.#transactions.set(tx, []);
  }

  #onCommit(frame: Frame): void | Promise<void> {
    const tx = this.#required(frame, 'transaction');
    const actions = this.#transaction(tx);
    this.#forget(tx, actions);
    // STOMP 1.2 §COMMIT: everything in the transaction takes effect now, in the order it was sent.
    const pending: Promise<void>[] = [];
    for (const action of actions) {
      if (action.kind === 'SEND') {
        const outcome = this.#publish(this.#destination(action.frame), action.frame);
        if (outcome instanceof Promise) pending.push(outcome);
      } else {
        const live = this.#liveTargets(action.frame, action.kind);
        this.#settle(live, action.kind);
      }
    }
    if (pending.length > 0) return Promise.all(pending).then(() => undefined);
  }

  /** Targets of a transactional ACK/NACK at COMMIT; messages settled meanwhile are simply skipped. */
  #liveTargets(frame: Frame, kind: 'ACK' | 'NACK'): Delivery[] {
    try {
      return this.#ackTargets(frame, kind);
    } catch {
      return [];
    }
  }

  #onAbort(frame: Frame): void {
    const tx = this.#required(frame, 'transaction');
    this.#forget(tx, this.#transaction(tx));
  }

  /**
   * Keeps a frame for COMMIT. Open transactions live in memory that maxQueueBytes does not see, so their bytes
   * are bounded per connection here.
   */
  #hold(tx: string, kind: TxAction['kind'], frame: Frame): void {
    const actions = this.#transaction(tx);
    const bytes = frameBytes(frame);
    const max = this.#broker.config.maxTransactionBytes;
    if (this.#txBytes + bytes > max) {
      this.#broker.stats.limitHit('transaction-bytes');
      throw new ProtocolError(
        BROKER_ERRORS.ERR_LIMIT_EXCEEDED,
        `transactions too large (limit ${max} bytes per connection)`,
        `The open transactions of this connection already hold ${this.#txBytes} bytes; this ${kind} of ${bytes} bytes would pass the limit. COMMIT smaller transactions.`,
      );
    }
    this.#txBytes += bytes;
    // The parser hands out views into the bytes that arrived: held until COMMIT, a small body must not keep a
    // whole socket chunk alive, or the bytes retained would be more than the bytes counted.
    const body = frame.body.length < frame.body.buffer.byteLength ? Buffer.from(frame.body) : frame.body;
    actions.push({ kind, frame: body === frame.body ? frame : { command: frame.command, headers: frame.headers, body }, bytes });
  }

  /** The transaction ended (COMMIT or ABORT): its bytes no longer count. */
  #forget(tx: string, actions: readonly TxAction[]): void {
    this.#transactions.delete(tx);
    for (const a of actions) this.#txBytes -= a.bytes;
  }

  #transaction(tx: string): TxAction[] {
    const actions = this.#transactions.get(tx);
    if (actions === undefined) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_UNKNOWN_TRANSACTION,
        `unknown transaction "${tx}"`,
        'The transaction was never begun, or was already committed or aborted.',
      );
    }
    return actions;
  }

  // ---- DISCONNECT -----------------------------------------------------------------------------------------

  #onDisconnect(frame: Frame): void {
    // STOMP 1.2 §DISCONNECT: the client sends nothing after it; the RECEIPT is flushed before we close.
    this.#parser.stop();
    const receipt = frame.headers.get('receipt');
    const done = (): void => {
      if (this.#state === CLOSED) return;
      if (receipt !== undefined) this.#sendReceipt(receipt);
      this.#close();
    };
    if (this.#inflight === 0) done();
    else this.#tail = this.#tail.then(done);
  }

  // ---- authorization --------------------------------------------------------------------------------------

  /** Refuses (ERROR, then close) a SEND or SUBSCRIBE the user's rights on this virtual host do not allow. */
  #authorize(permission: 'read' | 'write', destination: Destination): void {
    const source = this.#rights;
    if (source === undefined) return;
    const user = source();
    const rights = user === undefined ? undefined : user.vhosts === undefined ? null : user.vhosts.get(this.#vhost().name);
    if (rights === null) return; // every right on every virtual host
    if (rights !== this.#rightsSeen) {
      this.#rightsSeen = rights;
      this.#mayRead = undefined;
      this.#mayWrite = undefined;
    }
    let cache = permission === 'read' ? this.#mayRead : this.#mayWrite;
    let allowed = cache?.get(destination.full);
    if (allowed === undefined) {
      allowed =
        rights !== undefined && (permission === 'read' ? allowsRead(rights.read, destination) : allowsName(rights.write, destination.full));
      if (cache === undefined || cache.size >= MAX_CACHED_DECISIONS) {
        cache = new Map();
        if (permission === 'read') this.#mayRead = cache;
        else this.#mayWrite = cache;
      }
      cache.set(destination.full, allowed);
    }
    if (allowed) return;
    this.#broker.stats.limitHit('permission');
    throw new ProtocolError(
      BROKER_ERRORS.ERR_ACCESS_REFUSED,
      `access refused: user "${this.user ?? ''}" may not ${permission} ${destination.full}`,
      user === undefined
        ? 'The user no longer exists; it may not publish or subscribe.'
        : `The user has no ${permission} permission on this destination.`,
    );
  }

  // ---- helpers --------------------------------------------------------------------------------------------

  #vhost(): VirtualHost {
    if (this.vhost === undefined) throw new ProtocolError(BROKER_ERRORS.ERR_NOT_CONNECTED, 'not connected');
    return this.vhost;
  }

  #destination(frame: Frame): Destination {
    const destination = parseDestination(this.#required(frame, 'destination'));
    // A wildcard subscription names no one topic; each destination it matches was checked when it was sent to.
    const problem = isPattern(destination.name) ? undefined : this.#broker.routes?.problem(destination.full, this.vhost?.name);
    if (problem !== undefined)
      throw new ProtocolError(BROKER_ERRORS.ERR_BAD_DESTINATION, `cannot route "${destination.full}"`, `${problem}.`);
    return destination;
  }

  #required(frame: Frame, header: string): string {
    const value = frame.headers.get(header);
    if (value === undefined) throw this.#missing(frame, header);
    return value;
  }

  #missing(frame: Frame, header: string): ProtocolError {
    return new ProtocolError(
      BROKER_ERRORS.ERR_MISSING_HEADER,
      `${frame.command} frame is missing the "${header}" header`,
      `The ${header} header is required on ${frame.command}.`,
    );
  }

  #sendReceipt(receipt: string): void {
    this.#writeFrame('RECEIPT', [['receipt-id', receipt]]);
  }

  #writeFrame(command: string, headers: Iterable<readonly [string, string]>, body: Buffer = EMPTY_BODY): void {
    this.#broker.stats.frameOut(command);
    this.#write([encodeFrame(command, headers, body, this.version)], true);
  }

  #write(pieces: readonly Buffer[], utf8: boolean): void {
    if (this.#closing) return;
    this.#lastWrite = Date.now();
    const stats = this.#broker.stats;
    let bytes = 0;
    for (const p of pieces) bytes += p.length;
    stats.bytesOut += bytes;
    this.bytesOut += bytes;
    this.connection.writeFrame(pieces, utf8);
    // After every frame, whatever its kind: RECEIPTs, ERRORs and heart-beats fill an unread socket as well as
    // MESSAGEs do (a client sending SENDs with 10 KB receipts it never reads once grew a node by 370 MB).
    if (!this.#failing && this.connection.bufferedBytes > this.#broker.config.maxOutboundBytes) this.#slowConsumer();
  }

  #slowConsumer(): void {
    const c = this.#broker.config;
    this.#broker.stats.slowConsumerDisconnects++;
    this.#broker.stats.limitHit('outbound-bytes');
    this.#broker.slowConsumer(this);
    this.#fail(
      new ProtocolError(
        BROKER_ERRORS.ERR_SLOW_CONSUMER,
        `slow consumer (limit ${c.maxOutboundBytes} unsent bytes)`,
        `More than ${c.maxOutboundBytes} bytes waited to be sent to this client; it reads too slowly and was disconnected.`,
      ),
    );
  }

  /** STOMP 1.2 §ERROR: report the problem (with `receipt-id` when the frame asked for one), then close. */
  #fail(error: unknown, frame?: Frame): void {
    if (this.#state === CLOSED || this.#closing || this.#failing) return;
    this.#failing = true;
    let problem: ProtocolError;
    if (error instanceof ProtocolError) {
      problem = error;
    } else {
      this.#log.error({ err: error }, 'internal error while handling a frame');
      problem = new ProtocolError(
        BROKER_ERRORS.ERR_INTERNAL,
        'internal error',
        'The broker failed to process the frame; see its log.',
        [],
        { cause: error },
      );
    }
    this.#broker.stats.error(String(problem.code));
    this.#broker.sessionFailed(this, problem);
    const headers: (readonly [string, string])[] = [['message', problem.message]];
    const receipt = frame?.headers.get('receipt');
    if (receipt !== undefined) headers.push(['receipt-id', receipt]);
    // With a charset: stompit 1.0.0 crashes its whole process on an ERROR whose content-type is exactly `text/plain`.
    headers.push(...problem.headers, ['content-type', 'text/plain;charset=utf-8']);
    const detail = problem.detail === '' ? problem.message : problem.detail;
    this.#writeFrame('ERROR', headers, Buffer.from(detail + '\n'));
    this.#log.debug({ code: problem.code }, problem.message);
    this.#close();
  }

  /** Flush what was written, then close; a peer that does not read within closeTimeoutMs is cut off. */
  #close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#parser.stop();
    this.#teardown();
    this.connection.end();
    this.#closeTimer = setTimeout(() => this.connection.destroy(), this.#broker.config.closeTimeoutMs);
    this.#closeTimer.unref();
  }

  /** Releases everything the session holds, exactly once: subscriptions, unacked messages, transactions, timers. */
  #teardown(): void {
    if (this.#state === CLOSED) {
      if (this.#closeTimer !== undefined && !this.#closing) clearTimeout(this.#closeTimer);
      return;
    }
    const wasConnected = this.#state === CONNECTED;
    this.#state = CLOSED;
    this.#parser.stop();
    this.#clearTimers();
    // STOMP 1.2 §Transactions: open transactions are aborted when the connection ends.
    this.#txMap = undefined;
    this.#txBytes = 0;
    this.#backlog = [];
    this.#wakeReplays();
    if (this.vhost !== undefined) for (const sub of [...this.subscriptions.values()]) this.#removeSubscription(sub);
    this.#broker.sessionClosed(this, wasConnected);
  }
}

function limitsOf(c: { maxBodyBytes: number; maxHeaders: number; maxHeaderLineBytes: number }, maxFrameBytes: number): FrameLimits {
  return {
    maxFrameBytes,
    maxBodyBytes: Math.min(c.maxBodyBytes, maxFrameBytes),
    maxHeaders: c.maxHeaders,
    maxHeaderLineBytes: Math.min(c.maxHeaderLineBytes, maxFrameBytes),
  };
}

/** What a frame held for COMMIT costs: its body, its headers and a little for the objects around them. */
function frameBytes(frame: Frame): number {
  let bytes = frame.body.length + 64;
  for (const [name, value] of frame.headers) bytes += name.length + value.length + 16;
  return bytes;
}

/**
 * The heart-beats of a session, from the client's CONNECT `heart-beat: cx,cy` and the floor `heartbeatMinMs`:
 * we beat every max(cy, floor) when the client wants beats (cy > 0), and expect one every max(cx, floor) when it
 * offers them (cx > 0); 0 means none that way. As RabbitMQ, we honor the client rather than impose our own values.
 * CONNECTED's `heart-beat` is exactly `outbound,inbound`: STOMP 1.2 §Heart-beating has each side take the larger
 * of its own value and the other's, so the client computes the same two intervals from it (max(cx, inbound) =
 * inbound, max(outbound, cy) = outbound).
 */
export function negotiateHeartbeats(clientSends: number, clientWants: number, floorMs: number): { outbound: number; inbound: number } {
  return {
    outbound: clientWants === 0 ? 0 : Math.max(clientWants, floorMs),
    inbound: clientSends === 0 ? 0 : Math.max(clientSends, floorMs),
  };
}
