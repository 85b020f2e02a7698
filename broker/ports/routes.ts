/**
 * The routes table: which engine carries a destination. Patterns are destination globs where `*` is one
 * segment (no `.` or `/`) and `**` is anything, e.g. `/topic/chat.**`. The first matching route wins.
 */
export const ROUTE_KINDS = ['local', 'redis', 'kafka'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];

export interface Route {
  readonly pattern: string;
  readonly kind: RouteKind;
  /** Kafka topic for `kafka` routes; many destinations share one, keyed by destination. */
  readonly kafkaTopic?: string | undefined;
}

export interface CompiledRoute extends Route {
  readonly regex: RegExp;
}

/** Kafka's own rule for topic names (Topic.java): 1–249 of letters, digits, `.`, `_`, `-`; not `.` or `..`. */
const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

export function validKafkaTopic(name: string): boolean {
  return KAFKA_TOPIC.test(name) && name !== '.' && name !== '..';
}

export function compilePattern(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        source += '.*';
        i++;
      } else {
        source += '[^./]*';
      }
    } else {
      source += ch.replace(/[.+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

/** The default table: everything local; with Redis, topics and queues through Redis; with Kafka, through Kafka. */
export function defaultRoutes(engines: { redis: boolean; kafka: boolean }): Route[] {
  if (engines.kafka) {
    return [
      { pattern: '/topic/**', kind: 'kafka', kafkaTopic: 'stompede.topics' },
      { pattern: '/queue/**', kind: 'kafka', kafkaTopic: 'stompede.queues' },
    ];
  }
  if (engines.redis)
    return [
      { pattern: '/topic/**', kind: 'redis' },
      { pattern: '/queue/**', kind: 'redis' },
    ];
  return [{ pattern: '/**', kind: 'local' }];
}

/**
 * The routes a node uses: the configured ones, else the defaults for the engines there are. `stompede
 * --print-config` shows these, and the composition root builds its RouteTable from them.
 */
export function effectiveRoutes(configured: readonly Route[], engines: { redis: boolean; kafka: boolean }): Route[] {
  return configured.length > 0 ? [...configured] : defaultRoutes(engines);
}

/**
 * Parses the compact form used by flags and environment variables:
 * `/topic/chat.**=kafka:chat-topic,/topic/**=redis,/queue/**=local`.
 */
export function parseRoutes(text: string): Route[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((entry) => {
      const eq = entry.lastIndexOf('=');
      const pattern = eq === -1 ? entry : entry.slice(0, eq);
      const target = eq === -1 ? '' : entry.slice(eq + 1);
      const [kind, kafkaTopic] = target.split(':');
      return { pattern, kind: (kind ?? '') as RouteKind, kafkaTopic };
    });
}

/** Checks a table against the engines configured; returns every problem found. */
export function validateRoutes(routes: readonly Route[], engines: { redis: boolean; kafka: boolean }): string[] {
  const problems: string[] = [];
  for (const r of routes) {
    const where = `route "${r.pattern}"`;
    if (!r.pattern.startsWith('/')) problems.push(`${where}: pattern must start with /`);
    if (!(ROUTE_KINDS as readonly string[]).includes(r.kind))
      problems.push(`${where}: route must be one of ${ROUTE_KINDS.join(', ')}, not "${r.kind}"`);
    if (r.kind === 'redis' && !engines.redis) problems.push(`${where}: routes to redis, but no --redis URL is configured`);
    if (r.kind === 'kafka') {
      if (!engines.kafka) problems.push(`${where}: routes to kafka, but no --kafka brokers are configured`);
      if (r.kafkaTopic === undefined || r.kafkaTopic === '') problems.push(`${where}: a kafka route needs a topic (pattern=kafka:<topic>)`);
      else if (!validKafkaTopic(r.kafkaTopic))
        problems.push(`${where}: "${r.kafkaTopic}" is not a valid Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)`);
    }
  }
  return problems;
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  #cache = new Map<string, CompiledRoute>();
  static readonly LOCAL: CompiledRoute = { pattern: '/**', kind: 'local', regex: /^/ };

  constructor(routes: readonly Route[]) {
    this.routes = routes.map((r) => ({ ...r, regex: compilePattern(r.pattern) }));
  }

  /** The route of a destination; destinations matching no route stay on this node. */
  route(destination: string): CompiledRoute {
    let r = this.#cache.get(destination);
    if (r === undefined) {
      r = this.routes.find((x) => x.regex.test(destination)) ?? RouteTable.LOCAL;
      // Bounded like every per-destination cache: a client inventing names cannot grow it without limit.
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(destination, r);
    }
    return r;
  }
}
