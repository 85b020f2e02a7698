/** The STOMP versions this codebase speaks. Escaping rules differ between them, so the codec needs to know. */
export const VERSIONS = ['1.0', '1.1', '1.2'] as const;
export type StompVersion = (typeof VERSIONS)[number];

/**
 * Header names in arrival order, first value winning (STOMP 1.2 §Repeated Header Entries).
 * A Map keeps insertion order for every key, where a plain object would move integer-like names to the front.
 */
export type Headers = Map<string, string>;

export interface Frame {
  readonly command: string;
  readonly headers: Headers;
  /** A view into the bytes that arrived; empty when the frame had no body. */
  readonly body: Buffer;
}

export const EMPTY_BODY: Buffer = Buffer.alloc(0);

export function frame(command: string, headers: Iterable<readonly [string, string]> = [], body: Buffer = EMPTY_BODY): Frame {
  const map: Headers = new Map();
  for (const [name, value] of headers) if (!map.has(name)) map.set(name, value);
  return { command, headers: map, body };
}
