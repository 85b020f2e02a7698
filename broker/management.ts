/**
 * The management API, on the ops listener only: what RabbitMQ's management plugin and `rabbitmqctl list_*` give an
 * operator, as JSON under `/api/`. Every request needs an admin user (HTTP Basic against the node's authenticator,
 * behind the same failure delay as CONNECT); a node without authentication answers only when its listeners are
 * bound to loopback. Nothing here is on the message path: each request reads the sessions and queues once.
 *
 * GET    /api/overview                      node, version, engines and their health, effective routes, totals
 * GET    /api/connections                   every connection of this node
 * GET    /api/connections/:id               one, with its subscriptions
 * DELETE /api/connections/:id               closes it with an ERROR naming the operator action
 * GET    /api/destinations                  queues, and topics with subscribers on this node
 * GET    /api/queues                        depth, bytes, consumers, unacked, DLQ depth (cluster-wide when shared)
 * POST   /api/queues/:name/purge            drops the waiting messages
 * POST   /api/queues/:name.dlq/move         sends the dead-lettered messages back to their queue
 *
 * Names are URL-encoded (`/queue/a` → `%2Fqueue%2Fa`; a bare `a` means `/queue/a` too); `?vhost=` picks the virtual
 * host of a queue operation (default `/`) and filters the lists (default: every virtual host).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { allowAll, type Authenticator } from './auth.js';
import { QUEUE_PREFIX } from './destinations.js';
import type { OpsSource } from './http.js';
import type { HistoryStore } from './ports/history.js';
import type { ClusterBus } from './ports/bus.js';
import type { SharedQueues } from './ports/queues.js';
import { routeFormat, routeText, type Route } from './ports/routes.js';
import { moveDeadLetters, purgeQueue, queueViews, type QueueAdminSource } from './queue-admin.js';
import { DEAD_LETTER_SUFFIX } from './queue.js';
import type { HttpHandler } from './transports/listen.js';
import { SERVER_VERSION } from './version.js';

/** One connection as the management API reads it (a `Session` is one). */
export interface ManagedSession {
  readonly id: string;
  readonly connected: boolean;
  readonly user: string | undefined;
  readonly vhost: { readonly name: string } | undefined;
  readonly version: string;
  readonly connection: { readonly transport: string; readonly remoteAddress: string };
  readonly heartbeats: { readonly outgoingMs: number; readonly incomingMs: number };
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly openedAt: number;
  readonly subscriptions: ReadonlyMap<
    string,
    {
      readonly id: string;
      readonly destination: { readonly full: string; readonly kind: 'topic' | 'queue' };
      readonly ackMode: string;
      readonly prefetch: number;
      readonly pending: { readonly size: number };
    }
  >;
  closeByOperator(reason: string): void;
}

/** What the management API reads of a broker (a `Broker` is one). */
export interface ManagementSource extends OpsSource, QueueAdminSource {
  readonly nodeId: string;
  readonly config: { readonly clusterName: string; readonly host: string };
  readonly authenticator: Authenticator;
  readonly sessions: Iterable<ManagedSession>;
  readonly routes: QueueAdminSource['routes'] & { readonly routes: readonly Route[] };
  readonly engines: {
    readonly fanout?: ClusterBus | undefined;
    readonly log?: ClusterBus | undefined;
    readonly queues?: SharedQueues | undefined;
    readonly history: HistoryStore;
  };
  readonly stats: OpsSource['stats'] & { readonly routed: Readonly<Record<string, number>> };
}

export const API_PREFIX = '/api/';

/** Addresses a node without authentication must be bound to for its management API to answer at all. */
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

const REALM = 'Basic realm="stompede management", charset="UTF-8"';

class HttpProblem extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function sendJson(response: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value, null, 2) + '\n';
  response
    .writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
      ...headers,
    })
    .end(body);
}

/** `Authorization: Basic base64(user:password)` → [user, password]; undefined when absent or malformed. */
export function basicCredentials(header: string | undefined): [string, string] | undefined {
  const m = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null) return undefined;
  const text = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon <= 0 ? undefined : [text.slice(0, colon), text.slice(colon + 1)];
}

