import type { Logger } from '../../broker/ports/logger.js';
import { BridgeError, backoffMs } from '../../broker/ports/bus.js';
import type { HistoryRecord, HistoryStore } from '../../broker/ports/history.js';
import type { Entry } from './partition-progress.js';
import type { Staged } from '../cached-history.js';

/**
 * How long delivery waits for history before going ahead without it. Storing first is what makes `x-history`
 * and `x-resume-after` gap-free (a subscriber reads history, then listens); a slow or absent store must not stop
 * the chat, so past this the records are delivered and their appends retried in the background.
 */
export const HISTORY_FIRST_MS = 2_000;

/**
 * Appends a consumed batch's topic records to history before they are delivered, while the store is healthy.
 * Returns how many, from the first, are stored: 0 when the store is unhealthy, fails or is slower than `waitMs`.
 */
export async function storeFirst(
  store: Pick<HistoryStore, 'healthy' | 'appendMany'>,
  records: readonly HistoryRecord[],
  waitMs: number = HISTORY_FIRST_MS,
): Promise<number> {
  if (!store.healthy || records.length === 0) return 0;
  // One ordered bulk append per consumed batch: what is stored is a prefix of the batch, so history never holds
  // a later record of a destination without the earlier ones (a reader would get those live, out of order).
  const appends = store.appendMany(records).then(
    (stored) => stored,
    () => 0,
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, waitMs, undefined);
  });
  const results = await Promise.race([appends, late]);
  clearTimeout(timer);
  // Timed out: the appends may still land; the background retries are idempotent by id.
  return results ?? 0;
}

/**
 * A history store with a fast cache in front of it that can take records ahead of the store itself (the Redis cache
 * in front of MongoDB: `CachedHistoryStore.stageMany`), readable at once by every node. The consumer delivers a
 * batch once it is staged and appends what was staged to the store in the background.
 */
export interface StagingStore extends HistoryStore {
  /** For each record from the first on that the cache took: staged, or found stored already (nothing owed). */
  stageMany(records: readonly HistoryRecord[]): Promise<readonly Staged[]>;
}

export function canStage(store: HistoryStore): store is StagingStore {
  return typeof (store as Partial<StagingStore>).stageMany === 'function';
}

/**
 * Stages a consumed batch's topic records (see StagingStore) within `waitMs`: the outcome for each record from the
 * first on that the cache took. A cache slower than that counts as none staged (the records may land there later:
 * harmless, they are the same, and the store itself then gets them first).
 */
