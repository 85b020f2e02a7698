/**
 * What operators see of queues and do to them (the management API and the per-queue metrics), never on the message
 * path. A queue on a cross-node route lives in the shared queue engine: its figures are cluster-wide, read from the
 * engine at each call; a queue on a local route lives in this node only.
 */
import { MessageTemplate } from '../frames/index.js';
import { QUEUE_PREFIX } from './destinations.js';
import type { SharedQueueMessage, SharedQueues } from './ports/queues.js';
import type { RouteKind } from './ports/routes.js';
import { DEAD_LETTER_SUFFIX, revivedHeaders } from './queue.js';
import type { VirtualHost } from './vhost.js';

/** What the queue views read of a broker (a `Broker` is one). */
export interface QueueAdminSource {
  readonly engines: {
    readonly queues?: SharedQueues | undefined;
    readonly log?: { readonly droppedRecords?: ReadonlyMap<string, number> } | undefined;
    readonly fanout?: { readonly droppedRecords?: ReadonlyMap<string, number> } | undefined;
  };
  readonly routes: { route(destination: string): { readonly kind: RouteKind } };
  virtualHosts(): Iterable<VirtualHost>;
  virtualHost(name: string): VirtualHost | undefined;
}

/** One queue as operators see it. `deliveries` and `redeliveries` count this node's deliveries only. */
export interface QueueView {
  readonly vhost: string;
  /** `/queue/<name>`. */
  readonly destination: string;
  readonly name: string;
  /** Held by the cluster's shared queue engine (figures cluster-wide) rather than by this node alone. */
  readonly shared: boolean;
  depth: number;
  bytes: number;
  consumers: number;
  unacked: number;
  /** Waiting messages of `<name>.dlq` (0 for a dead-letter queue itself). */
  dlqDepth: number;
  deliveries: number;
  redeliveries: number;
}

/** Whether a queue of this name is held by the shared queue engine (cross-node route, engine configured). */
export function isShared(source: QueueAdminSource, name: string): boolean {
  return source.engines.queues !== undefined && source.routes.route(QUEUE_PREFIX + name).kind !== 'local';
}

const key = (vhost: string, name: string): string => `${vhost}\n${name}`;

/** Every queue this node holds, and every queue of the shared engine, sorted by virtual host and name. */
export async function queueViews(source: QueueAdminSource): Promise<QueueView[]> {
  const rows = new Map<string, QueueView>();
  for (const vhost of source.virtualHosts()) {
    for (const q of vhost.queues.values()) {
      rows.set(key(vhost.name, q.name), {
        vhost: vhost.name,
        destination: QUEUE_PREFIX + q.name,
        name: q.name,
        shared: q.shared,
        // A shared queue's window holds what this node took; the engine counts those as unacknowledged below.
        depth: q.shared ? 0 : q.depth,
        bytes: q.shared ? 0 : q.bytes,
        consumers: q.consumerCount,
        unacked: q.shared ? 0 : q.unacked,
        dlqDepth: 0,
        deliveries: q.delivered,
        redeliveries: q.redelivered,
      });
    }
  }
  const stats = (await source.engines.queues?.stats?.()) ?? [];
  for (const s of stats) {
    let row = rows.get(key(s.vhost, s.queue));
    if (row === undefined) {
      row = {
        vhost: s.vhost,
        destination: QUEUE_PREFIX + s.queue,
        name: s.queue,
        shared: true,
        depth: 0,
        bytes: 0,
        consumers: 0,
        unacked: 0,
        dlqDepth: 0,
        deliveries: 0,
        redeliveries: 0,
      };
      rows.set(key(s.vhost, s.queue), row);
    }
    // The engine's consumer counts are the other nodes' reports; this node's own count is the live one above.
    row.depth = s.depth;
    row.bytes = s.bytes;
    row.unacked = s.unacked;
    row.consumers += s.consumers;
  }
  for (const row of rows.values()) {
    if (row.name.endsWith(DEAD_LETTER_SUFFIX)) continue;
    row.dlqDepth = rows.get(key(row.vhost, row.name + DEAD_LETTER_SUFFIX))?.depth ?? 0;
  }
  return [...rows.values()].sort((a, b) => (a.vhost === b.vhost ? cmp(a.name, b.name) : cmp(a.vhost, b.vhost)));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Drops the waiting messages of a queue; deliveries awaiting an ACK stay with their consumers (and, for a shared
 * queue, messages a node already took for its consumers are still delivered). Undefined when no such queue exists.
 */
export async function purgeQueue(source: QueueAdminSource, vhost: string, name: string): Promise<number | undefined> {
  const shared = source.engines.queues;
  if (isShared(source, name) && shared?.purge !== undefined) {
    if (!(await exists(source, vhost, name))) return undefined;
    return shared.purge(vhost, name);
  }
  const host = source.virtualHost(vhost);
  const queue = host?.queues.get(name);
  if (host === undefined || queue === undefined) return undefined;
  const n = queue.takeWaiting().length;
  host.dropIfIdle(name);
  return n;
}

/**
 * Sends every waiting message of `<name>.dlq` back to the tail of `<name>`, without its dead-letter headers and
 * with its delivery count reset, so it gets `maxDeliveries` fresh attempts. Undefined when the DLQ does not exist.
 */
export async function moveDeadLetters(source: QueueAdminSource, vhost: string, dlqName: string): Promise<number | undefined> {
  if (!dlqName.endsWith(DEAD_LETTER_SUFFIX) || dlqName.length === DEAD_LETTER_SUFFIX.length) return undefined;
  const target = dlqName.slice(0, -DEAD_LETTER_SUFFIX.length);
  const shared = source.engines.queues;
  if (isShared(source, target) && shared?.move !== undefined) {
    if (!(await exists(source, vhost, dlqName))) return undefined;
    return shared.move(vhost, dlqName, target, (m) => revived(m, target));
  }
  const host = source.virtualHost(vhost);
  const dlq = host?.queues.get(dlqName);
  if (host === undefined || dlq === undefined) return undefined;
  const waiting = dlq.takeWaiting();
  let moved = 0;
  try {
    for (const m of waiting) {
      const t = m.template;
      host.queue(target).enqueue(new MessageTemplate(QUEUE_PREFIX + target, t.messageId, revivedHeaders(t.headers), t.body));
      moved++;
    }
  } catch {
    // The source queue is full: what did not fit stays in the dead-letter queue, in order, for a later move.
    for (const m of waiting.slice(moved)) dlq.accept(m.template, m.deliveries, m.envelope);
  }
  host.dropIfIdle(dlqName);
  return moved;
}

/**
 * A shared dead-lettered message as it goes back, with a fresh count. It keeps its dead-letter id (`<id>-dlq`): the
 * engine remembers pushed ids for an hour, so dead-lettered again it becomes `<id>-dlq-dlq`, never a dropped repeat.
 */
function revived(m: SharedQueueMessage, target: string): SharedQueueMessage {
  const e = m.envelope;
  return { envelope: { ...e, destination: QUEUE_PREFIX + target, headers: revivedHeaders(e.headers) }, deliveries: 0 };
}

async function exists(source: QueueAdminSource, vhost: string, name: string): Promise<boolean> {
  if (source.virtualHost(vhost)?.queues.has(name) === true) return true;
  return ((await source.engines.queues?.stats?.()) ?? []).some((s) => s.vhost === vhost && s.queue === name);
}
