import { destinationFor, REDIS_PREFIX, routeFormat, targetFor, type CompiledRoute, type RouteTable } from '../broker/ports/routes.js';
import { escapeGlob, type InwardTarget, type NativeChannel, type RedisChannels, type RedisFormat } from './redis-bus.js';

/**
 * The virtual host of named channels. A channel has no vhost of its own, so messages arriving on one go to this
 * vhost, whoever published them; SENDs and SUBSCRIBEs of other vhosts on the same destinations keep the cluster's
 * private channels, so tenants never meet on a channel they did not name.
 */
export const NAMED_CHANNEL_VHOST = '/';

/** Per-destination and per-channel answers are remembered, bounded like every per-name cache. */
const CACHE_LIMIT = 10_000;

/** Stands for a STOMP wildcard segment while a subscription's channel glob is built (never in a destination). */
const WILDCARD = '\u0001';

/**
 * The named channels of a route table: every redis route with a channel (`redis:<channel template>`) publishes
 * destinations of the vhost `/` to the channel its template names, in its format (`stompede` by default; `raw`,
 * `json`), and maps that channel back. Undefined when no route names a channel (every destination is private).
 */
export function routeChannels(table: RouteTable): RedisChannels | undefined {
  const named = table.routes.filter(isNamed);
  if (named.length === 0) return undefined;
  const outward = new Map<string, NativeChannel | null>();
  const inward = new Map<string, readonly InwardTarget[]>();
  const remember = <V>(cache: Map<string, V>, key: string, value: V): V => {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, value);
    return value;
  };
  return {
    outward(vhost, destination) {
      if (vhost !== NAMED_CHANNEL_VHOST) return undefined;
      const known = outward.get(destination);
      if (known !== undefined) return known ?? undefined;
      const route = table.route(destination);
      const channel = isNamed(route) ? targetFor(route, destination) : '';
      return remember(outward, destination, channel === '' ? null : { channel, format: formatOf(route) }) ?? undefined;
    },
    pattern(vhost, destination) {
      if (vhost !== NAMED_CHANNEL_VHOST) return undefined;
      const route = table.route(destination);
      if (!isNamed(route)) return undefined;
      // Each wildcard segment (`*` one, `#` any number) becomes a Redis `*`: a superset, filtered by the broker.
      const start = destination.indexOf('/', 1) + 1;
      const marked =
        destination.slice(0, start) +
        destination
          .slice(start)
          .split('.')
          .map((segment) => (segment === '*' || segment === '#' ? WILDCARD : segment))
          .join('.');
      const channel = targetFor(route, marked);
      if (channel === '') return undefined;
      return escapeGlob(channel).replaceAll(WILDCARD, '*');
    },
    inward(channel) {
      const known = inward.get(channel);
      if (known !== undefined) return known;
      const targets: InwardTarget[] = [];
      // The routes written in the table first, the direct `/redis/<channel>` prefix last: the first destination gets
      // the message's own id, the others that id with `-d<n>` appended (one id per destination, see RedisBus).
      for (const route of [...named.filter((r) => !direct(r)), ...named.filter(direct)]) {
        const destination = destinationFor(route, channel);
        // The destination must route back through this route: an earlier route would send it elsewhere.
        if (destination !== undefined && table.route(destination) === route)
          targets.push({ vhost: NAMED_CHANNEL_VHOST, destination, format: formatOf(route) });
      }
      return remember(inward, channel, targets);
    },
  };
}

function direct(route: CompiledRoute): boolean {
  return route.pattern.startsWith(REDIS_PREFIX);
}

function isNamed(route: CompiledRoute): boolean {
  return route.kind === 'redis' && route.target !== undefined && route.target !== '';
}

function formatOf(route: CompiledRoute): RedisFormat {
  const format = routeFormat(route);
  return format === 'raw' || format === 'json' ? format : 'stompede';
}