/** Throws the 401 or 403 for a request that is not from an admin; resolves with the admin's login. */
async function requireAdmin(broker: ManagementSource, request: IncomingMessage): Promise<string> {
  if (broker.authenticator === allowAll) {
    // Nobody can prove who they are, so the API answers only to this machine (RabbitMQ's guest user is
    // loopback-only for the same reason).
    if (LOOPBACK.has(broker.config.host)) return 'anonymous';
    throw new HttpProblem(
      403,
      'this node has no users file, so its management API answers only on loopback (--host 127.0.0.1); ' +
        'configure --users-file with an admin user',
    );
  }
  const given = basicCredentials(request.headers.authorization);
  if (given === undefined) throw new HttpProblem(401, 'credentials required: HTTP Basic with an admin user', { 'www-authenticate': REALM });
  const socket = request.socket;
  const result = await broker.authenticator.authenticate({
    login: given[0],
    passcode: given[1],
    host: '/',
    remoteAddress: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`,
  });
  if (!result.ok) throw new HttpProblem(401, `authentication failed: ${result.reason}`, { 'www-authenticate': REALM });
  if (result.rights?.()?.admin !== true)
    throw new HttpProblem(403, `user "${result.user}" is not an admin; set "admin": true for it in the users file`);
  return result.user;
}

function connectionSummary(broker: ManagementSource, s: ManagedSession): Record<string, unknown> {
  return {
    id: s.id,
    node: broker.nodeId,
    connected: s.connected,
    user: s.user ?? null,
    vhost: s.vhost?.name ?? null,
    transport: s.connection.transport,
    remoteAddress: s.connection.remoteAddress,
    version: s.connected ? s.version : null,
    heartbeats: s.heartbeats,
    subscriptions: s.subscriptions.size,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    connectedSince: new Date(s.openedAt).toISOString(),
  };
}

function connectionDetail(broker: ManagementSource, s: ManagedSession): Record<string, unknown> {
  return {
    ...connectionSummary(broker, s),
    subscriptions: [...s.subscriptions.values()].map((sub) => ({
      id: sub.id,
      destination: sub.destination.full,
      ack: sub.ackMode,
      prefetch: sub.prefetch,
      unacked: sub.pending.size,
    })),
  };
}

function findSession(broker: ManagementSource, id: string): ManagedSession {
  for (const s of broker.sessions) if (s.id === id) return s;
  throw new HttpProblem(404, `no connection "${id}" on node ${broker.nodeId}`);
}

/** `%2Fqueue%2Fa` or `a` → `a`; anything that is not a queue name is a 400. */
function queueName(segment: string): string {
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    throw new HttpProblem(400, 'the queue name is not valid URL encoding');
  }
  if (name.startsWith(QUEUE_PREFIX)) name = name.slice(QUEUE_PREFIX.length);
  if (name === '' || name.startsWith('/')) throw new HttpProblem(400, `"${name}" is not a queue: use /queue/<name>, URL-encoded`);
  return name;
}

function overview(broker: ManagementSource): Record<string, unknown> {
  const { ready, closing, engines } = broker.readiness();
  const names: Record<string, string | undefined> = {
    fanout: broker.engines.fanout?.name,
    queues: broker.engines.queues?.name,
    log: broker.engines.log?.name,
    history: broker.engines.history.name,
  };
  let connections = 0;
  let sessions = 0;
  let subscriptions = 0;
  for (const s of broker.sessions) {
    connections++;
    if (s.connected) sessions++;
    subscriptions += s.subscriptions.size;
  }
  let queues = 0;
  for (const vhost of broker.virtualHosts()) queues += vhost.queues.size;
  return {
    node: broker.nodeId,
    cluster: broker.config.clusterName,
    version: SERVER_VERSION,
    ready,
    closing,
    engines: Object.entries(engines).map(([role, healthy]) => ({ role, engine: names[role] ?? role, healthy })),
    routes: broker.routes.routes.map((r) => ({
      pattern: r.pattern,
      kind: r.kind,
      ...(r.target !== undefined ? { target: r.target } : {}),
      ...(routeFormat(r) !== undefined ? { format: routeFormat(r) } : {}),
      text: routeText(r),
    })),
    totals: {
      connections,
      sessions,
      subscriptions,
      queuesOnThisNode: queues,
      messagesRouted: { ...broker.stats.routed },
      bytesIn: broker.stats.bytesIn,
      bytesOut: broker.stats.bytesOut,
    },
    memory: broker.memoryStatus(),
  };
}

/** Queues (from `queueViews`) and topics with subscribers on this node, one row per destination. */
async function destinations(broker: ManagementSource, vhost: string | null): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const q of await queueViews(broker)) {
    if (vhost !== null && q.vhost !== vhost) continue;
    rows.push({
      vhost: q.vhost,
      destination: q.destination,
      kind: 'queue',
      route: broker.routes.route(q.destination).kind,
      subscribers: q.consumers,
      messages: q.depth,
    });
  }
  const topics = new Map<string, { vhost: string; destination: string; subscribers: number }>();
  for (const s of broker.sessions) {
    const name = s.vhost?.name;
    if (name === undefined || (vhost !== null && name !== vhost)) continue;
    for (const sub of s.subscriptions.values()) {
      if (sub.destination.kind !== 'topic') continue;
      const k = `${name}\n${sub.destination.full}`;
      const row = topics.get(k) ?? { vhost: name, destination: sub.destination.full, subscribers: 0 };
      row.subscribers++;
      topics.set(k, row);
    }
  }
  for (const t of [...topics.values()].sort((a, b) => (a.destination < b.destination ? -1 : 1)))
    rows.push({ ...t, kind: 'topic', route: broker.routes.route(t.destination).kind, subscribers: t.subscribers, messages: null });
  return rows;
}

const CONNECTION = /^\/api\/connections\/([^/]+)$/;
const QUEUE_ACTION = /^\/api\/queues\/([^/]+)\/(purge|move)$/;

async function answer(
  broker: ManagementSource,
  request: IncomingMessage,
  admin: string,
  path: string,
  query: URLSearchParams,
): Promise<[number, unknown]> {
  const method = request.method ?? 'GET';
  const allow = (methods: string): void => {
    if (!methods.split(', ').includes(method)) throw new HttpProblem(405, `${path} answers ${methods} only`, { allow: methods });
  };
  const vhostFilter = query.get('vhost');
  const vhost = vhostFilter ?? '/';
  if (path === '/api/overview') {
    allow('GET');
    return [200, overview(broker)];
  }
  if (path === '/api/connections') {
    allow('GET');
    const list = [...broker.sessions].filter((s) => vhostFilter === null || s.vhost?.name === vhostFilter);
    return [200, list.map((s) => connectionSummary(broker, s))];
  }
  const connection = CONNECTION.exec(path);
  if (connection !== null) {
    allow('GET, DELETE');
    const session = findSession(broker, decodeURIComponent(connection[1] as string));
    if (method === 'GET') return [200, connectionDetail(broker, session)];
    session.closeByOperator(`An operator (${admin}) closed this connection through the management API.`);
    return [200, { closed: session.id }];
  }
  if (path === '/api/destinations') {
    allow('GET');
    return [200, await destinations(broker, vhostFilter)];
  }
  if (path === '/api/queues') {
    allow('GET');
    const rows = await queueViews(broker);
    return [200, vhostFilter === null ? rows : rows.filter((q) => q.vhost === vhostFilter)];
  }
  const action = QUEUE_ACTION.exec(path);
  if (action !== null) {
    allow('POST');
    const name = queueName(action[1] as string);
    if (action[2] === 'purge') {
      const purged = await purgeQueue(broker, vhost, name);
      if (purged === undefined) throw new HttpProblem(404, `no queue ${QUEUE_PREFIX}${name} in virtual host ${vhost}`);
      return [200, { vhost, queue: QUEUE_PREFIX + name, purged }];
    }
    if (!name.endsWith(DEAD_LETTER_SUFFIX))
      throw new HttpProblem(400, `move takes a dead-letter queue: ${QUEUE_PREFIX}${name}.dlq, not ${QUEUE_PREFIX}${name}`);
    const moved = await moveDeadLetters(broker, vhost, name);
    if (moved === undefined) throw new HttpProblem(404, `no dead-letter queue ${QUEUE_PREFIX}${name} in virtual host ${vhost}`);
    return [200, { vhost, from: QUEUE_PREFIX + name, to: QUEUE_PREFIX + name.slice(0, -DEAD_LETTER_SUFFIX.length), moved }];
  }
  throw new HttpProblem(404, `no management endpoint ${path}`);
}

/** Answers every `/api/` path (for the ops listener only: server.ts never puts it on the WebSocket port). */
export function managementHttpHandler(broker: ManagementSource): HttpHandler {
  return (request, response) => {
    const url = new URL(request.url ?? '/', 'http://ops');
    const path = url.pathname;
    if (path !== '/api' && !path.startsWith(API_PREFIX)) return false;
    requireAdmin(broker, request)
      .then((admin) => answer(broker, request, admin, path, url.searchParams))
      .then(
        ([status, value]) => sendJson(response, status, value),
        (error: unknown) => {
          if (response.headersSent) return void response.destroy();
          if (error instanceof HttpProblem) return sendJson(response, error.status, { error: error.message }, error.headers);
          broker.logger.error({ err: error, path }, 'management request failed');
          sendJson(response, 500, { error: 'the request failed; see the broker log' });
        },
      );
    return true;
  };
}
