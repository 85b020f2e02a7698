import {
  insertionPoint,
  recordBytes,
  selectRecords,
  type HistoryForgotten,
  type HistoryQuery,
  type HistoryRecord,
  type HistoryRetention,
  type HistoryStore,
} from '../broker/ports/history.js';

/** Forgotten destinations whose next position is remembered (a few MiB at most). */
const FORGOTTEN_POSITIONS = 50_000;

/**
 * One destination's history: records in position order from `head` on (slots before it are spent, reclaimed in
 * batches, so dropping the oldest is O(1)), the live records by id, and the byte total of the live records.
 */
interface Stream {
  readonly key: string;
  readonly vhost: string;
  readonly destination: string;
  records: (HistoryRecord | undefined)[];
  head: number;
  /** The live records by id, each with its entry in the node-wide append order. */
  ids: Map<string, Appended>;
  bytes: number;
  next: number;
}

/**
 * A record in append order, for the node-wide byte cap. Once the record leaves its stream the entry lets go of
 * it (`record` undefined), so a stale entry waiting in the order costs a few bytes, never the message.
 */
interface Appended {
  readonly stream: Stream;
  record: HistoryRecord | undefined;
  readonly bytes: number;
}

/** History held in this process: per-destination arrays trimmed on append by count, age and bytes. */
export class InMemoryHistoryStore implements HistoryStore {
  readonly name = 'memory';
  readonly healthy = true;
  #streams = new Map<string, Stream>();
  #retention: HistoryRetention;
  #maxBytesPerDestination: number;
  #maxBytes: number;
  /** Bytes, and number, of the live records of every destination. */
  #bytes = 0;
  #records = 0;
  /** Append order across destinations, from `#orderHead` on; kept only with a node-wide byte cap. */
  #order: (Appended | undefined)[] = [];
  #orderHead = 0;
  #forgotten: HistoryForgotten = () => {};
  /**
   * The next position of recently forgotten destinations, so that one written to again goes on numbering where it
   * stopped (a client resuming from a position must never see numbers go backwards). Oldest go first past the bound.
   */
  #nextOfForgotten = new Map<string, number>();

  constructor(retention: HistoryRetention) {
    this.#retention = retention;
    this.#maxBytesPerDestination = retention.maxBytesPerDestination ?? 0;
    this.#maxBytes = retention.maxBytes ?? 0;
  }

  /** Bytes held across destinations (as counted by `recordBytes`). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Destinations with a history (or a position counter) held in memory. */
  get destinations(): number {
    return this.#streams.size;
  }

  /** Whether this destination's history is held (a SEND to it creates no new state). */
  has(vhost: string, destination: string): boolean {
    return this.#streams.has(`${vhost}\u0000${destination}`);
  }

  /** Tells `listener` of every destination whose history was evicted entirely (the broker frees its count). */
  onForgotten(listener: HistoryForgotten): void {
    this.#forgotten = listener;
  }

  #stream(vhost: string, destination: string): Stream {
    const key = `${vhost}\u0000${destination}`;
    let s = this.#streams.get(key);
    if (s === undefined) {
      const next = this.#nextOfForgotten.get(key) ?? 0;
      if (next > 0) this.#nextOfForgotten.delete(key);
      s = { key, vhost, destination, records: [], head: 0, ids: new Map(), bytes: 0, next };
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
    if (record.position >= s.next) s.next = record.position + 1;
    const bytes = recordBytes(record);
    const perDestination = this.#maxBytesPerDestination;
    if (perDestination > 0 && bytes > perDestination) {
      // Too big to keep even alone: delivered live, never replayed. The destination keeps what it had.
      this.#forgetIfEmpty(s);
      return;
    }
    const entry: Appended = { stream: s, record, bytes };
    s.ids.set(record.id, entry);
    s.bytes += bytes;
    this.#bytes += bytes;
    this.#records++;
    const records = s.records;
    const last = records.length > s.head ? (records[records.length - 1] as HistoryRecord) : undefined;
    if (last === undefined || last.position < record.position) records.push(record);
    else records.splice(insertionPoint(records, record.position, s.head), 0, record);
    if (this.#maxBytes > 0) this.#order.push(entry);

    const max = this.#retention.maxPerDestination;
    if (max > 0 && records.length - s.head > max) this.#dropOldest(s, records.length - s.head - max);
    const maxAge = this.#retention.maxAgeMs;
    if (maxAge > 0) {
      let n = 0;
      while (s.head + n < records.length && (records[s.head + n] as HistoryRecord).time < record.time - maxAge) n++;
      if (n > 0) this.#dropOldest(s, n);
    }
    // Oldest first, until the destination fits its byte budget (the record just added always fits alone).
    if (perDestination > 0 && s.bytes > perDestination) {
      let n = 0;
      let over = s.bytes - perDestination;
      while (over > 0) {
        over -= recordBytes(records[s.head + n] as HistoryRecord);
        n++;
      }
      this.#dropOldest(s, n);
    }
    if (this.#maxBytes > 0) {
      if (this.#bytes > this.#maxBytes) this.#evictAcrossDestinations();
      this.#compactOrder();
    }
    this.#compact(s);
    this.#forgetIfEmpty(s);
  }

  /** Drops the `n` oldest records of a stream: O(n), the slots are reclaimed later by `#compact`. */
  #dropOldest(s: Stream, n: number): void {
    for (let i = 0; i < n; i++) {
      const r = s.records[s.head] as HistoryRecord;
      s.records[s.head++] = undefined;
      this.#forget(s, r);
    }
  }

  #forget(s: Stream, r: HistoryRecord): void {
    const entry = s.ids.get(r.id);
    if (entry === undefined) return;
    s.ids.delete(r.id);
    entry.record = undefined;
    s.bytes -= entry.bytes;
    this.#bytes -= entry.bytes;
    this.#records--;
  }

