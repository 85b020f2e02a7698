import { BridgeError, type BusEnvelope } from '../broker/ports/bus.js';
import { decodeEnvelope, encodeEnvelope } from './envelope-codec.js';
import type { QueueConsumers, SharedQueueMessage, SharedQueueStats, SharedQueues } from '../broker/ports/queues.js';
import { BUFFERS, connectRedis, type RedisClient, type RedisEndpoint } from './redis-client.js';
import { silentLogger, type Logger } from '../broker/ports/logger.js';

export interface RedisQueuesOptions {
  /** A URL, or a target naming a Sentinel or Cluster deployment and its credentials. */
  readonly url: RedisEndpoint;
  readonly clusterName: string;
  readonly nodeId: string;
  readonly logger?: Logger;
  /** A node silent this long is presumed dead and its in-flight messages go back to their queues. */
  readonly nodeTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
}

// Entries are `<id>\n<deliveries so far>\n<envelope bytes>`: ids never contain LF, and the id is what the
// scripts need to name an in-flight entry. Each script is one atomic step, so no message is ever in two places.

/**
 * KEYS: list, dedupe key, set of known queues. ARGV: entry, notify channel, dedupe ttl ms, `<vhost>\n<queue>`.
 * A repeated id is stored once. The set of queues lets operators list queues without scanning Redis's keys.
 */
const PUSH = `
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0`;

/** KEYS: list, this node's in-flight hash, set of nodes with in-flight. ARGV: max, node id. */
const TAKE = `
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local m = redis.call('LPOP', KEYS[1])
  if not m then break end
  local id = string.match(m, '^([^\\n]*)\\n')
  redis.call('HSET', KEYS[2], KEYS[1] .. '\\n' .. id, m)
  out[#out + 1] = m
end
if #out > 0 then redis.call('SADD', KEYS[3], ARGV[2]) end
return out`;

/** KEYS: list, in-flight hash. ARGV: in-flight field, new entry, notify channel. Back to the head. */
const REQUEUE = `
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], '1')
return 1`;

/**
 * KEYS: dead node's in-flight hash, its liveness key, set of nodes with in-flight. ARGV: dead node id, key prefix.
 * Does nothing if the node came back; otherwise every in-flight message returns to the head of its queue, its
 * delivery count raised by one: the dead node may have delivered it, so the next delivery says `redelivered`.
 */
const RECOVER = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local list = string.match(all[i], '^(.*)\\n[^\\n]*$')
  local entry = all[i + 1]
  local a = string.find(entry, '\\n', 1, true)
  local b = a and string.find(entry, '\\n', a + 1, true)
  local n = b and tonumber(string.sub(entry, a + 1, b - 1))
  if n then entry = string.sub(entry, 1, a) .. (n + 1) .. string.sub(entry, b) end
  redis.call('LPUSH', list, entry)
  redis.call('PUBLISH', ARGV[2] .. 'qn:' .. string.sub(list, string.len(ARGV[2]) + 3), '1')
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
return #all / 2`;

/**
 * KEYS: this node's consumer hash, set of nodes reporting consumers. ARGV: ttl ms, node id, then field/count pairs.
 * One atomic replacement, so a reader never sees the hash half written.
 */
const REPORT = `
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV > 2 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
end
return 1`;

/** KEYS: list. Drops the waiting messages; returns how many there were. */
const PURGE = `
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n`;

/**
 * KEYS: source list, target list, set of known queues. ARGV: target notify channel, target `<vhost>\n<queue>`, then
 * (old entry, new entry) pairs. An entry another node took meanwhile is not in the source any more and is skipped,
 * so each message ends up in exactly one list.
 */
const MOVE = `
local moved = 0
for i = 3, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('PUBLISH', ARGV[1], '1')
end
return moved`;

/** Entries read per MOVE step: one script call stays short, so Redis keeps serving everyone else meanwhile. */
const MOVE_BATCH = 100;

/** How long a pushed id is remembered, so a Kafka record replayed after a crash is queued once. */
const DEDUPE_TTL_MS = 3_600_000;

function encodeEntry(envelope: BusEnvelope, deliveries: number): Buffer {
  return Buffer.concat([Buffer.from(`${envelope.id}\n${deliveries}\n`), encodeEnvelope(envelope)]);
}

