import { BridgeError } from './ports/bus.js';
import type { HistoryRecord, HistoryStore } from './ports/history.js';

/** Most records one batched append carries. */
const MAX_BATCH = 1_000;

interface Waiting {
  readonly record: HistoryRecord;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Appends to a history store outside this process (MongoDB) in the order they are asked for: one `appendMany` in
 * flight per node, and the records that arrive meanwhile, for any destination, go together in the next one. Since
 * `appendMany` stores a prefix of its list, a reader always finds a prefix of what this node accepted for each
 * destination, never a later message without an earlier one (a replay joining the live stream would otherwise
 * send them out of order). A busy node costs the store one round trip per batch rather than one per message, however
 * many destinations the messages go to.
 */
export class OrderedAppends {
  readonly #store: HistoryStore;
  #waiting: Waiting[] = [];
  #flushing = false;

  constructor(store: HistoryStore) {
    this.#store = store;
  }

  /** Resolves once the record is stored; rejects when it was not (the store failed, or an earlier one did). */
  append(record: HistoryRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ record, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0, MAX_BATCH);
      let stored = 0;
      let failure: unknown;
      try {
        stored = await this.#store.appendMany(batch.map((w) => w.record));
      } catch (error) {
        failure = error;
      }
      failure ??= new BridgeError('ERR_HISTORY_FAILED', `history stored ${stored} of ${batch.length} records`, true);
      for (let i = 0; i < batch.length; i++) {
        const w = batch[i] as Waiting;
        if (i < stored) w.resolve();
        else w.reject(failure);
      }
    }
    this.#flushing = false;
  }
}
