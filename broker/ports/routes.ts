/**
 * The routes table: which engine carries a destination, and under which Kafka topic or Redis channel.
 *
 * Grammar of one route, the same in flags, variables and config files (a file may also write the mapping form):
 *
 *   route    = pattern "=" kind [ ":" target ] *( ";" option "=" value )
 *   pattern  = a destination glob starting with "/": `*` is one segment (no `.` or `/`), `**` is anything
 *   kind     = "local" | "redis" | "kafka"
 *   target   = a topic or channel name; `{N}` (1-based) is the text the N-th wildcard of the pattern matched
 *   option   = "format" (stompede | native | raw | json) | "destination" (mapping | key)
 *
 * e.g. `/topic/orders.*=kafka:orders.{1}`, `/topic/news.*=redis:news.{1};format=raw`, `/queue/**=local`.
 * The first matching route wins. `/kafka/<topic>` and `/redis/<channel>` address a topic or channel directly:
 * with the engine configured they are routed by implicit routes placed ahead of the configured ones.
 */
export const ROUTE_KINDS = ['local', 'redis', 'kafka'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];

/** How a message sits in a record or a channel message. */
export const ROUTE_FORMATS = ['stompede', 'native', 'raw', 'json'] as const;
export type RouteFormat = (typeof ROUTE_FORMATS)[number];

/** Where an inward record's destination comes from: the topic mapping (default) or the record key (opt-in). */
export const DESTINATION_SOURCES = ['mapping', 'key'] as const;
export type DestinationSource = (typeof DESTINATION_SOURCES)[number];

export interface RouteOptions {
  readonly format?: RouteFormat | undefined;
  readonly destination?: DestinationSource | undefined;
}

export interface Route {
  readonly pattern: string;
  readonly kind: RouteKind;
  /** Topic (kafka) or channel (redis) template; `{N}` stands for what the N-th wildcard matched. */
  readonly target?: string | undefined;
  readonly options?: RouteOptions | undefined;
}

export interface CompiledRoute extends Route {
  /** Matches a destination; one capture group per wildcard. */
  readonly regex: RegExp;
}

/** The formats each kind accepts; the first is the default for routes a user writes. */
const FORMATS_OF: Readonly<Record<RouteKind, readonly RouteFormat[]>> = {
  local: [],
  redis: ['stompede', 'raw', 'json'],
  kafka: ['native', 'stompede'],
};
export const OPTION_NAMES = ['format', 'destination'] as const;

/** The prefixes that address a Kafka topic or a Redis channel directly (broker/destinations.ts). */
const KAFKA_PREFIX = '/kafka/';
export const REDIS_PREFIX = '/redis/';
const DIRECT: Readonly<Record<'kafka' | 'redis', Route>> = {
  kafka: { pattern: `${KAFKA_PREFIX}**`, kind: 'kafka', target: '{1}', options: { format: 'native' } },
  redis: { pattern: `${REDIS_PREFIX}**`, kind: 'redis', target: '{1}', options: { format: 'raw' } },
};

/** Kafka's own rule for topic names (Topic.java): 1–249 of letters, digits, `.`, `_`, `-`; not `.` or `..`. */
const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
export const KAFKA_TOPIC_RULE = '1-249 of A-Z a-z 0-9 . _ -, not "." or ".."';

export function validKafkaTopic(name: string): boolean {
  return KAFKA_TOPIC.test(name) && name !== '.' && name !== '..';
}

/** The wildcards of a pattern in order, as regex sources: `*` one segment, `**` anything. */
function patternParts(pattern: string): { source: string; wildcards: ('*' | '**')[] } {
  let source = '';
  const wildcards: ('*' | '**')[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        source += '(.*)';
        wildcards.push('**');
        i++;
      } else {
        source += '([^./]*)';
        wildcards.push('*');
      }
    } else {
      source += escapeRegex(ch);
    }
  }
  return { source, wildcards };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export function compilePattern(pattern: string): RegExp {
  return new RegExp(`^${patternParts(pattern).source}$`);
}

