import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname, totalmem } from 'node:os';
import { MessageTemplate, type Headers } from '../frames/index.js';
import { BridgeError, type BusEnvelope, type ClusterBus } from './ports/bus.js';
import { MAX_REPLAY, type HistoryQuery, type HistoryRecord, type HistoryStore } from './ports/history.js';
import type { QueueConsumers, SharedQueues } from './ports/queues.js';
import type { RouteTable } from './ports/routes.js';
import type { Queue } from './queue.js';
import { SharedQueueFeed } from './shared-feed.js';
import { OrderedAppends } from './history-appends.js';
import { allowAll, type Authenticator } from './auth.js';
import { AuthGuard } from './auth-guard.js';
import { FD_HEADROOM, type BrokerConfig } from './config.js';
import type { Connection, ConnectionHandler, ConnectionSource } from './connection.js';
import { parseDestination, type Destination } from './destinations.js';
import { BROKER_ERRORS, ProtocolError } from './errors.js';
import type { Logger } from './ports/logger.js';
import { NAME_RULE, validName } from './ports/names.js';
import { Session, type SessionHost } from './session.js';
import { BrokerStats } from './stats.js';
import type { QueuedMessage, Subscription } from './subscription.js';
import { VirtualHost } from './vhost.js';
import { SERVER_NAME, SERVER_VERSION } from './version.js';

/**
 * The collaborators a Broker is built with, through the ports it consumes; `createBroker` (broker/server.ts)
 * chooses and builds them from the config.
 */
export interface BrokerBackends {
  /** Engine of `redis` routes: cross-node pub/sub (a RedisBus, or a shared MemoryBus in tests). */
  fanout?: ClusterBus | undefined;
  /** Engine of `kafka` routes: the durable ordered log. */
  log?: ClusterBus | undefined;
  /** Queues shared across nodes, for queue destinations on redis and kafka routes. */
  queues?: SharedQueues | undefined;
  /** Topic history (the same store the Kafka route writes to, when there is one). */
  history: HistoryStore;
  /** The node's one route table, shared with the engines (the Kafka route picks topics with it). */
  routes: RouteTable;
}

/** Why a node is or is not ready, as `/readyz` says it. */
export type ReadinessState = 'starting' | 'ready' | 'engine-down' | 'draining' | 'closing';

export interface Readiness {
  readonly ready: boolean;
  readonly state: ReadinessState;
  readonly closing: boolean;
  /** Each configured engine's health by role: `fanout`, `queues`, `log`, `history`. */
  readonly engines: Record<string, boolean>;
}

/** The engines of a node by role, as `readiness()` names them. */
export type BrokerEngines = Readonly<Pick<BrokerBackends, 'fanout' | 'queues' | 'log' | 'history'>>;

/** How long Broker.close waits for each engine (Kafka, shared queues, fan-out, history) before leaving it behind. */
const ENGINE_CLOSE_MS = 10_000;

/** Remembered message ids per node, to drop the duplicates an at-least-once bus may deliver after a failure. */
const DEDUPE_WINDOW = 50_000;

/**
 * Longest a redis-route SEND waits for the shared history store before its fan-out goes ahead anyway: a slow or
 * unreachable store must not stall live delivery (the message is then in history a little after it is live).
 */
const HISTORY_HOLD_MS = 2_000;

/**
 * How long a replayed redis-route subscription keeps dropping live copies of the ids it replayed: a copy stored
 * before the read but published after the replay ended arrives this much later at most (the store hold, plus
 * Redis), so past this the ids are forgotten.
 */
const LATE_COPY_MS = 2 * HISTORY_HOLD_MS + 1_000;

/** Destinations whose next redis-route position this node remembers; one forgotten asks the history store again. */
const MAX_POSITION_FLOORS = 100_000;

/** Events for metrics and tests; emitting costs nothing when nobody listens. Never on the per-message path. */
export interface BrokerEventMap {
  'session-open': [Session];
  'session-close': [Session];
  'session-error': [Session, ProtocolError];
  'slow-consumer': [Session];
}

/** How often resident memory is sampled for the watermark: never per message, always within a second. */
const MEMORY_SAMPLE_MS = 500;
/** The watermark when `memoryHighWatermarkBytes` is 0, as a share of the memory available (RabbitMQ's 0.4). */
const DEFAULT_WATERMARK_FRACTION = 0.4;
/** What one held-back live message counts against maxOutboundBytes besides its body (its headers and frame). */
const HELD_MESSAGE_OVERHEAD_BYTES = 256;

/** Longest gap between two idle sweeps, whatever idleTimeoutMs is. */
const IDLE_SWEEP_MAX_MS = 30_000;

/**
 * The soft limit on open files from the text of /proc/self/limits (Linux), or undefined when it is unlimited or
 * the text does not say.
 */