function decodeEntry(entry: Buffer): SharedQueueMessage | undefined {
  const a = entry.indexOf(0x0a);
  const b = a === -1 ? -1 : entry.indexOf(0x0a, a + 1);
  if (b === -1) return undefined;
  const envelope = decodeEnvelope(entry.subarray(b + 1));
  const deliveries = Number(entry.toString('latin1', a + 1, b));
  return envelope === undefined || !Number.isInteger(deliveries) ? undefined : { envelope, deliveries };
}

/**
 * Shared queues in Redis lists. A node moves messages into its own in-flight hash only when a local consumer has
 * room (atomically, by script), deletes them on ACK and pushes them back to the head on NACK or when a consumer
 * leaves. Each node refreshes a liveness key; survivors return the in-flight hash of a node whose key expired.
 */
export class RedisSharedQueues implements SharedQueues {
  readonly name = 'redis';
  #o: Required<Omit<RedisQueuesOptions, 'logger'>>;
  #log: Logger;
  #cmd: RedisClient | undefined;
  #sub: RedisClient | undefined;
  #timers: NodeJS.Timeout[] = [];
  #attached = new Map<string, () => void>();
  #consumers: (() => Iterable<QueueConsumers>) | undefined;
  #prefixText: string;

  constructor(options: RedisQueuesOptions) {
    this.#o = { nodeTimeoutMs: 5_000, connectTimeoutMs: 5_000, ...options };
    this.#log = options.logger ?? silentLogger;
    this.#prefixText = `${this.#o.clusterName}:`;
  }

  get healthy(): boolean {
    return this.#cmd?.isReady === true && this.#sub?.isReady === true;
  }