/** A target template split into literal text and `{N}` references (0-based wildcard indexes). */
type TemplatePart = { readonly text: string } | { readonly ref: number };

function templateParts(target: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  const re = /\{(\d+)\}/g;
  let last = 0;
  for (let m = re.exec(target); m !== null; m = re.exec(target)) {
    if (m.index > last) parts.push({ text: target.slice(last, m.index) });
    parts.push({ ref: Number(m[1]) - 1 });
    last = m.index + m[0].length;
  }
  if (last < target.length) parts.push({ text: target.slice(last) });
  return parts;
}

/** The format a route uses: its own, else the first its kind accepts (`native` for kafka, `stompede` for redis). */
export function routeFormat(route: Route): RouteFormat | undefined {
  return route.options?.format ?? FORMATS_OF[route.kind][0];
}

/**
 * The topic or channel a destination goes to: the route's target with each `{N}` replaced by what the N-th
 * wildcard matched. Empty when the route has no target or the destination does not match the route.
 */
export function targetFor(route: Route, destination: string): string {
  if (route.target === undefined) return '';
  const match = ('regex' in route ? (route as CompiledRoute).regex : compilePattern(route.pattern)).exec(destination);
  if (match === null) return '';
  return templateParts(route.target)
    .map((p) => ('text' in p ? p.text : (match[p.ref + 1] ?? '')))
    .join('');
}

/**
 * The inverse of targetFor: the one destination whose records go to `target` by this route, or undefined when
 * the target does not fit the template, or the template does not name every wildcard of the pattern (many
 * destinations share the target, e.g. `/topic/chat.**=kafka:chat`).
 */
export function destinationFor(route: Route, target: string): string | undefined {
  if (route.target === undefined) return undefined;
  const { wildcards } = patternParts(route.pattern);
  const parts = templateParts(route.target);
  const refs = parts.filter((p): p is { ref: number } => 'ref' in p).map((p) => p.ref);
  for (let i = 0; i < wildcards.length; i++) if (!refs.includes(i)) return undefined;
  const regex = new RegExp(
    `^${parts.map((p) => ('text' in p ? escapeRegex(p.text) : wildcards[p.ref] === '*' ? '([^./]*)' : '(.*)')).join('')}$`,
  );
  const match = regex.exec(target);
  if (match === null) return undefined;
  const values: (string | undefined)[] = [];
  let group = 1;
  for (const p of parts) {
    if (!('ref' in p)) continue;
    const value = match[group++] as string;
    // The same wildcard named twice must have matched the same text both times.
    if (values[p.ref] !== undefined && values[p.ref] !== value) return undefined;
    values[p.ref] = value;
  }
  let i = 0;
  const destination = route.pattern.replace(/\*\*|\*/g, () => values[i++] ?? '');
  // The destination must come back through the same route to the same target (a `*` value holding `.` would not).
  const back = compilePattern(route.pattern).test(destination) ? targetFor(route, destination) : undefined;
  return back === target ? destination : undefined;
}

/**
 * The regex of every topic or channel a route can map to (literal parts as they are, each `{N}` as what its
 * wildcard can match), e.g. `^orders\.[^./]*$` for `kafka:orders.{1}` over `/topic/orders.*`.
 */
export function targetRegex(route: Route): RegExp | undefined {
  if (route.target === undefined) return undefined;
  const { wildcards } = patternParts(route.pattern);
  const source = templateParts(route.target)
    .map((p) => ('text' in p ? escapeRegex(p.text) : wildcards[p.ref] === '*' ? '[^./]*' : '.+'))
    .join('');
  return new RegExp(`^${source}$`);
}

/** True when a route's target is a template (`{N}` in it): its topics are known only from destinations. */
export function isTemplate(route: Route): boolean {
  return route.target !== undefined && /\{\d+\}/.test(route.target);
}