export function openFilesSoftLimit(limitsText: string): number | undefined {
  const m = /^Max open files\s+(\S+)\s+/m.exec(limitsText);
  if (m === null || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isInteger(n) ? n : undefined;
}

/** Distinct CONNECT host names remembered so each mapping to `/` is logged once; forgotten all at once when full. */
const MAX_LOGGED_HOSTS = 1000;

/**
 * A broker node: virtual hosts with their topics and queues, and the sessions of connected clients. It opens no
 * socket: transports hand it connections through `handle` (server.ts wires them up), and the cluster engines
 * plug in around it.
 */
export class Broker {
  readonly config: Readonly<BrokerConfig>;
  readonly nodeId: string;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  readonly events = new EventEmitter<BrokerEventMap>();
  readonly serverHeader = `${SERVER_NAME}/${SERVER_VERSION}`;
  readonly sessions = new Set<Session>();
  readonly stats = new BrokerStats();
  #vhosts = new Map<string, VirtualHost>();
  #localNames: Set<string>;
  #loggedHosts = new Set<string>();
  #messageSeq = 0;
  /**
   * `<node id>.<start time, base 36>-`: message ids stay unique across restarts of a node, since history (MongoDB)
   * keeps them across restarts and every node's duplicate filter remembers the ids it saw.
   */
  #messageIdPrefix: string;
  #sessionSeq = 0;
  /** CONNECTed sessions per login, for maxConnectionsPerUser. */
  #perUser = new Map<string, number>();
  #idleSweep: NodeJS.Timeout | undefined;
  /** Listeners feeding this broker (`attach`): closed first at shutdown. */
  #sources: ConnectionSource[] = [];
  #starting: Promise<void> | undefined;
  /** Whether `start` finished: every engine connected once. Until then the node is not ready. */
  #started = false;
  /** Set by `drain`: readiness answers 503 while the listeners still serve, ahead of `close`. */
  #draining = false;
  #closing: Promise<void> | undefined;
  /** What sessions see of this broker (SessionHost): the callbacks they need, kept off the public API. */
  readonly #host: SessionHost;

  readonly routes: RouteTable;
  readonly history: HistoryStore;
  #fanout: ClusterBus | undefined;
  #log: ClusterBus | undefined;
  #queues: SharedQueues | undefined;
  /** Whether each topic with history counts against maxDestinationsPerVhost (the store holds it in this process). */
  #historyHeldHere: boolean;
  /** Appends to a history store outside this process, batched and in order per destination. */
  #appends: OrderedAppends;
  /** Whether the last asynchronous history append failed (logged once per outage, not once per message). */
  #historyFailing = false;
  /** Whether the last cluster-wide numbering of a redis-route message failed (logged once per outage). */
  #sequenceFailing = false;
  /** Per destination (`vhost\0destination`), the position after the last one this node gave a redis-route message. */
  #positionFloors = new Map<string, number>();
  /**
   * Per destination, the turn of the last redis-route SEND with history accepted here: settled once its fan-out
   * was handed to the bus. Stores complete in any order; fan-outs go out in the order the SENDs were accepted.
   */
  #fanoutTurns = new Map<string, Promise<void>>();
  #recent = new Set<string>();
  #recentOrder: string[] = [];
  #recentHead = 0;
  /** Resident memory above which SENDs are refused (bytes), the last sample, and whether it is above. */
  readonly memoryWatermarkBytes: number;
  #rssBytes = 0;
  #memoryAlarm = false;
  #memoryTimer: NodeJS.Timeout | undefined;

  constructor(config: Readonly<BrokerConfig>, authenticator: Authenticator, logger: Logger, backends: BrokerBackends) {
    // Chosen once, by createBroker (broker/server.ts), before the engines that are named after it are built.
    if (config.nodeId === '') throw new TypeError('config.nodeId is empty: createBroker chooses one; a Broker built directly needs it set');
    // The same rule loadConfig applies: the id names Kafka clients, Redis keys and message ids.
    if (!validName(config.nodeId)) throw new TypeError(`config.nodeId "${config.nodeId}" may use only ${NAME_RULE.text}`);
    this.config = config;
    this.#fanout = backends.fanout;
    this.#log = backends.log;
    this.#queues = backends.queues;
    this.routes = backends.routes;
    for (const r of this.routes.routes) {
      if (r.kind === 'redis' && this.#fanout === undefined)
        throw new TypeError(`route ${r.pattern} needs a redis engine, and none is configured`);
      if (r.kind === 'kafka' && this.#log === undefined)
        throw new TypeError(`route ${r.pattern} needs a kafka engine, and none is configured`);
    }
    this.history = backends.history;
    this.#appends = new OrderedAppends(this.history);
    this.#historyHeldHere = this.history.onForgotten !== undefined;
    // A topic whose history was evicted entirely no longer counts against maxDestinationsPerVhost.
    this.history.onForgotten?.((vhost, destination) => this.#vhosts.get(vhost)?.releaseHistory(destination));
    this.memoryWatermarkBytes =
      config.memoryHighWatermarkBytes > 0 ? config.memoryHighWatermarkBytes : Math.floor(availableMemory() * DEFAULT_WATERMARK_FRACTION);
    this.nodeId = config.nodeId;
    this.#messageIdPrefix = `${config.nodeId}.${Date.now().toString(36)}-`;
    this.logger = logger;
    // Every real authenticator sits behind the failure delay and the cap on concurrent checks.
    this.authenticator = authenticator === allowAll ? allowAll : new AuthGuard(authenticator, config, logger, this.stats);
    this.#localNames = new Set(['', '/', 'localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0', hostname(), config.host]);
    this.#host = this.#sessionHost();
  }

  /**
   * Made once per broker. Config and stats are the broker's own objects; each method is one call into the broker
   * (no closure or wrapper per frame), so a session costs what it did when it held the Broker itself.
   */
  #sessionHost(): SessionHost {
    // The getter below runs with the host object as `this`, and still has to read the broker's private state.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const broker = this;
    return {
      config: this.config,
      stats: this.stats,
      authenticator: this.authenticator,
      serverHeader: this.serverHeader,
      routes: this.routes,
      get memoryAlarm() {
        return broker.#memoryAlarm;
      },
      lowMemoryError: () => this.#lowMemoryError(),
      resolveVhost: (host) => this.resolveVhost(host),
      admitUser: (user) => this.#admitUser(user),
      sessionConnected: (session) => this.#sessionConnected(session),
      sessionClosed: (session, wasConnected) => this.#sessionClosed(session, wasConnected),
      sessionFailed: (session, problem) => this.events.emit('session-error', session, problem),
      slowConsumer: (session) => this.events.emit('slow-consumer', session),
      publish: (vhost, destination, headers, body) => this.#publish(vhost, destination, headers, body),
      subscribe: (vhost, sub, headers) => this.#subscribe(vhost, sub, headers),
      unsubscribe: (vhost, sub) => this.#unsubscribe(vhost, sub),
      returnMessage: (vhost, message) => this.#returnMessage(vhost, message),
      acknowledge: (vhost, message) => this.#acknowledge(vhost, message),
    };
  }

  // ---- sessions -------------------------------------------------------------------------------------------

  /**
   * Takes a new transport connection (as aedes's `handle(conn)`): wraps it in a session and returns what the
   * transport feeds it with. TCP, TLS, WebSocket and in-memory connections all come in here.
   */
  handle(connection: Connection): ConnectionHandler {
    const id = `${this.nodeId}-${(++this.#sessionSeq).toString(36)}`;
    const session = new Session(this.#host, connection, id, this.logger);
    this.sessions.add(session);
    const max = this.config.maxConnections;
    if (this.sessions.size > max) {
      // Refused with a reason rather than left to fail at accept once file descriptors run out, which silently
      // stops new clients and /healthz alike.
      this.stats.limitHit('connections');
      session.refuse(
        new ProtocolError(
          BROKER_ERRORS.ERR_LIMIT_EXCEEDED,
          `too many connections (limit ${max} per node)`,
          'This node has as many open connections as it accepts; retry later or connect to another node.',
        ),
      );
    } else if (this.#idleSweep === undefined && this.config.idleTimeoutMs > 0 && this.#closing === undefined) {
      this.#startIdleSweep();
    }
    return session;
  }

  /**
   * One timer for the whole node rather than one per session (10,000 idle sessions must not be 10,000 timers):
   * it sweeps at a quarter of idleTimeoutMs, so a session goes at most 25% past the limit.
   */
  #startIdleSweep(): void {
    const every = Math.max(10, Math.min(IDLE_SWEEP_MAX_MS, Math.floor(this.config.idleTimeoutMs / 4)));
    this.#idleSweep = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions) s.checkIdle(now);
    }, every);
    this.#idleSweep.unref();
  }

  /** At CONNECTED time: throws the ERROR for a login that already has maxConnectionsPerUser sessions. */
  #admitUser(user: string): void {
    // Without authentication every client is `anonymous`: that is the node limit's business, not a user's.
    if (this.authenticator === allowAll) return;
    const max = this.config.maxConnectionsPerUser;
    if ((this.#perUser.get(user) ?? 0) >= max) {
      this.stats.limitHit('connections-per-user');
      throw new ProtocolError(
        BROKER_ERRORS.ERR_LIMIT_EXCEEDED,
        `too many connections for this user (limit ${max} per user)`,
        'This login already has as many sessions on this node as it may; close one first.',
      );
    }
  }

  #sessionConnected(session: Session): void {
    if (session.vhost !== undefined) session.vhost.sessions++;
    if (session.user !== undefined) this.#perUser.set(session.user, (this.#perUser.get(session.user) ?? 0) + 1);
    this.events.emit('session-open', session);
  }

  #sessionClosed(session: Session, wasConnected: boolean): void {
    this.sessions.delete(session);
    const vhost = session.vhost;
    const user = session.user;
    if (wasConnected && user !== undefined) {
      const n = (this.#perUser.get(user) ?? 1) - 1;
      if (n > 0) this.#perUser.set(user, n);
      else this.#perUser.delete(user);
    }
    if (wasConnected && vhost !== undefined) {
      vhost.sessions--;
      if (vhost.idle && vhost.name !== '/') this.#vhosts.delete(vhost.name);
      this.events.emit('session-close', session);
    }
  }

  /**
   * The CONNECT `host` names a virtual host (STOMP 1.2 §CONNECT). Only configured names are virtual hosts: names of
   * this machine, no header at all, and (with no `virtualHosts` configured) every other name mean the default `/`.
   * Clients send a host without meaning anything by it (stompit sends `localhost`, stomp.py the name it dialed),
   * and a namespace per value would let any client create them without bound. With `virtualHosts` configured an
   * unknown name is refused, without listing the others: tenants' names are not told to unauthenticated clients.
   */
  resolveVhost(host: string | undefined): VirtualHost {
    if (host === undefined || this.#localNames.has(host)) return this.#vhostNamed('/');
    const allowed = this.config.virtualHosts;
    if (allowed.length === 0) {
      if (!this.#loggedHosts.has(host)) {
        if (this.#loggedHosts.size >= MAX_LOGGED_HOSTS) this.#loggedHosts.clear();
        this.#loggedHosts.add(host);
        this.logger.debug({ host: host.slice(0, 256) }, 'CONNECT host is not a configured virtual host; using the default virtual host /');
      }
      return this.#vhostNamed('/');
    }
    if (!allowed.includes(host)) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_UNKNOWN_VHOST,
        `unknown virtual host "${host}"`,
        'This broker does not serve that virtual host; ask its operator for the right name.',
      );
    }
    return this.#vhostNamed(host);
  }

  /**
   * Reads the users file (and a JWKS file) again, as on SIGHUP. Rejects when the new file is invalid; the previous
   * users then stay in force.
   */
  reloadAuth(): Promise<void> {
    return this.authenticator.reload?.() ?? Promise.resolve();
  }

  // ---- routing --------------------------------------------------------------------------------------------

  /** Generated ids never contain `:`, `\` or whitespace, so they survive every client's header handling. */
  nextMessageId(): string {
    return this.#messageIdPrefix + (++this.#messageSeq).toString(36);
  }

  /** A SEND, accepted: route it. Returns a Promise when the RECEIPT must wait (cross-node and durable routes). */
  #publish(
    vhost: VirtualHost,
    destination: Destination,
    headers: ReadonlyArray<readonly [string, string]>,
    body: Buffer,
  ): void | Promise<void> {
    const route = this.routes.route(destination.full);
    // Only what this node holds per name counts (local queues, in-memory history): shared queues live in Redis.
    if (destination.kind === 'queue') {
      if ((route.kind === 'local' || (route.kind === 'redis' && this.#queues === undefined)) && !vhost.queues.has(destination.name))
        this.#admit(vhost, destination);
    } else if (route.kind === 'local' && this.#historyHeldHere && !vhost.holdsHistory(destination.full)) {
      this.#admit(vhost, destination);
      vhost.holdHistory(destination.full);
    }
    this.stats.routed[route.kind]++;
    if (route.kind === 'local') {
      const id = this.nextMessageId();
      let stored: Promise<void> | undefined;
      if (destination.kind === 'topic') {
        const history = this.history;
        // Numbered here, in accept order, whatever the store: appends that complete out of order still read back
        // in the order the SENDs were accepted.
        const position = history.nextPosition(vhost.name, destination.full);
        const time = Date.now();
        if (typeof position === 'number') {
          const record = { id, origin: this.nodeId, vhost: vhost.name, destination: destination.full, headers, body, time, position };
          if (history.appendNow !== undefined) history.appendNow(record);
          else stored = this.#appendLocal(record);
        } else {
          // The store looks up where the destination's stored history ends first (once per destination).
          const origin = this.nodeId;
          const name = vhost.name;
          const full = destination.full;
          stored = this.#appendLocal(
            position.then((p) => ({ id, origin, vhost: name, destination: full, headers, body, time, position: p })),
          );
        }
      }
      // Live local messages carry no x-stream-offset: positions are shown where they are real stream offsets
      // (Kafka routes) and on replays, so plain pub-sub MESSAGEs stay exactly what the client sent.
      this.#deliverLocal(vhost, destination, new MessageTemplate(destination.full, id, headers, body));
      return stored;
    }
    const shared = this.#queues;
    if (destination.kind === 'queue' && route.kind === 'redis' && shared !== undefined) {
      const id = this.nextMessageId();
      return shared
        .push({ id, origin: this.nodeId, vhost: vhost.name, destination: destination.full, headers, body, time: Date.now() })
        .then(undefined, (error: unknown) => {
          throw new ProtocolError(
            BROKER_ERRORS.ERR_ROUTE_FAILED,
            `could not queue the message for ${destination.full}`,
            `The shared queue did not accept the message (${error instanceof Error ? error.message : String(error)}); it was not delivered. Retry later.`,
            [],
            { cause: error },
          );
        });
    }
    if (destination.kind === 'queue' && route.kind === 'redis') {
      // No shared queue engine (a pub/sub-only bus, as in in-process tests): the queue stays on this node.
      this.#deliverLocal(vhost, destination, new MessageTemplate(destination.full, this.nextMessageId(), headers, body));
      return;
    }
    const bus = route.kind === 'redis' ? this.#fanout : this.#log;
    if (bus === undefined) throw new ProtocolError(BROKER_ERRORS.ERR_ROUTE_FAILED, `no ${route.kind} engine for ${destination.full}`);
    // Kafka stores what it carries itself; a redis-route topic has history when the store is the cluster's (MongoDB).
    if (route.kind === 'redis' && destination.kind === 'topic' && !this.#historyHeldHere)
      return this.#publishWithHistory(bus, vhost, destination, headers, body);
    const envelope = { origin: this.nodeId, vhost: vhost.name, destination: destination.full, headers, body, time: Date.now() };
    return bus.publish(envelope).then(
      () => {
        this.stats.busLatency.observe(Date.now() - envelope.time);
      },
      (error: unknown) => {
        throw routeFailed(route.kind, destination, error);
      },
    );
  }

  /**
   * A redis-route topic SEND, with a history store shared by the cluster: numbered per destination cluster-wide by
   * the bus, stored under its id by this node, then fanned out with that id and position, so every node delivers
   * the message-id and x-stream-offset that history holds. This node stores it because it is the only one sure to
   * see it (Redis pub/sub reaches only the nodes subscribed at that moment, maybe none); the store is idempotent
   * by id besides, so a retry never stores it twice. Stored before its fan-out: a subscriber that reads history
   * once its subscription is live misses nothing (as on Kafka routes); the fan-out waits HISTORY_HOLD_MS at most.
   * The RECEIPT waits for both. While Redis is unreachable the message is neither numbered nor stored, and reaches
   * this node's subscribers only, as every redis-route SEND does then.
   */
  async #publishWithHistory(
    bus: ClusterBus,
    vhost: VirtualHost,
    destination: Destination,
    headers: ReadonlyArray<readonly [string, string]>,
    body: Buffer,
  ): Promise<void> {
    const time = Date.now();
    const id = this.nextMessageId();
    const unnumbered: BusEnvelope = { id, origin: this.nodeId, vhost: vhost.name, destination: destination.full, headers, body, time };
    const key = `${vhost.name}\u0000${destination.full}`;
    const previous = this.#fanoutTurns.get(key);
    let done!: () => void;
    const turn = new Promise<void>((resolve) => (done = resolve));
    this.#fanoutTurns.set(key, turn);
    let stored: Promise<void> | undefined;
    try {
      // Numbered in accept order: the bus answers one connection's requests in the order they were made.
      const position = await this.#sequence(bus, vhost.name, destination.full);
      let envelope = unnumbered;
      if (position !== undefined) {
        const record: HistoryRecord = { ...unnumbered, position };
        envelope = record;
        stored = this.#appendLocal(record);
        if (this.history.healthy) await this.#hold(stored);
      }
      await previous;
      const publishing = bus.publish(envelope);
      done();
      try {
        await publishing;
        this.stats.busLatency.observe(Date.now() - time);
      } catch (error) {
        if (!(error instanceof BridgeError && error.retriable)) throw routeFailed('redis', destination, error);
        // Redis is away: this node's own subscribers still get it (the bus does the same for SENDs it numbers).
        this.#fromBus(envelope);
      }
    } finally {
      done();
      if (this.#fanoutTurns.get(key) === turn) this.#fanoutTurns.delete(key);
    }
    await stored;
  }

  /** The message's position in its destination's stream, or undefined when it cannot be numbered now (logged once). */
  async #sequence(bus: ClusterBus, vhost: string, destination: string): Promise<number | undefined> {
    try {
      if (bus.sequence === undefined) return await this.history.nextPosition(vhost, destination);
      const key = `${vhost}\u0000${destination}`;
      const floor = this.#positionFloors.get(key) ?? (await this.history.nextPosition(vhost, destination));
      const position = await bus.sequence(vhost, destination, floor);
      this.#positionFloors.delete(key);
      this.#positionFloors.set(key, position + 1);
      // Bounded like every per-destination map: the destination numbered least recently is forgotten first.
      if (this.#positionFloors.size > MAX_POSITION_FLOORS) {
        const oldest = this.#positionFloors.keys().next().value;
        if (oldest !== undefined) this.#positionFloors.delete(oldest);
      }
      if (this.#sequenceFailing) {
        this.#sequenceFailing = false;
        this.logger.info({ bus: bus.name }, 'redis-route messages are numbered and stored in history again');
      }
      return position;
    } catch (error) {
      if (!this.#sequenceFailing) {
        this.#sequenceFailing = true;
        this.logger.warn(
          { err: error, bus: bus.name, destination },
          'could not number a redis-route message; messages are delivered but missing from history until it works again',
        );
      }
      return undefined;
    }
  }

  /** Waits for a history append, but no longer than HISTORY_HOLD_MS. */
  async #hold(stored: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, HISTORY_HOLD_MS)));
    try {
      await Promise.race([stored, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A local-route or redis-route topic message, stored in a history store outside this process (MongoDB): the
   * RECEIPT waits for it, so a client that saw its RECEIPT finds the message in `x-history`. The message is
   * delivered live whatever happens here, so a failed write is not the sender's ERROR: it is logged once per
   * outage, and readiness shows the store down.
   */
  async #appendLocal(numbered: HistoryRecord | Promise<HistoryRecord>): Promise<void> {
    let destination: string | undefined;
    try {
      const record = await numbered;
      destination = record.destination;
      await this.#appends.append(record);
      if (this.#historyFailing) {
        this.#historyFailing = false;
        this.logger.info({ store: this.history.name }, 'topic history is stored again');
      }
    } catch (error) {
      if (!this.#historyFailing) {
        this.#historyFailing = true;
        this.logger.warn(
          { err: error, store: this.history.name, destination },
          'could not store topic history; messages are delivered live but missing from replays until the store is back',
        );
      }
    }
  }

  /**
   * Refuses a SEND or SUBSCRIBE that would make its virtual host hold state for one destination more than
   * maxDestinationsPerVhost. Names already held pass with one Map lookup, so traffic to them stays O(1).
   */
  #admit(vhost: VirtualHost, destination: Destination): void {
    if (vhost.holds(destination.full)) return;
    const max = this.config.maxDestinationsPerVhost;
    if (vhost.destinationCount < max) return;
    this.stats.limitHit('destinations');
    throw new ProtocolError(
      BROKER_ERRORS.ERR_TOO_MANY_DESTINATIONS,
      `too many destinations: ${destination.full} would exceed maxDestinationsPerVhost (${max})`,
      `The virtual host "${vhost.name}" already holds ${vhost.destinationCount} destinations (queues, topics with history, topics with subscribers); the limit is maxDestinationsPerVhost = ${max}. Reuse existing destinations, or let idle ones expire.`,
    );
  }

  // ---- memory watermark -----------------------------------------------------------------------------------

  /** True while resident memory is above the watermark: every SEND is refused until it falls below. */
  get memoryAlarm(): boolean {
    return this.#memoryAlarm;
  }

  /** The last memory sample, for /readyz and operators. */
  memoryStatus(): { rssBytes: number; watermarkBytes: number; alarm: boolean } {
    return { rssBytes: this.#rssBytes, watermarkBytes: this.memoryWatermarkBytes, alarm: this.#memoryAlarm };
  }

  #sampleMemory(): void {
    this.#rssBytes = process.memoryUsage.rss();
    const alarm = this.#rssBytes > this.memoryWatermarkBytes;
    if (alarm !== this.#memoryAlarm) {
      this.#memoryAlarm = alarm;
      const detail = { rssBytes: this.#rssBytes, watermarkBytes: this.memoryWatermarkBytes };
      if (alarm) this.logger.warn(detail, 'memory above the high watermark: refusing SENDs');
      else this.logger.info(detail, 'memory below the high watermark again: accepting SENDs');
    }
  }

  /** The refusal of a SEND while the memory alarm is on, with the figures (RabbitMQ's memory alarm blocks publishers). */
  #lowMemoryError(): ProtocolError {
    this.stats.limitHit('memory');
    return new ProtocolError(
      BROKER_ERRORS.ERR_LOW_MEMORY,
      'broker low on memory',
      `The node's resident memory (RSS ${this.#rssBytes} bytes) is above its high watermark (memoryHighWatermarkBytes: ${this.memoryWatermarkBytes} bytes), so it accepts no SEND until memory falls. Retry later.`,
    );
  }

  /** Hands a message to this node's subscribers: every matching topic subscription, or one queue consumer. */
  #deliverLocal(vhost: VirtualHost, destination: Destination, template: MessageTemplate, position?: number): void {
    if (destination.kind === 'topic') {
      // `/topic/x`, `/redis/x` and `/kafka/x` share the name `x` in the subscription index: only the same prefix
      // counts. The three prefixes differ in their second character, so one comparison per subscriber tells them apart.
      const prefixMark = destination.full.charCodeAt(1);
      for (const sub of vhost.topics.match(destination.name)) {
        if (sub.destination.full.charCodeAt(1) !== prefixMark) continue;
        // Replayed already, and its live copy came after the replay (redis routes: stored a moment before fan-out).
        if (sub.lateCopies?.has(template.messageId) === true) continue;
        // Replayed already: history may hold a record before its fan-out reaches this node (Kafka routes).
        if (position !== undefined) {
          if (sub.replayedUpTo !== undefined && position <= sub.replayedUpTo) continue;
          if (sub.lastPosition === undefined || position > sub.lastPosition) sub.lastPosition = position;
        }
        if (sub.replayBuffer !== undefined) {
          sub.replayBuffer.push(template);
          // A subscriber that cannot keep up with live traffic while it replays is a slow consumer.
          sub.replayBufferBytes += template.body.length + HELD_MESSAGE_OVERHEAD_BYTES;
          if (sub.replayBufferBytes > this.config.maxOutboundBytes) sub.consumer.overflowed();
        } else {
          sub.consumer.deliver(sub, template);
        }
      }
    } else {
      vhost.queue(destination.name).enqueue(template);
    }
  }

  /** An envelope from a bus: delivered once on this node, whatever the bus repeats. */
  #fromBus = (envelope: BusEnvelope): void => {
    if (this.#seen(envelope.id)) return;
    let destination: Destination;
    try {
      destination = parseDestination(envelope.destination);
    } catch {
      return; // another node accepted it; nothing here can answer its sender
    }
    const vhost = this.#vhostNamed(envelope.vhost);
    const headers = envelope.position === undefined ? envelope.headers : withOffset(envelope.headers, envelope.position);
    const template = new MessageTemplate(envelope.destination, envelope.id, headers, envelope.body);
    this.stats.deliveryLatency.observe(Date.now() - envelope.time);
    // Kafka positions follow the order history is stored in (one writer per partition), so a live copy at or below
    // what a subscriber replayed is a duplicate. Redis-route positions are numbered by several nodes, and stored in
    // whatever order their writes land: those copies are matched by id (`lateCopies`) instead.
    const position =
      envelope.position !== undefined && this.routes.route(envelope.destination).kind === 'kafka' ? envelope.position : undefined;
    try {
      this.#deliverLocal(vhost, destination, template, position);
    } catch (error) {
      this.logger.warn({ err: error, destination: envelope.destination }, 'dropped a message from the bus');
    }
  };

  #seen(id: string): boolean {
    if (this.#recent.has(id)) return true;
    this.#recent.add(id);
    // A fixed ring of ids: the oldest is forgotten when the window is full.
    if (this.#recentOrder.length < DEDUPE_WINDOW) {
      this.#recentOrder.push(id);
    } else {
      this.#recent.delete(this.#recentOrder[this.#recentHead] as string);
      this.#recentOrder[this.#recentHead] = id;
      this.#recentHead = (this.#recentHead + 1) % DEDUPE_WINDOW;
    }
    return false;
  }

  #vhostNamed(name: string): VirtualHost {
    let vhost = this.#vhosts.get(name);
    if (vhost === undefined) {
      const c = this.config;
      const limits = { maxMessages: c.maxQueueMessages, maxBytes: c.maxQueueBytes, maxDeliveries: c.maxDeliveries };
      vhost = new VirtualHost(name, limits, (queue) => this.#connectQueue(name, queue));
      this.#vhosts.set(name, vhost);
    }
    return vhost;
  }

  /** A queue on a cross-node route becomes a window on the cluster's shared queue of that name. */
  #connectQueue(vhost: string, queue: Queue): void {
    const shared = this.#queues;
    if (shared === undefined || this.routes.route(`/queue/${queue.name}`).kind === 'local') return;
    queue.setFeed(new SharedQueueFeed(shared, vhost, queue, this.logger));
  }

  /**
   * Makes a subscription live; the SUBSCRIBE's RECEIPT goes out once this returns (or its Promise settles).
   * Topic subscriptions may ask for history first: `x-history: N`, `x-resume-after: <message-id>`, or
   * RabbitMQ streams' `x-stream-offset` (first, last, next, offset=N, timestamp=T in seconds).
   */
  #subscribe(vhost: VirtualHost, sub: Subscription, headers: Headers): void | Promise<void> {
    if (sub.destination.kind === 'queue') {
      if (!vhost.queues.has(sub.destination.name)) this.#admit(vhost, sub.destination);
      vhost.queue(sub.destination.name).addConsumer(sub);
      return;
    }
    const query = sub.pattern === undefined ? historyQuery(headers) : undefined;
    if (sub.pattern === undefined) {
      this.#admit(vhost, sub.destination);
      vhost.addSubscriber(sub.destination.full);
      sub.countedName = sub.destination.full;
    }
    const route = this.routes.route(sub.destination.full);
    const bus = route.kind === 'redis' ? this.#fanout : route.kind === 'kafka' ? this.#log : undefined;
    if (query !== undefined) sub.replayBuffer = [];
    // The client had everything up to the id it resumes after. Its live copies may come again (Kafka records
    // consumed a second time after a rebalance, reaching a node that restarted since the first time and so has
    // not seen them): set before the subscription goes live, so that none slips in during the history read.
    if (query !== undefined && 'afterId' in query) {
      const had = bus?.positionOf?.(sub.destination.full, query.afterId);
      if (had !== undefined) sub.replayedUpTo = had;
    }
    vhost.topics.add(sub);
    // An engine that cannot carry this subscription at all (a wildcard over Redis Cluster's sharded pub/sub) says
    // so with a non-retriable error: the client gets it as an ERROR naming the route, not an internal error.
    const watching = bus?.watch(vhost.name, sub.destination.full).catch((error: unknown) => {
      if (error instanceof BridgeError && !error.retriable)
        throw new ProtocolError(BROKER_ERRORS.ERR_ROUTE_FAILED, error.message, '', [], { cause: error });
      throw error;
    });
    if (query === undefined) return watching;
    return this.#replayThenLive(vhost, sub, query, watching);
  }

  /**
   * Sends history, then the live messages held back meanwhile (`sub.replayBuffer` must already be set), minus
   * those the history already had. Used by replaying SUBSCRIBEs and by catch-ups after the fan-out link was down.
   */
  async #replayThenLive(vhost: VirtualHost, sub: Subscription, query: HistoryQuery, ready?: Promise<void>): Promise<void> {
    let replayed: Set<string> | undefined;
    try {
      await ready;
      // Read after the subscription is live: anything newer than the read arrives live, so there is no gap.
      const started = Date.now();
      const records = await this.history.read(vhost.name, sub.destination.full, query, MAX_REPLAY);
      this.stats.historyLatency.observe(Date.now() - started);
      replayed = await this.#replay(sub, records);
    } finally {
      await this.#releaseHeldBack(sub);
    }
    if (replayed.size > 0 && this.routes.route(sub.destination.full).kind === 'redis') this.#dropLateCopies(sub, replayed);
  }

  /**
   * On redis routes a message is stored a moment before its fan-out: a replay may have sent one whose live copy
   * arrives only after the held-back messages were released. Such copies are dropped by id for LATE_COPY_MS.
   */
  #dropLateCopies(sub: Subscription, ids: Set<string>): void {
    sub.lateCopies = ids;
    setTimeout(() => {
      if (sub.lateCopies === ids) sub.lateCopies = undefined;
    }, LATE_COPY_MS).unref();
  }

  /**
   * The live messages held back during a replay, paced like the replay itself; messages arriving meanwhile are
   * held too and follow in order. Live delivery resumes only once none is left.
   */
  async #releaseHeldBack(sub: Subscription): Promise<void> {
    try {
      while (sub.replayBuffer !== undefined && sub.replayBuffer.length > 0) {
        const batch = sub.replayBuffer;
        sub.replayBuffer = [];
        for (const t of batch) {
          if (!(await this.#readyForReplay(sub))) return;
          sub.replayBufferBytes -= t.body.length + HELD_MESSAGE_OVERHEAD_BYTES;
          if (!sub.replayedIds?.has(t.messageId)) sub.consumer.deliver(sub, t);
        }
      }
    } finally {
      sub.replayBuffer = undefined;
      sub.replayBufferBytes = 0;
      sub.replayedIds = undefined;
    }
  }

  /** Waits until the subscriber's socket has room; false once it is gone (closed or unsubscribed). */
  async #readyForReplay(sub: Subscription): Promise<boolean> {
    if (sub.cancelled) return false;
    const ready = sub.consumer.readyForReplay();
    return (ready === true || (await ready)) && !sub.cancelled;
  }

  /** Kafka-route topic subscriptions of this node: the ones history can repair after a fan-out outage. */
  *#kafkaTopicSubscriptions(): Generator<[VirtualHost, Subscription]> {
    for (const session of this.sessions) {
      const vhost = session.vhost;
      if (vhost === undefined) continue;
      for (const sub of session.subscriptions.values()) {
        if (sub.destination.kind === 'topic' && sub.pattern === undefined && this.routes.route(sub.destination.full).kind === 'kafka')
          yield [vhost, sub];
      }
    }
  }

  /**
   * The fan-out link went down: Kafka-route records published now may never arrive live on this node. Live
   * messages are held back from here, and the catch-up point is remembered before anything else arrives.
   */
  #linkDown(): void {
    for (const [, sub] of this.#kafkaTopicSubscriptions()) {
      if (sub.catchUpFrom !== undefined) continue;
      const seen = Math.max(sub.lastPosition ?? -1, sub.replayedUpTo ?? -1);
      sub.catchUpFrom = seen >= 0 ? { fromPosition: seen + 1 } : { fromTime: sub.liveSince };
      sub.replayBuffer ??= [];
    }
  }

  /** Every channel is subscribed again: read what was missed from history (stored before fan-out), then go live. */
  #linkUp(): void {
    for (const [vhost, sub] of this.#kafkaTopicSubscriptions()) {
      const from = sub.catchUpFrom;
      if (from === undefined) continue;
      sub.catchUpFrom = undefined;
      void this.#replayThenLive(vhost, sub, from).catch((error: unknown) => {
        this.logger.warn({ err: error, destination: sub.destination.full }, 'catching up from history after a fan-out outage failed');
      });
    }
  }

  /**
   * Sends history records while the subscriber's socket has room, waiting for it to drain in between, so a
   * replay larger than maxOutboundBytes reaches a client that reads (issue #8, item 6).
   */
  async #replay(sub: Subscription, records: readonly HistoryRecord[]): Promise<Set<string>> {
    const ids = new Set<string>();
    sub.replayedIds = ids;
    for (const r of records) {
      if (!(await this.#readyForReplay(sub))) return ids;
      ids.add(r.id);
      sub.replayedUpTo = Math.max(sub.replayedUpTo ?? -1, r.position);
      sub.consumer.deliver(sub, new MessageTemplate(r.destination, r.id, withOffset(r.headers, r.position), r.body));
    }
    return ids;
  }

  #unsubscribe(vhost: VirtualHost, sub: Subscription): void {
    sub.cancelled = true;
    if (sub.destination.kind === 'topic') {
      vhost.topics.remove(sub);
      if (sub.countedName !== undefined) vhost.removeSubscriber(sub.countedName);
      sub.countedName = undefined;
      const route = this.routes.route(sub.destination.full);
      const bus = route.kind === 'redis' ? this.#fanout : route.kind === 'kafka' ? this.#log : undefined;
      bus?.unwatch(vhost.name, sub.destination.full);
    } else {
      vhost.queues.get(sub.destination.name)?.removeConsumer(sub);
      vhost.dropIfIdle(sub.destination.name);
    }
  }

  /** An unacknowledged queue message came back (NACK, UNSUBSCRIBE, disconnect). */
  #returnMessage(vhost: VirtualHost, message: QueuedMessage): void {
    vhost.queue(message.queue).returnMessage(message);
    vhost.dropIfIdle(message.queue);
  }

  /** The client acknowledged a queue message (shared queues forget it only now). */
  #acknowledge(vhost: VirtualHost, message: QueuedMessage): void {
    vhost.queues.get(message.queue)?.acknowledge(message);
    vhost.dropIfIdle(message.queue);
  }

  // ---- lifecycle ------------------------------------------------------------------------------------------

  /**
   * Connects the cluster engines and starts the memory sampler; once, however often it is called. `listen`
   * (server.ts) calls it before opening any listener, so no client arrives before the engines are up.
   */
  start(): Promise<void> {
    this.#starting ??= (async () => {
      await this.#fanout?.start(this.#fromBus);
      this.#fanout?.setLinkListener?.({ down: () => this.#linkDown(), up: () => this.#linkUp() });
      await this.#queues?.start();
      this.#queues?.reportConsumers?.(() => this.#sharedConsumers());
      await this.#log?.start(this.#fromBus);
      this.#checkFileDescriptors();
      this.#sampleMemory();
      this.#memoryTimer = setInterval(() => this.#sampleMemory(), MEMORY_SAMPLE_MS);
      this.#memoryTimer.unref();
      this.#started = true;
    })();
    return this.#starting;
  }

  /**
   * Listeners that feed this broker: `close` stops them accepting before it closes the sessions, and waits for
   * their sockets before it closes the engines. One attached while closing is stopped at once.
   */
  attach(source: ConnectionSource): void {
    if (this.#closing !== undefined) {
      void source.stopAccepting();
      return;
    }
    this.#sources.push(source);
  }

  /**
   * Warns when maxConnections does not fit under the process's open-file limit: past that limit accept fails,
   * and new clients and /healthz stop getting answers with nothing said (Linux only: /proc/self/limits).
   */
  #checkFileDescriptors(): void {
    let text: string;
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return; // not Linux
    }
    const soft = openFilesSoftLimit(text);
    const max = this.config.maxConnections;
    if (soft !== undefined && max + FD_HEADROOM > soft) {
      this.logger.warn(
        { maxConnections: max, openFilesSoftLimit: soft, headroom: FD_HEADROOM },
        `maxConnections ${max} leaves less than ${FD_HEADROOM} file descriptors of headroom below the open-file limit ${soft} (ulimit -n): raise the limit, or set maxConnections to ${Math.max(1, soft - FD_HEADROOM)} or less`,
      );
    }
  }

  /**
   * For readiness probes (`/readyz`): whether to send traffic here. Not ready while starting (engines not all
   * connected yet), while draining or closing, or while an engine that carries SENDs (`fanout`, `queues`, `log`) is
   * down, since SENDs on its routes fail or stay on this node. A history store outage (`history`) is detail only:
   * it is shared by every node, so failing on it would take the whole cluster out of a load balancer at once, while
   * live traffic still flows (appends are retried, replays wait). `engines` names each engine's health by role.
   */
  readiness(): Readiness {
    const engines: Record<string, boolean> = {};
    if (this.#fanout !== undefined) engines.fanout = this.#fanout.healthy;
    if (this.#queues !== undefined) engines.queues = this.#queues.healthy;
    if (this.#log !== undefined) engines.log = this.#log.healthy;
    engines.history = this.history.healthy;
    const closing = this.#closing !== undefined;
    const sendsCarried = engines.fanout !== false && engines.queues !== false && engines.log !== false;
    const state = this.#readinessState(closing, sendsCarried);
    return { ready: state === 'ready', state, closing, engines };
  }

  #readinessState(closing: boolean, sendsCarried: boolean): ReadinessState {
    if (closing) return 'closing';
    if (this.#draining) return 'draining';
    if (!this.#started) return 'starting';
    return sendsCarried ? 'ready' : 'engine-down';
  }

  /**
   * Starts the shutdown drain: from now on readiness answers 503 (`draining`) while every listener keeps serving,
   * so a load balancer stops sending new clients here before `close` ends the sessions. Clients already connected
   * are not told anything. Idempotent; `close` may follow at any time.
   */
  drain(): void {
    this.#draining = true;
  }

  /** The virtual hosts this node holds state for now (for operators: the management API and per-queue metrics). */
  virtualHosts(): IterableIterator<VirtualHost> {
    return this.#vhosts.values();
  }

  /** The virtual host of that name when this node holds state for it (an operator's purge or move). */
  virtualHost(name: string): VirtualHost | undefined {
    return this.#vhosts.get(name);
  }

  /** Consumers on this node of queues shared by the cluster, as the shared queue engine reports them to every node. */
  *#sharedConsumers(): Generator<QueueConsumers> {
    for (const vhost of this.#vhosts.values())
      for (const q of vhost.queues.values())
        if (q.shared && q.consumerCount > 0) yield { vhost: vhost.name, queue: q.name, consumers: q.consumerCount };
  }

  /** The engines this node was built with, by the roles `readiness()` names them with (for operators and tests). */
  get engines(): BrokerEngines {
    return { fanout: this.#fanout, queues: this.#queues, log: this.#log, history: this.history };
  }

  /** Stops accepting, lets in-flight work and its RECEIPTs finish, closes every session. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#idleSweep);
      this.#idleSweep = undefined;
      clearInterval(this.#memoryTimer);
      const sources = this.#sources;
      const stopped = Promise.all(sources.map((source) => source.stopAccepting()));
      await Promise.all([...this.sessions].map((s) => s.shutdown()));
      await Promise.all(sources.map((source) => source.waitClosed(this.config.closeTimeoutMs)));
      await stopped;
      await this.#closeEngine('log', this.#log?.close());
      await this.#closeEngine('queues', this.#queues?.close());
      await this.#closeEngine('fanout', this.#fanout?.close());
      await this.#closeEngine('history', this.history.close());
      this.authenticator.close?.();
    })();
    return this.#closing;
  }

  /**
   * An engine gets ENGINE_CLOSE_MS to finish its close, then is left behind with a warning: a stop must be bounded
   * (Kubernetes kills a pod that takes too long anyway), and whatever an engine still holds is either acknowledged
   * already or redelivered by the cluster (a history read interrupted mid-repair, a group leave mid-rebalance).
   */
  async #closeEngine(role: string, closing: Promise<void> | undefined): Promise<void> {
    if (closing === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ENGINE_CLOSE_MS)));
    try {
      const outcome = await Promise.race([closing.then(() => 'closed' as const), late]);
      if (outcome === 'late')
        this.logger.warn({ engine: role, waitedMs: ENGINE_CLOSE_MS }, 'engine did not close in time; stopping without it');
    } catch (error) {
      this.logger.warn({ err: error, engine: role }, 'engine failed to close cleanly');
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The ERROR a SEND gets when its route's engine did not take it. */
function routeFailed(kind: string, destination: Destination, error: unknown): ProtocolError {
  return new ProtocolError(
    BROKER_ERRORS.ERR_ROUTE_FAILED,
    `could not route the message to ${destination.full}`,
    `The ${kind} engine did not accept the message (${error instanceof Error ? error.message : String(error)}); it was not delivered. Retry later.`,
    [],
    { cause: error },
  );
}

/** Memory this process may use: the cgroup limit when there is one, else the machine's memory. */
function availableMemory(): number {
  const total = totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < total ? constrained : total;
}

/** MESSAGEs of streams with positions say where they stand, as RabbitMQ streams do. */
function withOffset(headers: ReadonlyArray<readonly [string, string]>, position: number): (readonly [string, string])[] {
  return [...headers, ['x-stream-offset', String(position)]];
}

const STREAM_OFFSET = /^(?:first|last|next|offset=(\d{1,15})|timestamp=(\d{1,15}))$/;

/** The history a SUBSCRIBE asks for, or undefined for live messages only. Bad values are an ERROR. */
export function historyQuery(headers: Headers): HistoryQuery | undefined {
  const bad = (name: string, value: string, expected: string): ProtocolError =>
    new ProtocolError(BROKER_ERRORS.ERR_BAD_HEADER_VALUE, `invalid ${name} "${value}"`, `${name} must be ${expected}.`);
  const last = headers.get('x-history');
  if (last !== undefined) {
    if (!/^\d{1,9}$/.test(last)) throw bad('x-history', last, 'a non-negative number of messages');
    return { last: Math.min(Number(last), MAX_REPLAY) };
  }
  const after = headers.get('x-resume-after');
  if (after !== undefined) return { afterId: after };
  const offset = headers.get('x-stream-offset');
  if (offset !== undefined) {
    const m = STREAM_OFFSET.exec(offset);
    if (m === null) throw bad('x-stream-offset', offset, 'first, last, next, offset=<n> or timestamp=<seconds>');
    if (offset === 'first') return { all: true };
    if (offset === 'last') return { last: 1 };
    if (offset === 'next') return undefined;
    if (m[1] !== undefined) return { fromPosition: Number(m[1]) };
    return { fromTime: Number(m[2]) * 1000 };
  }
  return undefined;
}