export async function stageFirst(
  store: StagingStore,
  records: readonly HistoryRecord[],
  waitMs: number = HISTORY_FIRST_MS,
): Promise<readonly Staged[]> {
  if (records.length === 0) return [];
  const staged = store.stageMany(records).then(
    (outcome) => outcome,
    () => [],
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<readonly Staged[]>((resolve) => {
    timer = setTimeout(resolve, waitMs, []);
  });
  const result = await Promise.race([staged, late]);
  clearTimeout(timer);
  return result;
}

/** Most records queued batches are joined into for one bulk append. */
const MAX_BULK_RECORDS = 1_000;

/** A store's ordered bulk append (HistoryStore.appendMany): resolves with how many, from the first, are stored. */
export type AppendMany = (records: readonly HistoryRecord[]) => Promise<number>;

/** A topic record delivered without being stored first: its history step of `entry` is still owed. */
export interface HistoryJob {
  readonly envelope: HistoryRecord;
  readonly entry: Entry;
}

/** Counters the writer adds to (the bus's stats object, shared so that nothing is copied per record). */
export interface HistoryCounters {
  historyAppended: number;
  dropped: number;
}

export interface HistoryWriterOptions {
  append: (record: HistoryRecord) => Promise<void>;
  /** For the log line when the store starts failing. */
  storeName: string;
  concurrency: number;
  counters: HistoryCounters;
  logger: Logger;
  retry?: ((attempt: number, delayMs: number, error: unknown) => void) | undefined;
  /** The wait before retry `attempt` (0 first); jittered exponential by default. */
  backoff?: ((attempt: number) => number) | undefined;
}

/**
 * Background history appends, a bounded number at a time, in arrival order. Jobs of a partition progress gone stale
 * (the group rebalanced, or the partition is read again) are dropped unstarted: whoever reads those records again
 * owes their appends, and appending them twice would only put MongoDB's slow duplicate path in front of the new
 * generation's appends, which its commits wait for. A retriable failure puts the record
 * back at the head of the line and pauses every append for a backoff (the store is down for all of them, not for
 * one); the record's offset stays uncommitted until it is stored. A non-retriable failure drops the record (logged,
 * counted) and releases its offset: retrying cannot help and would stall the partition for good.
 */
export class HistoryWriter {
  #append: HistoryWriterOptions['append'];
  /** Bulk appends waiting, and how many records they and those in flight hold. */
  #batches: { jobs: HistoryJob[]; appendMany: AppendMany }[] = [];
  #batchesActive = 0;
  #batchRecords = 0;
  #storeName: string;
  #concurrency: number;
  /** Bulk appends at a time: fewer than single ones, as each carries many records. */
  #bulkConcurrency: number;
  #counters: HistoryCounters;
  #logger: Logger;
  #retry: HistoryWriterOptions['retry'];
  #backoffMs: (attempt: number) => number;
  #queue: HistoryJob[] = [];
  #head = 0;
  #active = 0;
  #failures = 0;
  #backoff: NodeJS.Timeout | undefined;
  #idle: (() => void) | undefined;
  #closed = false;

  constructor(options: HistoryWriterOptions) {
    if (typeof options.append !== 'function') throw new TypeError('HistoryWriter needs an append function');
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new TypeError(`HistoryWriter concurrency must be an integer >= 1, not ${options.concurrency}`);
    }
    this.#append = options.append;
    this.#storeName = options.storeName;
    this.#concurrency = options.concurrency;
    this.#bulkConcurrency = Math.max(1, Math.ceil(options.concurrency / 8));
    this.#counters = options.counters;
    this.#logger = options.logger;
    this.#retry = options.retry;
    this.#backoffMs = options.backoff ?? backoffMs;
  }

  /** Records queued or being appended: the consumer stops taking batches while this is at its limit. */
  get pending(): number {
    return this.#queue.length - this.#head + this.#active + this.#batchRecords;
  }

  enqueue(job: HistoryJob): void {
    this.#queue.push(job);
    this.#pump();
  }

  /**
   * Records of one consumed batch, in order, appended with one bulk call of `appendMany` (the store's; at most
   * `concurrency / 8` such calls at a time, batches waiting for one joined together); what that call does not store
   * goes on one record at a time, retried as `enqueue`d records are.
   */
  enqueueMany(jobs: readonly HistoryJob[], appendMany: AppendMany): void {
    if (jobs.length === 0 || this.#closed) return;
    this.#batches.push({ jobs: [...jobs], appendMany });
    this.#batchRecords += jobs.length;
    this.#pump();
  }

  /** Resolves once nothing is pending, or after `timeoutMs`, whichever comes first; never rejects. */
  drained(timeoutMs: number): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#idle = () => {
        this.#idle = undefined;
        finish();
      };
    });
  }

  /** Forgets what is queued and stops retrying; appends in flight finish, and their offsets still step. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#backoff);
    this.#backoff = undefined;
    this.#queue = [];
    this.#head = 0;
    for (const batch of this.#batches) this.#batchRecords -= batch.jobs.length;
    this.#batches = [];
  }

  #pump(): void {
    while (this.#backoff === undefined && this.#batchesActive < this.#bulkConcurrency && this.#batches.length > 0) {
      const { jobs: first, appendMany } = this.#batches.shift() as { jobs: HistoryJob[]; appendMany: AppendMany };
      const taken = [first];
      let count = first.length;
      // While the store lags, batches queue up: they go together, in bigger and fewer bulk appends.
      for (let next = this.#batches[0]; next?.appendMany === appendMany && count + next.jobs.length <= MAX_BULK_RECORDS;) {
        taken.push(next.jobs);
        count += next.jobs.length;
        this.#batches.shift();
        next = this.#batches[0];
      }
      const jobs = taken.flat().filter((job) => !job.entry.progress.stale);
      this.#batchRecords -= count - jobs.length;
      if (jobs.length === 0) continue;
      this.#batchesActive++;
      attemptMany(appendMany, jobs).then(
        (stored) => this.#batchDone(jobs, stored),
        () => this.#batchDone(jobs, 0),
      );
    }
    while (this.#backoff === undefined && this.#active < this.#concurrency && this.#head < this.#queue.length) {
      const job = this.#queue[this.#head] as HistoryJob;
      this.#head++;
      // Its records are read again (a new generation, a re-read), by this node or another: owed there, not here.
      if (job.entry.progress.stale) continue;
      this.#active++;
      attempt(this.#append, job.envelope).then(
        () => this.#done(job),
        (error: unknown) => this.#failed(job, error),
      );
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.pending === 0) this.#idle?.();
  }

  #batchDone(batch: readonly HistoryJob[], stored: number): void {
    this.#batchesActive--;
    this.#batchRecords -= batch.length;
    const n = Math.max(0, Math.min(stored, batch.length));
    for (let i = 0; i < n; i++) {
      this.#counters.historyAppended++;
      const job = batch[i] as HistoryJob;
      job.entry.progress.step(job.entry);
    }
    // The rest (a failure part-way, or the whole batch) one record at a time, with the usual retries.
    if (!this.#closed) for (let i = n; i < batch.length; i++) this.#queue.push(batch[i] as HistoryJob);
    this.#pump();
  }

  #done(job: HistoryJob): void {
    this.#active--;
    this.#failures = 0;
    this.#counters.historyAppended++;
    job.entry.progress.step(job.entry);
    this.#pump();
  }

  #failed(job: HistoryJob, error: unknown): void {
    this.#active--;
    if (this.#closed) return;
    if (error instanceof BridgeError && !error.retriable) {
      this.#counters.dropped++;
      this.#logger.error({ err: error, id: job.envelope.id }, 'the history store refused a record for good');
      job.entry.progress.step(job.entry);
      this.#pump();
      return;
    }
    // Back to the head of the line; the offset stays uncommitted until it is stored.
    if (this.#head > 0) this.#queue[--this.#head] = job;
    else this.#queue.unshift(job);
    if (this.#backoff !== undefined) return;
    const failures = this.#failures++;
    const delayMs = this.#backoffMs(failures);
    if (failures === 0) {
      const message = 'history append failed; delivery goes on, history catches up when the store returns';
      this.#logger.warn({ err: error, store: this.#storeName }, message);
    }
    this.#retry?.(failures + 1, delayMs, error);
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      this.#pump();
    }, delayMs);
  }
}

/** A Promise for a store call, also when the call throws instead of rejecting. */
function attempt(append: (record: HistoryRecord) => Promise<void>, record: HistoryRecord): Promise<void> {
  try {
    return append(record);
  } catch (error) {
    return Promise.reject(error);
  }
}

function attemptMany(appendMany: AppendMany, jobs: readonly HistoryJob[]): Promise<number> {
  try {
    return appendMany(jobs.map((j) => j.envelope));
  } catch (error) {
    return Promise.reject(error);
  }
}
