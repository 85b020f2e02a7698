import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { isUtf8 } from 'node:buffer';
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

/**
 * The native format: records any Kafka client writes and reads.
 *
 *   key     = the SEND's `kafka-key` header, else the destination
 *   value   = body, byte for byte
 *   headers = each STOMP user header as a record header of the same name (repeated names as a list, in order;
 *             `content-type` included), plus stompede-origin, stompede-vhost, stompede-destination, stompede-time
 */
export const KAFKA_KEY_HEADER = 'kafka-key';

export function encodeNativeRecord(envelope: PublishInput): EncodedRecord {
  const headers: Record<string, string | string[]> = {};
  let key: string = envelope.destination;
  let bytes = RECORD_OVERHEAD_BYTES + envelope.body.length + 2 * envelope.destination.length + envelope.origin.length;
  for (const [name, value] of envelope.headers) {
    bytes += name.length + value.length + 8;
    if (name === KAFKA_KEY_HEADER) {
      key = value;
      continue;
    }
    // Stompede's own names are its metadata; a client cannot write them.
    if (name.startsWith('stompede-')) continue;
    const had = headers[name];
    headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  headers[RECORD_HEADERS.origin] = envelope.origin;
  headers[RECORD_HEADERS.vhost] = envelope.vhost;
  headers[RECORD_HEADERS.destination] = envelope.destination;
  headers[RECORD_HEADERS.time] = String(envelope.time);
  return { message: { key, value: envelope.body, headers, timestamp: String(envelope.time) }, bytes };
}

/** STOMP headers a record header may not become: the broker writes these itself. */
const RESERVED = new Set([
  'destination',
  'message-id',
  'subscription',
  'ack',
  'content-length',
  'receipt',
  'x-stream-offset',
  'transaction',
]);

/** Why an inward record, or a part of it, was not delivered: the `reason` label of the dropped-records counter. */
export type DropReason = 'no-destination' | 'foreign-destination' | 'header-not-utf8' | 'key-not-utf8' | 'bad-record';

/**
 * A record in the native format as the message its topic maps to: `destination` and `vhost` come from the route,
 * never from the record. Record headers become STOMP headers in order (a list value as repeated headers); values
 * that are not UTF-8, and names Stompede keeps for itself, are left out (the first counted through `dropped`).
 */
export function decodeNativeRecord(
  topic: string,
  partition: number,
  record: KafkaMessage,
  to: { readonly destination: string; readonly vhost: string },
  dropped: (reason: DropReason) => void,
): HistoryRecord {
  const out: [string, string][] = [];
  if (record.key !== null) {
    if (isUtf8(record.key)) out.push([KAFKA_KEY_HEADER, record.key.toString('utf8')]);
    else dropped('key-not-utf8');
  }
  const h = record.headers ?? {};
  for (const [name, value] of Object.entries(h)) {
    if (name.startsWith('stompede-') || name === KAFKA_KEY_HEADER || RESERVED.has(name) || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v === 'string') out.push([name, v]);
      else if (isUtf8(v)) out.push([name, v.toString('utf8')]);
      else dropped('header-not-utf8');
    }
  }
  const time = Number(record.timestamp);
  return {
    id: recordId(topic, partition, record.offset),
    origin: headerText(h[RECORD_HEADERS.origin]) ?? '',
    vhost: to.vhost,
    destination: to.destination,
    headers: out,
    body: record.value ?? Buffer.alloc(0),
    time: Number.isFinite(time) ? time : Date.now(),
    position: Number(record.offset),
  };
}

/** The destination a record names (the private header, else its key), as text; undefined when there is none. */
export function recordDestination(record: KafkaMessage, fromKeyOnly: boolean): string | undefined {
  const fromHeader = fromKeyOnly ? undefined : headerText(record.headers?.[RECORD_HEADERS.destination]);
  if (fromHeader !== undefined) return fromHeader;
  if (record.key === null || !isUtf8(record.key)) return undefined;
  return record.key.toString('utf8');
}