  /**
   * The node-wide cap: evicts in append order across destinations until the store fits. Each append is popped
   * at most once, so this is O(1) amortized per append; entries whose record already left (count, age or
   * per-destination trims) are skipped, and swept out when they outnumber the live records.
   */
  #evictAcrossDestinations(): void {
    const order = this.#order;
    while (this.#bytes > this.#maxBytes && this.#orderHead < order.length) {
      const entry = order[this.#orderHead] as Appended;
      order[this.#orderHead++] = undefined;
      const record = entry.record;
      if (record === undefined) continue; // already gone
      const s = entry.stream;
      if (s.records[s.head] === record) {
        this.#dropOldest(s, 1);
      } else {
        // Appended out of position order (a Kafka batch): rare, so a splice is fine.
        s.records.splice(s.records.indexOf(record, s.head), 1);
        this.#forget(s, record);
      }
      this.#compact(s);
      this.#forgetIfEmpty(s);
    }
  }

  #compactOrder(): void {
    const order = this.#order;
    const pending = order.length - this.#orderHead;
    if (this.#orderHead > 1024 && this.#orderHead * 2 > order.length) {
      this.#order = order.slice(this.#orderHead);
      this.#orderHead = 0;
    } else if (pending > 64 && pending > 2 * this.#records) {
      // Mostly stale (records trimmed by their destination's own limits): keep only the live entries.
      this.#order = order.slice(this.#orderHead).filter((e) => e?.record !== undefined);
      this.#orderHead = 0;
    }
  }

  /** Reclaims spent slots once they are most of the array, so each record is moved O(1) times on average. */
  #compact(s: Stream): void {
    if (s.head === 0) return;
    if (s.head === s.records.length) {
      s.records = [];
      s.head = 0;
    } else if (s.head > 64 && s.head * 2 > s.records.length) {
      s.records = s.records.slice(s.head);
      s.head = 0;
    }
  }

  /**
   * A destination whose history is empty is forgotten, so that names nobody writes to any more cost (almost)
   * nothing: only its next position is remembered, among the latest FORGOTTEN_POSITIONS.
   */
  #forgetIfEmpty(s: Stream): void {
    if (s.ids.size > 0 || this.#streams.get(s.key) !== s) return;
    this.#streams.delete(s.key);
    const remembered = this.#nextOfForgotten;
    remembered.set(s.key, s.next);
    if (remembered.size > FORGOTTEN_POSITIONS) {
      const oldest = remembered.keys().next().value;
      if (oldest !== undefined) remembered.delete(oldest);
    }
    this.#forgotten(s.vhost, s.destination);
  }

  async read(vhost: string, destination: string, query: HistoryQuery, limit: number): Promise<HistoryRecord[]> {
    const s = this.#streams.get(`${vhost}\u0000${destination}`);
    if (s === undefined) return [];
    return selectRecords(s.records.slice(s.head) as HistoryRecord[], query, limit);
  }

  async close(): Promise<void> {
    this.#streams.clear();
    this.#nextOfForgotten.clear();
    this.#order = [];
    this.#orderHead = 0;
    this.#bytes = 0;
    this.#records = 0;
  }
}
