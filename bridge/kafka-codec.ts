import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import type { PublishInput } from '../broker/ports/bus.js';
import type { HistoryRecord } from '../broker/ports/history.js';

/**
 * How a BusEnvelope sits in a Kafka record. The record key is the destination (so the default partitioner keeps
 * one destination on one partition, hence in order); the value is the message body, byte for byte; the rest
 * travels in record headers. The user headers go in one JSON header as `[name, value]` pairs, because Kafka
 * record headers in kafkajs are an object: it would reorder integer-like names and merge repeated ones.
 *
 *   key     = destination
 *   value   = body
 *   headers = stompede-origin, stompede-vhost, stompede-destination, stompede-time (ms, decimal),
 *             stompede-headers (JSON [[name, value], ...]; absent when there are none)
 */
export const RECORD_HEADERS = Object.freeze({
  origin: 'stompede-origin',
  vhost: 'stompede-vhost',
  destination: 'stompede-destination',
  time: 'stompede-time',
  headers: 'stompede-headers',
} as const);

/** Fixed cost of a record beyond its body and user headers, for batch sizing (names, values, framing). */
const RECORD_OVERHEAD_BYTES = 160;

export interface EncodedRecord {
  readonly message: Message;
  /** Approximate size on the wire, for batch limits. */
  readonly bytes: number;
}

export function encodeRecord(envelope: PublishInput): EncodedRecord {
  const headers: IHeaders = {
    [RECORD_HEADERS.origin]: envelope.origin,
    [RECORD_HEADERS.vhost]: envelope.vhost,
    [RECORD_HEADERS.destination]: envelope.destination,
    [RECORD_HEADERS.time]: String(envelope.time),
  };
  let bytes =
    RECORD_OVERHEAD_BYTES + envelope.body.length + 2 * envelope.destination.length + envelope.origin.length + envelope.vhost.length;
  if (envelope.headers.length > 0) {
    const json = JSON.stringify(envelope.headers);
    headers[RECORD_HEADERS.headers] = json;
    bytes += json.length;
  }
  return { message: { key: envelope.destination, value: envelope.body, headers, timestamp: String(envelope.time) }, bytes };
}

/** The message id of a record: its coordinates, the same on every node and on every replay. No `:`. */
export function recordId(topic: string, partition: number, offset: string): string {
  return `${topic}-${partition}-${offset}`;
}

const RECORD_ID = /^.+-\d{1,10}-(\d{1,16})$/;

/**
 * The offset a `recordId` names (its position in history), or undefined for an id of another shape. An id of
 * another route may match by chance: callers use it as a hint and check the record's id.
 */
export function recordPosition(id: string): number | undefined {
  const match = RECORD_ID.exec(id);
  return match === null ? undefined : Number(match[1]);
}

/**
 * The envelope of a consumed record (with its offset as position, which is what history stores), or undefined when the record names no destination (not written by
 * Stompede, and nothing to deliver it to). Other missing parts get defaults: vhost `/`, the record timestamp,
 * no user headers.
 */
export function decodeRecord(topic: string, partition: number, record: KafkaMessage): HistoryRecord | undefined {
  const h = record.headers ?? {};
  const destination = headerText(h[RECORD_HEADERS.destination]) ?? (record.key === null ? undefined : record.key.toString('utf8'));
  if (destination === undefined || destination === '') return undefined;
  const time = Number(headerText(h[RECORD_HEADERS.time]) ?? record.timestamp);
  return {
    id: recordId(topic, partition, record.offset),
    origin: headerText(h[RECORD_HEADERS.origin]) ?? '',
    vhost: headerText(h[RECORD_HEADERS.vhost]) ?? '/',
    destination,
    headers: userHeaders(headerText(h[RECORD_HEADERS.headers])),
    body: record.value ?? Buffer.alloc(0),
    time: Number.isFinite(time) ? time : Number(record.timestamp),
    position: Number(record.offset),
  };
}

/** First value of a record header as text (kafkajs hands a repeated header as an array). */
function headerText(value: Buffer | string | (Buffer | string)[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  return typeof first === 'string' ? first : first.toString('utf8');
}

/** Parses the JSON pairs; anything malformed (a foreign producer) yields no headers rather than a dropped message. */
function userHeaders(json: string | undefined): ReadonlyArray<readonly [string, string]> {
  if (json === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const pairs: (readonly [string, string])[] = [];
  for (const item of parsed as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2) return [];
    const [name, value] = item as unknown[];
    if (typeof name !== 'string' || typeof value !== 'string') return [];
    pairs.push([name, value]);
  }
  return pairs;
}
