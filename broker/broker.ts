import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { MessageTemplate, type Headers } from '../frames/index.js';
import { allowAll, usersFileAuthenticator, type Authenticator } from './auth.js';
import { loadConfig, type BrokerConfig, type ConfigInput } from './config.js';
import type { Connection } from './connection.js';
import type { Destination } from './destinations.js';
import { BROKER_ERRORS, ProtocolError } from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import { Session } from './session.js';
import type { QueuedMessage, Subscription } from './subscription.js';
import { listenTransports, type Listeners, type ListenAddresses } from './transports/listen.js';
import { VirtualHost } from './vhost.js';

export const SERVER_NAME = 'stompede';
export const SERVER_VERSION = '0.1.0';

export interface BrokerOptions {
  /** Settings on top of the defaults; a loaded config (from `loadConfig`) is used as it is. */
  config?: ConfigInput;
  authenticator?: Authenticator;
  logger?: Logger;
}

/** Events for metrics and tests; emitting costs nothing when nobody listens. Never on the per-message path. */
export interface BrokerEventMap {
  'session-open': [Session];
  'session-close': [Session];
  'session-error': [Session, ProtocolError];
  'slow-consumer': [Session];
}

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A broker node: virtual hosts with their topics and queues, the sessions of connected clients, and the
 * listeners that feed them. Transports and the cluster bus plug in around it.
 */
export class Broker {
  readonly config: Readonly<BrokerConfig>;
  readonly nodeId: string;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  readonly events = new EventEmitter<BrokerEventMap>();
  readonly serverHeader = `${SERVER_NAME}/${SERVER_VERSION}`;
  readonly sessions = new Set<Session>();
  #vhosts = new Map<string, VirtualHost>();
  #localNames: Set<string>;
  #messageSeq = 0;
  #sessionSeq = 0;
  #listeners: Listeners | undefined;
  #closing: Promise<void> | undefined;

  constructor(config: Readonly<BrokerConfig>, authenticator: Authenticator, logger: Logger) {
    this.config = config;
    if (config.nodeId !== '' && !NODE_ID.test(config.nodeId)) {
      throw new TypeError(`nodeId "${config.nodeId}" may use only letters, digits, ".", "_" and "-" (at most 64)`);
    }
    this.nodeId = config.nodeId !== '' ? config.nodeId : randomBytes(4).toString('hex');
    this.authenticator = authenticator;
    this.logger = logger;
    this.#localNames = new Set(['', '/', 'localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0', hostname(), config.host]);
  }

  // ---- sessions -------------------------------------------------------------------------------------------

  /** Wraps a new transport connection in a session; the transport then feeds it bytes. */
  handle(connection: Connection): Session {
    const id = `${this.nodeId}-${(++this.#sessionSeq).toString(36)}`;
    const session = new Session(this, connection, id, this.logger.child({ session: id, transport: connection.transport, remote: connection.remoteAddress }));
    this.sessions.add(session);
    return session;
  }

  sessionConnected(session: Session): void {
    if (session.vhost !== undefined) session.vhost.sessions++;
    this.events.emit('session-open', session);
  }

  sessionClosed(session: Session, wasConnected: boolean): void {
    this.sessions.delete(session);
    const vhost = session.vhost;
    if (wasConnected && vhost !== undefined) {
      vhost.sessions--;
      if (vhost.idle && vhost.name !== '/') this.#vhosts.delete(vhost.name);
      this.events.emit('session-close', session);
    }
  }

