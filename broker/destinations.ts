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

/** Destination grammar: `/topic/<name>` or `/queue/<name>`, name non-empty. Anything else is refused clearly. */
export function parseDestination(full: string): Destination {
  if (full.startsWith(TOPIC_PREFIX) && full.length > TOPIC_PREFIX.length) {
    return { kind: 'topic', name: full.slice(TOPIC_PREFIX.length), full };
  }
  if (full.startsWith(QUEUE_PREFIX) && full.length > QUEUE_PREFIX.length) {
    return { kind: 'queue', name: full.slice(QUEUE_PREFIX.length), full };
  }
  throw new ProtocolError(
    BROKER_ERRORS.ERR_BAD_DESTINATION,
    `invalid destination "${full}"`,
    `Destinations must start with ${TOPIC_PREFIX} (publish-subscribe) or ${QUEUE_PREFIX} (one consumer per message), followed by a name.`,
  );
}

/** True when a topic name is a wildcard pattern (`*` one dot-separated segment, `#` zero or more). */
export function isPattern(name: string): boolean {
  return name.includes('*') || name.includes('#');
}

/** Topic-exchange matching over dot-separated segments, as RabbitMQ's STOMP `/topic/` destinations do. */
export function topicMatches(pattern: readonly string[], segments: readonly string[], p = 0, s = 0): boolean {
  for (; p < pattern.length; p++, s++) {
    const part = pattern[p];
    if (part === '#') {
      if (p === pattern.length - 1) return true;
      for (let skip = s; skip <= segments.length; skip++) if (topicMatches(pattern, segments, p + 1, skip)) return true;
      return false;
    }
    if (s >= segments.length) return false;
    if (part !== '*' && part !== segments[s]) return false;
  }
  return s === segments.length;
}
