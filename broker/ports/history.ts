import type { BusEnvelope } from './bus.js';

/** A stored message: the envelope as delivered, with its position in the destination's stream. */
export interface HistoryRecord extends BusEnvelope {
  readonly position: number;
}

/**
 * Which part of a destination's history to read, oldest first. Exactly one selector is used:
 * `last` N messages; everything `afterId`; from `fromPosition` on; from `fromTime` on; or `all`.
 */
export type HistoryQuery =
  | { readonly last: number }
  | { readonly afterId: string }
  | { readonly fromPosition: number }
  | { readonly fromTime: number }
  | { readonly all: true };

export interface HistoryRetention {
  /** Most messages kept per destination (0: no count limit). */
  readonly maxPerDestination: number;
  /** Oldest message kept, in ms of age (0: no age limit). */
  readonly maxAgeMs: number;
  /**
   * Most bytes kept per destination, each record counted by `recordBytes` (0 or absent: no byte limit). A record
   * larger than this alone is not kept at all (it is still delivered live).
   */
  readonly maxBytesPerDestination?: number;
  /** Most bytes kept by the whole store, across destinations; the oldest appended go first (0 or absent: none). */
  readonly maxBytes?: number;
}

/**
 * What a record costs to keep, in bytes: body, header names and values, plus a fixed overhead for the record
 * object, its id and its slot in the indexes. An estimate, but one that grows with everything a client controls.
 */
export function recordBytes(record: BusEnvelope): number {
  let bytes = RECORD_OVERHEAD_BYTES + record.body.length + record.id.length + record.destination.length;
  for (const [name, value] of record.headers) bytes += name.length + value.length + 16;
  return bytes;
}

const RECORD_OVERHEAD_BYTES = 256;

/**
 * Chat history per destination. `append` is idempotent by message id, so a record replayed after a crash is
 * stored once. Contract checked for every backend by spec/bridge/history-conformance.ts.
 */
export interface HistoryStore {
  readonly name: string;
  append(record: HistoryRecord): Promise<void>;
  /**
   * Appends records in list order, in as few round trips as the backend allows (the Kafka route stores each
   * consumed batch before delivering it). Resolves with how many records from the start are stored: a failure
   * part-way leaves a prefix, so no reader ever sees a record without the ones before it. Ids already stored
   * count as stored.
   */
  appendMany(records: readonly HistoryRecord[]): Promise<number>;
  /** Records of one destination matching the query, in position order; at most `limit` (newest kept for `last`). */
  read(vhost: string, destination: string, query: HistoryQuery, limit: number): Promise<HistoryRecord[]>;
  /**
   * The position the next record of this destination gets, for routes that number messages themselves (the local
   * route: the broker numbers each SEND here, in accept order, before the append, so records appended concurrently
   * still read back in the order they were accepted). Positions go on after the highest one stored. A store that
   * must look that up first (outside this process) answers with a Promise; calls made meanwhile are answered in
   * call order. Stores held in this process answer synchronously.
   */
  nextPosition(vhost: string, destination: string): number | Promise<number>;
  /**
   * Stores that hold history in this process offer a synchronous append: the local route's hot path then
   * allocates no Promise per message. Others are appended to through `append`.
   */
  appendNow?(record: HistoryRecord): void;
  /**
   * Stores that keep per-destination state in this process (which then counts against maxDestinationsPerVhost)
   * say through this when a destination's history was evicted entirely, so that the broker stops counting it.
   */
  onForgotten?(listener: HistoryForgotten): void;
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** The most records one SUBSCRIBE replays, whatever it asks for: a replay is a burst on the client's socket. */
export const MAX_REPLAY = 10_000;

/** Called when a destination's history became empty and was forgotten (its state no longer held). */
export type HistoryForgotten = (vhost: string, destination: string) => void;

/** The first index from `from` on whose record is at `position` or later (records in position order). */
export function insertionPoint(records: readonly (HistoryRecord | undefined)[], position: number, from = 0): number {
  let lo = from;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((records[mid] as HistoryRecord).position < position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Applies a query to records already in position order (shared by the in-memory store and caches). */
export function selectRecords(records: readonly HistoryRecord[], query: HistoryQuery, limit: number): HistoryRecord[] {
  let from = 0;
  if ('last' in query) {
    return query.last <= 0 ? [] : records.slice(Math.max(0, records.length - Math.min(query.last, limit)));
  } else if ('afterId' in query) {
    const at = records.findIndex((r) => r.id === query.afterId);
    // An id we no longer hold (trimmed, or never seen): the client has missed an unknown amount, so it gets all we have.
    from = at === -1 ? 0 : at + 1;
  } else if ('fromPosition' in query) {
    from = insertionPoint(records, query.fromPosition);
  } else if ('fromTime' in query) {
    from = records.findIndex((r) => r.time >= query.fromTime);
    if (from === -1) return [];
  }
  return records.slice(from, from + limit);
}