/** The route in the text grammar, every option that applies written out: what `--print-config` shows. */
export function routeText(route: Route): string {
  const format = routeFormat(route);
  const target = route.target !== undefined && route.target !== '' ? `:${route.target}` : '';
  const options: string[] = [];
  if (format !== undefined) options.push(`format=${format}`);
  if (route.kind === 'kafka') options.push(`destination=${route.options?.destination ?? 'mapping'}`);
  return `${route.pattern}=${route.kind}${target}${options.map((o) => `;${o}`).join('')}`;
}

/** The default table: everything local; with Redis, topics and queues through Redis; with Kafka, through Kafka. */
export function defaultRoutes(engines: { redis: boolean; kafka: boolean }): Route[] {
  if (engines.kafka) {
    const options = { format: 'stompede', destination: 'key' } as const;
    return [
      { pattern: '/topic/**', kind: 'kafka', target: 'stompede.topics', options },
      { pattern: '/queue/**', kind: 'kafka', target: 'stompede.queues', options },
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
 * The routes a node uses: the direct-addressing routes (`/kafka/**`, `/redis/**`) of the engines configured, then
 * the configured ones, else the defaults for the engines there are. `stompede --print-config` shows these, and the
 * composition root builds its RouteTable from them.
 */
export function effectiveRoutes(configured: readonly Route[], engines: { redis: boolean; kafka: boolean }): Route[] {
  const direct: Route[] = [];
  if (engines.kafka) direct.push(DIRECT.kafka);
  if (engines.redis) direct.push(DIRECT.redis);
  return [...direct, ...(configured.length > 0 ? configured : defaultRoutes(engines))];
}

/**
 * One route in the text grammar, as a mapping still to validate (`kind`, options and values are checked by
 * validateRoutes and the config schema, so every problem is reported together rather than thrown here).
 */
export function routeFields(entry: string): Record<string, string> {
  const [head = '', ...options] = entry.split(';');
  const eq = head.lastIndexOf('=');
  const pattern = (eq === -1 ? head : head.slice(0, eq)).trim();
  const spec = (eq === -1 ? '' : head.slice(eq + 1)).trim();
  const colon = spec.indexOf(':');
  const fields: Record<string, string> = { pattern, kind: colon === -1 ? spec : spec.slice(0, colon) };
  if (colon !== -1) fields.target = spec.slice(colon + 1);
  for (const option of options) {
    const at = option.indexOf('=');
    const name = (at === -1 ? option : option.slice(0, at)).trim();
    if (name === '') continue;
    fields[name] = at === -1 ? '' : option.slice(at + 1).trim();
  }
  return fields;
}

/** Parses the compact form of flags and variables: routes in the text grammar, comma-separated. */
export function parseRoutes(text: string): Route[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((entry) => {
      const { pattern = '', kind = '', target, format, destination } = routeFields(entry);
      const options = { ...(format !== undefined ? { format } : {}), ...(destination !== undefined ? { destination } : {}) };
      return {
        pattern,
        kind: kind as RouteKind,
        ...(target !== undefined ? { target } : {}),
        ...(Object.keys(options).length > 0 ? { options: options as RouteOptions } : {}),
      };
    });
}

/** Checks a table against the engines configured; returns every problem found. */
export function validateRoutes(routes: readonly Route[], engines: { redis: boolean; kafka: boolean }): string[] {
  const problems: string[] = [];
  for (const r of routes) {
    const where = `route "${r.pattern}"`;
    if (!r.pattern.startsWith('/')) problems.push(`${where}: pattern must start with /`);
    if (!(ROUTE_KINDS as readonly string[]).includes(r.kind)) {
      problems.push(`${where}: route must be one of ${ROUTE_KINDS.join(', ')}, not "${r.kind}"`);
      continue;
    }
    if (r.kind === 'redis' && !engines.redis) problems.push(`${where}: routes to redis, but no --redis URL is configured`);
    if (r.kind === 'kafka' && !engines.kafka) problems.push(`${where}: routes to kafka, but no --kafka brokers are configured`);
    const format = r.options?.format;
    const formats = FORMATS_OF[r.kind];
    if (format !== undefined && !formats.includes(format))
      problems.push(
        formats.length === 0
          ? `${where}: a ${r.kind} route takes no format option`
          : `${where}: format=${format} does not apply to ${r.kind} routes (use ${formats.join(' or ')})`,
      );
    if (r.options?.destination !== undefined && r.kind !== 'kafka') problems.push(`${where}: the destination option is for kafka routes`);
    if (r.kind === 'local') {
      if (r.target !== undefined) problems.push(`${where}: a local route has no target ("local:${r.target}")`);
      continue;
    }
    if (r.target === undefined || r.target === '') {
      if (r.kind === 'kafka') problems.push(`${where}: a kafka route needs a topic (pattern=kafka:<topic>)`);
      else if (format !== undefined && format !== 'stompede') problems.push(`${where}: format=${format} needs a channel (redis:<channel>)`);
      continue;
    }
    problems.push(...templateProblems(r, where));
  }
  return problems;
}

/** `{N}` references within the pattern's wildcards, and the literal text of a Kafka topic within Kafka's rule. */
function templateProblems(r: Route, where: string): string[] {
  const problems: string[] = [];
  const target = r.target as string;
  const { wildcards } = patternParts(r.pattern);
  const parts = templateParts(target);
  for (const p of parts)
    if ('ref' in p && (p.ref < 0 || p.ref >= wildcards.length))
      problems.push(
        `${where}: {${p.ref + 1}} in "${target}" names wildcard ${p.ref + 1}, ` +
          `but the pattern has ${wildcards.length === 0 ? 'none' : wildcards.length}`,
      );
  if (/[{}]/.test(parts.map((p) => ('text' in p ? p.text : '')).join('')))
    problems.push(`${where}: "${target}": braces are only for {N}, the N-th wildcard of the pattern (1-based)`);
  if (r.kind === 'redis') {
    // A channel is read back into one destination (destinationFor): a wildcard left out of the template would
    // merge many destinations into one channel that maps back to none of them.
    const named = new Set(parts.flatMap((p) => ('ref' in p ? [p.ref] : [])));
    const missing = wildcards.map((_, i) => i).filter((i) => !named.has(i));
    if (missing.length > 0)
      problems.push(
        `${where}: "${target}" must name every wildcard of the pattern (missing ${missing.map((i) => `{${i + 1}}`).join(', ')}), ` +
          'so that each channel maps back to one destination',
      );
  }
  if (r.kind === 'kafka') {
    if (target.includes(':'))
      problems.push(`${where}: "${target}" is not a valid Kafka topic name (":" is not allowed; one target per route)`);
    else {
      // A template's literal text must fit Kafka's rule; a filled-in name is checked again when a destination resolves.
      const sample = parts.map((p) => ('text' in p ? p.text : 'x')).join('');
      if (!validKafkaTopic(sample)) problems.push(`${where}: "${target}" is not a valid Kafka topic name (${KAFKA_TOPIC_RULE})`);
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

  /**
   * Why a destination cannot be used on this node, or undefined: a `/kafka/` or `/redis/` destination without its
   * engine, a template route whose filled-in topic breaks Kafka's rule, or a native Kafka route used from a
   * virtual host other than `/` (its records come back in `/`: the vhost is not the record's to choose).
   */
  problem(destination: string, vhost?: string): string | undefined {
    const route = this.route(destination);
    for (const [prefix, kind] of [
      [KAFKA_PREFIX, 'kafka'],
      [REDIS_PREFIX, 'redis'],
    ] as const)
      if (destination.startsWith(prefix) && route.kind !== kind)
        return `${destination} addresses ${kind} directly, but this node has no ${kind} engine configured (--${kind})`;
    if (route.kind === 'kafka') {
      if (vhost !== undefined && vhost !== '/' && routeFormat(route) === 'native')
        return `${destination} is on a native Kafka route (${route.pattern}), which serves the virtual host / only, not "${vhost}"`;
      const topic = targetFor(route, destination);
      if (!validKafkaTopic(topic))
        return `${destination} maps to Kafka topic "${topic}" by route ${route.pattern}, not a valid topic name (${KAFKA_TOPIC_RULE})`;
    }
    return undefined;
  }
}
