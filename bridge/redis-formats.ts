import { isUtf8 } from 'node:buffer';
import type { BusEnvelope } from '../broker/ports/bus.js';

/**
 * What a message looks like on a native Redis channel (a route with a channel template and `format=raw|json`), so
 * that programs that know nothing of Stompede can publish and subscribe there:
 *
 * - `raw`: the payload is the body bytes and nothing else (what `redis-cli PUBLISH chat.lobby hello` sends). No
 *   headers travel either way; inward messages have no content-type and a message-id of the receiving node's own.
 * - `json`: `{"headers":{"name":"value",...},"body":"text"}`, with `"base64":true` when the body is not UTF-8 (the
 *   body is then its base64). A header repeated in the SEND becomes an array of its values, in order. Outward, the
 *   headers hold the SEND's user headers and its `message-id`, the same id every node gives the message; inward, a
 *   `message-id` that is a plain name (letters, digits, `.`, `_`, `-`; at most 128) becomes the MESSAGE's id on every
 *   node (other ones are ignored, and the receiving node names the message itself).
 */
export type NativeFormat = 'raw' | 'json';

/** A message read from a native channel, before the bus gives it a destination. */
export interface NativeMessage {
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** The id the payload carried (json `message-id`), when it carried a usable one. */
  readonly id?: string | undefined;
}

/** Why an inward message on a Redis channel was not delivered: the fixed label set of the dropped-records metric. */
export const REDIS_DROP_REASONS = ['json-invalid', 'envelope-invalid', 'unmapped'] as const;
export type RedisDropReason = (typeof REDIS_DROP_REASONS)[number];

/** Headers a STOMP MESSAGE sets itself: a payload cannot supply them (a `message-id` may name the message, above). */
const RESERVED = new Set(['destination', 'message-id', 'subscription', 'content-length', 'ack', 'receipt', 'transaction']);
const MESSAGE_ID = /^[A-Za-z0-9._-]{1,128}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The payload that carries a bus envelope on a native channel. */
export function encodeNative(format: NativeFormat, envelope: BusEnvelope): Buffer {
  switch (format) {
    case 'raw':
      return envelope.body;
    case 'json':
      return Buffer.from(JSON.stringify(jsonOf(envelope)));
    default: {
      const never: never = format;
      throw new TypeError(`unknown Redis format ${String(never)}`);
    }
  }
}

interface JsonMessage {
  headers: Record<string, string | string[]>;
  body: string;
  base64?: true;
}

function jsonOf(envelope: BusEnvelope): JsonMessage {
  // No prototype: a header named `__proto__` is a header like any other.
  const headers = Object.create(null) as Record<string, string | string[]>;
  headers['message-id'] = envelope.id;
  for (const [name, value] of envelope.headers) {
    if (RESERVED.has(name)) continue;
    const seen = headers[name];
    if (seen === undefined) headers[name] = value;
    else if (typeof seen === 'string') headers[name] = [seen, value];
    else seen.push(value);
  }
  const text = isUtf8(envelope.body);
  const out: JsonMessage = { headers, body: envelope.body.toString(text ? 'utf8' : 'base64') };
  if (!text) out.base64 = true;
  return out;
}

/** The message a payload on a native channel carries, or why it cannot be delivered. */
export function decodeNative(format: NativeFormat, payload: Buffer): NativeMessage | RedisDropReason {
  switch (format) {
    case 'raw':
      return { headers: [], body: payload };
    case 'json':
      return fromJson(payload);
    default: {
      const never: never = format;
      throw new TypeError(`unknown Redis format ${String(never)}`);
    }
  }
}

function fromJson(payload: Buffer): NativeMessage | RedisDropReason {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'json-invalid';
  }
  if (!isObject(parsed)) return 'json-invalid';
  const { headers: given = {}, body = '', base64 = false } = parsed;
  if (!isObject(given) || typeof body !== 'string' || typeof base64 !== 'boolean') return 'json-invalid';
  if (base64 && !BASE64.test(body)) return 'json-invalid';
  const headers: [string, string][] = [];
  let id: string | undefined;
  for (const [name, value] of Object.entries(given)) {
    const values = Array.isArray(value) ? (value as unknown[]) : [value];
    for (const v of values) {
      // Numbers and booleans are what JSON producers write for flags and counts; STOMP carries them as text.
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return 'json-invalid';
      const text = String(v);
      // A NUL ends a STOMP frame: no header may hold one.
      if (name === '' || name.includes('\0') || text.includes('\0')) return 'json-invalid';
      if (name === 'message-id') {
        if (id === undefined && MESSAGE_ID.test(text)) id = text;
      } else if (!RESERVED.has(name)) {
        headers.push([name, text]);
      }
    }
  }
  return { headers, body: Buffer.from(body, base64 ? 'base64' : 'utf8'), id };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