  /**
   * Every key starts with it. On a Redis Cluster it is a hash tag, `{<cluster>}:`, so that all the keys of the
   * queues live in one slot and each script (which touches a list, an in-flight hash and sets together) stays
   * atomic there: queues then work on a cluster but live on one master of it (fan-out is what spreads out).
   */
  get #prefix(): string {
    return this.#prefixText;
  }

  #list(vhost: string, queue: string): string {
    return `${this.#prefix}q:${vhost}:${queue}`;
  }

  #notify(vhost: string, queue: string): string {
    return `${this.#prefix}qn:${vhost}:${queue}`;
  }

  #inflight(node: string): string {
    return `${this.#prefix}inflight:${node}`;
  }

  #alive(node: string): string {
    return `${this.#prefix}alive:${node}`;
  }

  get #nodes(): string {
    return `${this.#prefix}inflight-nodes`;
  }

  get #queueSet(): string {
    return `${this.#prefix}queues`;
  }

  #consumerHash(node: string): string {
    return `${this.#prefix}consumers:${node}`;
  }

  get #consumerNodes(): string {
    return `${this.#prefix}consumer-nodes`;
  }

  async start(): Promise<void> {
    this.#cmd = await connectRedis(this.#o.url, this.#log, 'queues', this.#o.connectTimeoutMs);
    if (this.#cmd.mode === 'cluster') this.#prefixText = `{${this.#o.clusterName}}:`;
    this.#sub = await connectRedis(this.#o.url, this.#log, 'queue-notify', this.#o.connectTimeoutMs);
    // A previous run of this node id that crashed and came back before its liveness key expired would strand its
    // in-flight messages (survivors see the key and leave them): they go back to their queues first. The liveness
    // key passed is one that never exists, so RECOVER always runs.
    const stranded = await this.#command([
      'EVAL',
      RECOVER,
      '3',
      this.#inflight(this.#o.nodeId),
      `${this.#prefix}restarted:${this.#o.nodeId}`,
      this.#nodes,
      this.#o.nodeId,
      this.#prefix,
    ]);
    if (typeof stranded === 'number' && stranded > 0)
      this.#log.warn({ moved: stranded }, "returned the unacknowledged messages of this node id's previous run");
    await this.#heartbeat();
    const beat = Math.max(100, Math.floor(this.#o.nodeTimeoutMs / 5));
    this.#timers.push(setInterval(() => void this.#heartbeat(), beat));
    this.#timers.push(setInterval(() => void this.#recover(), beat * 2));
    // A safety net for notifications lost while a connection was down: attached queues look again.
    this.#timers.push(
      setInterval(() => {
        for (const available of this.#attached.values()) available();
      }, 1_000),
    );
    for (const t of this.#timers) t.unref();
  }

  #command(args: (string | Buffer)[], buffers = false): Promise<unknown> {
    const cmd = this.#cmd;
    if (cmd === undefined) return Promise.reject(new BridgeError('ERR_BUS_NOT_STARTED', 'redis queues not started', false));
    return (buffers ? cmd.sendCommand(args, BUFFERS) : cmd.sendCommand(args)).catch((error: unknown) => {
      throw new BridgeError('ERR_REDIS', `redis: ${error instanceof Error ? error.message : String(error)}`, true, { cause: error });
    });
  }

  async #heartbeat(): Promise<void> {
    await this.#command(['SET', this.#alive(this.#o.nodeId), '1', 'PX', String(this.#o.nodeTimeoutMs)]).catch(() => {});
    await this.#report().catch(() => {});
  }

  /** This node's consumer counts, for `stats` on any node; they expire with the node's liveness. */
  async #report(): Promise<void> {
    const read = this.#consumers;
    if (read === undefined) return;
    const args = [
      'EVAL',
      REPORT,
      '2',
      this.#consumerHash(this.#o.nodeId),
      this.#consumerNodes,
      String(this.#o.nodeTimeoutMs),
      this.#o.nodeId,
    ];
    for (const c of read()) if (c.consumers > 0) args.push(`${c.vhost}\n${c.queue}`, String(c.consumers));
    await this.#command(args);
  }

  reportConsumers(read: () => Iterable<QueueConsumers>): void {
    this.#consumers = read;
  }

  async stats(): Promise<SharedQueueStats[]> {
    const [members, consumerNodes, inflightNodes] = await Promise.all([
      this.#command(['SMEMBERS', this.#queueSet]).then(strings),
      this.#command(['SMEMBERS', this.#consumerNodes]).then(strings),
      this.#command(['SMEMBERS', this.#nodes]).then(strings),
    ]);
    const rows = new Map<string, { vhost: string; queue: string; depth: number; bytes: number; unacked: number; consumers: number }>();
    const row = (member: string): { vhost: string; queue: string; depth: number; bytes: number; unacked: number; consumers: number } => {
      let r = rows.get(member);
      if (r === undefined) {
        const nl = member.indexOf('\n');
        r = { vhost: member.slice(0, nl), queue: member.slice(nl + 1), depth: 0, bytes: 0, unacked: 0, consumers: 0 };
        rows.set(member, r);
      }
      return r;
    };
    const byList = new Map<string, string>();
    await Promise.all(
      members.map(async (member) => {
        const r = row(member);
        const list = this.#list(r.vhost, r.queue);
        byList.set(list, member);
        const [depth, bytes] = await Promise.all([
          this.#command(['LLEN', list]),
          // Redis's own estimate of the list's memory: exact sizes would mean reading every entry.
          this.#command(['MEMORY', 'USAGE', list]).catch(() => 0),
        ]);
        r.depth = typeof depth === 'number' ? depth : 0;
        r.bytes = r.depth > 0 && typeof bytes === 'number' ? bytes : 0;
      }),
    );
    await Promise.all(
      inflightNodes.map(async (node) => {
        for (const field of strings(await this.#command(['HKEYS', this.#inflight(node)]))) {
          const member = byList.get(field.slice(0, field.lastIndexOf('\n')));
          if (member !== undefined) row(member).unacked++;
        }
      }),
    );
    await Promise.all(
      consumerNodes.map(async (node) => {
        // This node's own consumers are counted live by the caller; its report may be a second old.
        if (node === this.#o.nodeId) return;
        const flat = strings(await this.#command(['HGETALL', this.#consumerHash(node)]));
        // Expired with its node: forgotten (a node that comes back adds itself again).
        if (flat.length === 0) await this.#command(['SREM', this.#consumerNodes, node]);
        for (let i = 0; i + 1 < flat.length; i += 2) row(flat[i] as string).consumers += Number(flat[i + 1]) || 0;
      }),
    );
    return [...rows.values()];
  }

  async purge(vhost: string, queue: string): Promise<number> {
    const n = await this.#command(['EVAL', PURGE, '1', this.#list(vhost, queue)]);
    return typeof n === 'number' ? n : 0;
  }

  async move(vhost: string, from: string, to: string, rewrite: (message: SharedQueueMessage) => SharedQueueMessage): Promise<number> {
    const source = this.#list(vhost, from);
    const target = this.#list(vhost, to);
    // Bounded by what was there at the start: messages dead-lettered meanwhile stay for the next move.
    const initial = await this.#command(['LLEN', source]);
    let left = typeof initial === 'number' ? initial : 0;
    let moved = 0;
    while (left > 0) {
      const entries = await this.#command(['LRANGE', source, '0', String(Math.min(left, MOVE_BATCH) - 1)], true);
      if (!Array.isArray(entries) || entries.length === 0) break;
      const args: (string | Buffer)[] = ['EVAL', MOVE, '3', source, target, this.#queueSet, this.#notify(vhost, to), `${vhost}\n${to}`];
      for (const entry of entries) {
        if (!Buffer.isBuffer(entry)) continue;
        const m = decodeEntry(entry);
        if (m === undefined) continue;
        const back = rewrite(m);
        args.push(entry, encodeEntry(back.envelope, back.deliveries));
      }
      const n = await this.#command(args);
      moved += typeof n === 'number' ? n : 0;
      left -= entries.length;
    }
    return moved;
  }

  async #recover(): Promise<void> {
    try {
      const nodes = await this.#command(['SMEMBERS', this.#nodes]);
      if (!Array.isArray(nodes)) return;
      for (const node of nodes) {
        if (typeof node !== 'string' || node === this.#o.nodeId) continue;
        const moved = await this.#command(['EVAL', RECOVER, '3', this.#inflight(node), this.#alive(node), this.#nodes, node, this.#prefix]);
        if (typeof moved === 'number' && moved > 0)
          this.#log.warn({ node, moved }, 'returned the unacknowledged messages of a node that stopped answering');
      }
    } catch {
      // Redis unreachable: the next sweep tries again.
    }
  }

  async push(envelope: BusEnvelope): Promise<void> {
    const [vhost, queue] = queueOf(envelope);
    await this.#command([
      'EVAL',
      PUSH,
      '3',
      this.#list(vhost, queue),
      `${this.#prefix}qid:${envelope.id}`,
      this.#queueSet,
      encodeEntry(envelope, 0),
      this.#notify(vhost, queue),
      String(DEDUPE_TTL_MS),
      `${vhost}\n${queue}`,
    ]);
  }

  attach(vhost: string, queue: string, available: () => void): void {
    const channel = this.#notify(vhost, queue);
    if (this.#attached.has(channel)) return;
    this.#attached.set(channel, available);
    void this.#sub?.subscribe(channel, () => this.#attached.get(channel)?.(), true).catch(() => {});
    available();
  }

  detach(vhost: string, queue: string): void {
    const channel = this.#notify(vhost, queue);
    if (!this.#attached.delete(channel)) return;
    void this.#sub?.unsubscribe(channel).catch(() => {});
  }

  async take(vhost: string, queue: string, max: number): Promise<SharedQueueMessage[]> {
    const entries = await this.#command(
      ['EVAL', TAKE, '3', this.#list(vhost, queue), this.#inflight(this.#o.nodeId), this.#nodes, String(max), this.#o.nodeId],
      true,
    );
    if (!Array.isArray(entries)) return [];
    const out: SharedQueueMessage[] = [];
    for (const entry of entries) {
      const m = Buffer.isBuffer(entry) ? decodeEntry(entry) : undefined;
      if (m !== undefined) out.push(m);
    }
    return out;
  }

  async ack(vhost: string, queue: string, id: string): Promise<void> {
    await this.#command(['HDEL', this.#inflight(this.#o.nodeId), `${this.#list(vhost, queue)}\n${id}`]);
  }

  async requeue(vhost: string, queue: string, message: SharedQueueMessage): Promise<void> {
    const list = this.#list(vhost, queue);
    await this.#command([
      'EVAL',
      REQUEUE,
      '2',
      list,
      this.#inflight(this.#o.nodeId),
      `${list}\n${message.envelope.id}`,
      encodeEntry(message.envelope, message.deliveries),
      this.#notify(vhost, queue),
    ]);
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#attached.clear();
    // A clean stop has returned its in-flight messages already; dropping the liveness key lets survivors sweep
    // anything left at once instead of after the timeout.
    await this.#command(['DEL', this.#alive(this.#o.nodeId)]).catch(() => {});
    await this.#command(['DEL', this.#consumerHash(this.#o.nodeId)]).catch(() => {});
    await Promise.allSettled([this.#cmd?.close(), this.#sub?.close()]);
  }
}

/** `/queue/orders` in vhost `/` → ['/', 'orders']. */
export function queueOf(envelope: BusEnvelope): [string, string] {
  const prefix = '/queue/';
  const name = envelope.destination.startsWith(prefix) ? envelope.destination.slice(prefix.length) : envelope.destination;
  return [envelope.vhost, name];
}

/** The strings of a Redis array reply (anything else: none). */
function strings(reply: unknown): string[] {
  return Array.isArray(reply) ? reply.filter((v): v is string => typeof v === 'string') : [];
}
