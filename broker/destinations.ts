import { BROKER_ERRORS, ProtocolError } from './errors.js';

export type DestinationKind = 'topic' | 'queue';

export interface Destination {
  readonly kind: DestinationKind;
  /** The part after the prefix, e.g. `chat.room1` for `/topic/chat.room1`. */
  readonly name: string;
  /** The whole destination as the client wrote it. */
  readonly full: string;
}

export const TOPIC_PREFIX = '/topic/';
export const QUEUE_PREFIX = '/queue/';
/** A Kafka topic or Redis channel addressed directly (routed by the implicit `/kafka/**` and `/redis/**` routes). */
export const KAFKA_PREFIX = '/kafka/';
export const REDIS_PREFIX = '/redis/';

/**
 * Destination grammar: `/topic/<name>`, `/queue/<name>`, `/kafka/<topic>` or `/redis/<channel>`, name non-empty;
 * the last two are topics (every subscriber gets every message). Anything else is refused clearly.
 */
export function parseDestination(full: string): Destination {
  for (const prefix of [TOPIC_PREFIX, KAFKA_PREFIX, REDIS_PREFIX])
    if (full.startsWith(prefix) && full.length > prefix.length) return { kind: 'topic', name: full.slice(prefix.length), full };
  if (full.startsWith(QUEUE_PREFIX) && full.length > QUEUE_PREFIX.length) {
    return { kind: 'queue', name: full.slice(QUEUE_PREFIX.length), full };
  }
  throw new ProtocolError(
    BROKER_ERRORS.ERR_BAD_DESTINATION,
    `invalid destination "${full}"`,
    `Destinations must start with ${TOPIC_PREFIX} (publish-subscribe) or ${QUEUE_PREFIX} (one consumer per message), followed by a name; ` +
      `${KAFKA_PREFIX}<topic> and ${REDIS_PREFIX}<channel> address a Kafka topic or Redis channel directly.`,
  );
}

/** True when a topic name is a wildcard pattern (`*` one dot-separated segment, `#` zero or more). */
export function isPattern(name: string): boolean {
  return name.includes('*') || name.includes('#');
}

/**
 * Topic-exchange matching over dot-separated segments, as RabbitMQ's STOMP `/topic/` destinations do: `*` is exactly
 * one segment, `#` zero or more, and any other segment (the empty one included) only itself.
 *
 * Clients choose both the pattern and the name, so this must not backtrack: a search that retries every split of
 * the segments at each `#` took seconds for `#.#.#.#.#.#.#.#.#.#.z` against 30 segments (issue #8). Instead it
 * carries the set of pattern positions reachable after each segment (the pattern's NFA, run breadth-first), which
 * costs O(pattern length × segments) whatever the input.
 */
export function topicMatches(pattern: readonly string[], segments: readonly string[]): boolean {
  const n = pattern.length;
  // reach[p] === 1: the first p pattern parts can match the segments consumed so far.
  let reach = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  reach[0] = 1;
  skipEmptyHashes(pattern, reach);
  for (const segment of segments) {
    next.fill(0);
    let alive = false;
    for (let p = 0; p < n; p++) {
      if (reach[p] === 0) continue;
      const part = pattern[p];
      // A `#` takes this segment and stays where it is, ready to take more.
      if (part === '#') next[p] = 1;
      else if (part === '*' || part === segment) next[p + 1] = 1;
      else continue;
      alive = true;
    }
    if (!alive) return false;
    skipEmptyHashes(pattern, next);
    [reach, next] = [next, reach];
  }
  return reach[n] === 1;
}

/** `#` also matches no segment at all: wherever one is reachable, the part after it is reachable too. */
function skipEmptyHashes(pattern: readonly string[], reach: Uint8Array): void {
  // Ascending order carries a run such as `#.#.#` through in one pass.
  for (let p = 0; p < pattern.length; p++) if (reach[p] === 1 && pattern[p] === '#') reach[p + 1] = 1;
}
