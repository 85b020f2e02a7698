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
}

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
  /** The position the next record of this destination gets, for routes that number messages themselves. */
  nextPosition(vhost: string, destination: string): number;
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** The most records one SUBSCRIBE replays, whatever it asks for: a replay is a burst on the client's socket. */
export const MAX_REPLAY = 10_000;

/** History held in this process: ring-like arrays per destination, trimmed on append. */
export class InMemoryHistoryStore implements HistoryStore {
  readonly name = 'memory';
  readonly healthy = true;
  #streams = new Map<string, { records: HistoryRecord[]; ids: Set<string>; next: number }>();
  #retention: HistoryRetention;

  constructor(retention: HistoryRetention) {
    this.#retention = retention;
  }

  #stream(vhost: string, destination: string) {
    const key = `${vhost}\u0000${destination}`;
    let s = this.#streams.get(key);
    if (s === undefined) {
      s = { records: [], ids: new Set(), next: 0 };
      this.#streams.set(key, s);
    }
    return s;
  }

  nextPosition(vhost: string, destination: string): number {
    return this.#stream(vhost, destination).next++;
  }

  async append(record: HistoryRecord): Promise<void> {
    this.appendNow(record);
  }

  async appendMany(records: readonly HistoryRecord[]): Promise<number> {
    for (const r of records) this.appendNow(r);
    return records.length;
  }

  /** Synchronous append for the local route's hot path (no Promise per message). */
  appendNow(record: HistoryRecord): void {
    const s = this.#stream(record.vhost, record.destination);
    if (s.ids.has(record.id)) return;
    s.ids.add(record.id);
    if (record.position >= s.next) s.next = record.position + 1;
    const records = s.records;
    if (records.length === 0 || (records[records.length - 1] as HistoryRecord).position < record.position) records.push(record);
    else records.splice(insertionPoint(records, record.position), 0, record);
    const max = this.#retention.maxPerDestination;
    // Trim in batches of an eighth: one splice per many appends instead of a shift per append.
    if (max > 0 && records.length > max + Math.max(1, max >> 3)) this.#drop(s, records.length - max);
    const maxAge = this.#retention.maxAgeMs;
    if (maxAge > 0 && records.length > 0 && (records[0] as HistoryRecord).time < record.time - maxAge) {
      let n = 0;
      while (n < records.length && (records[n] as HistoryRecord).time < record.time - maxAge) n++;
      this.#drop(s, n);
    }
  }

  #drop(s: { records: HistoryRecord[]; ids: Set<string> }, n: number): void {
    for (const r of s.records.splice(0, n)) s.ids.delete(r.id);
  }

  async read(vhost: string, destination: string, query: HistoryQuery, limit: number): Promise<HistoryRecord[]> {
    const s = this.#streams.get(`${vhost}\u0000${destination}`);
    if (s === undefined) return [];
    const max = this.#retention.maxPerDestination;
    const all = max > 0 && s.records.length > max ? s.records.slice(s.records.length - max) : s.records;
    return selectRecords(all, query, limit);
  }

  async close(): Promise<void> {
    this.#streams.clear();
  }
}

function insertionPoint(records: readonly HistoryRecord[], position: number): number {
  let lo = 0;
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
