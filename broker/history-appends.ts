import { BridgeError } from './ports/bus.js';
import type { HistoryRecord, HistoryStore } from './ports/history.js';

/** Most records one batched append carries. */
const MAX_BATCH = 500;

interface Waiting {
  readonly record: HistoryRecord;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Appends to a history store outside this process (MongoDB) in order per destination: one `appendMany` in flight
 * per destination, and the records that arrive meanwhile go together in the next one. Since `appendMany` stores a
 * prefix of its list, a reader always finds a prefix of what this node accepted for a destination, never a later
 * message without an earlier one (a replay joining the live stream would otherwise send them out of order). A busy
 * destination costs one round trip per batch rather than one per message.
 */
export class OrderedAppends {
  readonly #store: HistoryStore;
  readonly #queues = new Map<string, Waiting[]>();

  constructor(store: HistoryStore) {
    this.#store = store;
  }

  /** Resolves once the record is stored; rejects when it was not (the store failed, or an earlier one did). */
  append(record: HistoryRecord): Promise<void> {
    const key = `${record.vhost}\u0000${record.destination}`;
    return new Promise<void>((resolve, reject) => {
      const queue = this.#queues.get(key);
      if (queue !== undefined) {
        queue.push({ record, resolve, reject });
        return;
      }
      const fresh = [{ record, resolve, reject }];
      this.#queues.set(key, fresh);
      void this.#flush(key, fresh);
    });
  }

  async #flush(key: string, queue: Waiting[]): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.splice(0, MAX_BATCH);
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
    this.#queues.delete(key);
  }
}