  /**
   * The CONNECT `host` names a virtual host (STOMP 1.2 §CONNECT). Names of this machine, and no header at all,
   * mean the default `/`; clients send those without meaning anything by them (stompit sends `localhost`,
   * stomp.py the socket's host name). With `virtualHosts` configured, other names must be on that list.
   */
  resolveVhost(host: string | undefined): VirtualHost {
    let name = host === undefined || this.#localNames.has(host) ? '/' : host;
    const allowed = this.config.virtualHosts;
    if (allowed.length > 0 && name !== '/' && !allowed.includes(name)) {
      throw new ProtocolError(BROKER_ERRORS.ERR_UNKNOWN_VHOST, `unknown virtual host "${name}"`,
        `This broker serves the virtual hosts: /, ${allowed.join(', ')}.`);
    }
    let vhost = this.#vhosts.get(name);
    if (vhost === undefined) {
      const c = this.config;
      vhost = new VirtualHost(name, { maxMessages: c.maxQueueMessages, maxBytes: c.maxQueueBytes, maxDeliveries: c.maxDeliveries });
      this.#vhosts.set(name, vhost);
    }
    return vhost;
  }

  // ---- routing --------------------------------------------------------------------------------------------

  /** Generated ids never contain `:`, `\` or whitespace, so they survive every client's header handling. */
  nextMessageId(): string {
    return `${this.nodeId}-${(++this.#messageSeq).toString(36)}`;
  }

  /** A SEND, accepted: deliver it. Returns a Promise when the RECEIPT must wait (durable routes). */
  publish(vhost: VirtualHost, destination: Destination, headers: ReadonlyArray<readonly [string, string]>, body: Buffer): void | Promise<void> {
    const template = new MessageTemplate(destination.full, this.nextMessageId(), headers, body);
    this.deliverLocal(vhost, destination, template);
  }

  /** Hands a message to this node's subscribers: every matching topic subscription, or one queue consumer. */
  deliverLocal(vhost: VirtualHost, destination: Destination, template: MessageTemplate): void {
    if (destination.kind === 'topic') {
      for (const sub of vhost.topics.match(destination.name)) sub.consumer.deliver(sub, template);
    } else {
      vhost.queue(destination.name).enqueue(template);
    }
  }

  /** Makes a subscription live; the SUBSCRIBE's RECEIPT goes out once this returns (or its Promise settles). */
  subscribe(vhost: VirtualHost, sub: Subscription, _headers: Headers): void | Promise<void> {
    if (sub.destination.kind === 'topic') vhost.topics.add(sub);
    else vhost.queue(sub.destination.name).addConsumer(sub);
  }

  unsubscribe(vhost: VirtualHost, sub: Subscription): void {
    if (sub.destination.kind === 'topic') vhost.topics.remove(sub);
    else vhost.queues.get(sub.destination.name)?.removeConsumer(sub);
  }

  /** An unacknowledged queue message came back (NACK, UNSUBSCRIBE, disconnect). */
  returnMessage(vhost: VirtualHost, message: QueuedMessage): void {
    vhost.queue(message.queue).returnMessage(message);
  }

  // ---- lifecycle ------------------------------------------------------------------------------------------

  /** Opens the TCP, WebSocket and (when configured) TLS listeners. */
  async listen(): Promise<ListenAddresses> {
    if (this.#listeners !== undefined) return this.#listeners.addresses;
    this.#listeners = await listenTransports(this);
    return this.#listeners.addresses;
  }

  get addresses(): ListenAddresses | undefined {
    return this.#listeners?.addresses;
  }

  /** Stops accepting, lets in-flight work and its RECEIPTs finish, closes every session. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const listeners = this.#listeners;
      const stopped = listeners?.stopAccepting();
      await Promise.all([...this.sessions].map((s) => s.shutdown()));
      await listeners?.waitClosed(this.config.closeTimeoutMs);
      await stopped;
    })();
    return this.#closing;
  }
}

/** Builds a broker from options: loads the config, and the users file when one is configured. */
export async function createBroker(options: BrokerOptions = {}): Promise<Broker> {
  const config = loadConfig({ overrides: options.config ?? {} });
  const authenticator = options.authenticator ?? (config.usersFile !== '' ? await usersFileAuthenticator(config.usersFile) : allowAll);
  return new Broker(config, authenticator, options.logger ?? silentLogger);
}
