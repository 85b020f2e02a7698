/**
 * Producer batching: publishes queue up and leave in batches, at most one batch in flight. What arrives while a
 * batch is in flight forms the next one, so load makes batches grow instead of requests multiply; an idle bus
 * waits `lingerMs` at most. The send itself is injected (a kafkajs `sendBatch` in the bus, a fake in the unit
 * specs): it resolves when the whole batch is acknowledged and rejects with the error every publish of the batch
 * gets.
 */

export interface Queued<M> {
  readonly topic: string;
  readonly message: M;
  /** Approximate size on the wire, for `maxBatchBytes`. */
  readonly bytes: number;
}

interface Pending<M> extends Queued<M> {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export interface ProducerBatcherOptions<M> {
  /** How long the first publish of an idle bus waits for company; 0: until this turn of the event loop ends. */
  lingerMs: number;
  maxBatchMessages: number;
  /** A batch stops before the publish that would take it past this; a single larger publish goes alone. */
  maxBatchBytes: number;
  send: (batch: ReadonlyArray<Queued<M>>, bytes: number) => Promise<void>;
}

export class ProducerBatcher<M> {
  #lingerMs: number;
  #maxBatchMessages: number;
  #maxBatchBytes: number;
  #send: ProducerBatcherOptions<M>['send'];
  #queue: Pending<M>[] = [];
  #queuedBytes = 0;
  #sending: Promise<void> | undefined;
  #linger: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;

  constructor(options: ProducerBatcherOptions<M>) {
    const { lingerMs, maxBatchMessages, maxBatchBytes, send } = options;
    if (!Number.isInteger(lingerMs) || lingerMs < 0) throw new TypeError(`lingerMs must be an integer >= 0, not ${lingerMs}`);
    if (!Number.isInteger(maxBatchMessages) || maxBatchMessages < 1) {
      throw new TypeError(`maxBatchMessages must be an integer >= 1, not ${maxBatchMessages}`);
    }
    if (!Number.isInteger(maxBatchBytes) || maxBatchBytes < 1) {
      throw new TypeError(`maxBatchBytes must be an integer >= 1, not ${maxBatchBytes}`);
    }
    if (typeof send !== 'function') throw new TypeError('ProducerBatcher needs a send function');
    this.#lingerMs = lingerMs;
    this.#maxBatchMessages = maxBatchMessages;
    this.#maxBatchBytes = maxBatchBytes;
    this.#send = send;
  }

  /** Publishes waiting for a batch (not counting the one in flight). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Resolves once the batch holding this record is acknowledged; rejects with that batch's error. */
  add(topic: string, message: M, bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ topic, message, bytes, resolve, reject });
      this.#queuedBytes += bytes;
      this.#schedule();
    });
  }

  /** Sends everything queued, batch after batch, and resolves when the last one settled (at close). */
  async drain(): Promise<void> {
    while (this.#sending !== undefined || this.#queue.length > 0) {
      if (this.#sending === undefined) this.#sendNext();
      await this.#sending;
    }
  }

  /** Rejects what is still queued, unsent (after close). */
  rejectQueued(error: Error): void {
    clearTimeout(this.#linger);
    clearImmediate(this.#immediate);
    this.#linger = undefined;
    this.#immediate = undefined;
    this.#queuedBytes = 0;
    for (const p of this.#queue.splice(0)) p.reject(error);
  }

  /** At most one send in flight: what arrives meanwhile forms the next batch, so load makes batches grow. */
  #schedule(): void {
    if (this.#sending !== undefined) return;
    if (this.#queue.length >= this.#maxBatchMessages || this.#queuedBytes >= this.#maxBatchBytes) {
      this.#sendNext();
    } else if (this.#linger === undefined && this.#immediate === undefined) {
      // lingerMs 0: what this turn of the event loop publishes (one socket read can hold many SENDs) goes together.
      if (this.#lingerMs === 0) this.#immediate = setImmediate(() => this.#sendNext());
      else this.#linger = setTimeout(() => this.#sendNext(), this.#lingerMs);
    }
  }

  #sendNext(): void {
    clearTimeout(this.#linger);
    clearImmediate(this.#immediate);
    this.#linger = undefined;
    this.#immediate = undefined;
    if (this.#sending !== undefined || this.#queue.length === 0) return;
    let count = 0;
    let bytes = 0;
    while (count < this.#queue.length && count < this.#maxBatchMessages) {
      const next = (this.#queue[count] as Pending<M>).bytes;
      if (count > 0 && bytes + next > this.#maxBatchBytes) break;
      bytes += next;
      count++;
    }
    const batch = this.#queue.splice(0, count);
    this.#queuedBytes -= bytes;
    this.#sending = this.#settle(batch, bytes).finally(() => {
      this.#sending = undefined;
      // Whatever queued up while that batch was in flight has waited long enough: send it now.
      if (this.#queue.length > 0) this.#sendNext();
    });
  }

  async #settle(batch: Pending<M>[], bytes: number): Promise<void> {
    try {
      await this.#send(batch, bytes);
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      for (const p of batch) p.reject(e);
      return;
    }
    for (const p of batch) p.resolve();
  }
}
