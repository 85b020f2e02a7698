// Fan-out subscribers in worker threads (`run.js --workers N`). One Node thread that parses what 100 subscribers
// receive tops out below what Stompede delivers, so the load generator, not the broker, set the fanout figure.
// Here the subscriber connections are spread over N worker threads, each with its own event loop; the
// publisher stays on the main thread. The same code runs against every broker.
//
// The closed loop stays exact: a worker counts the first deliveries of each message to its own subscribers and
// reports the message complete, in a batch per turn of its event loop, once all of them have it; the publisher's
// message is complete once every worker reported it (Publisher `needed` = number of workers). Loss, duplicates
// and order are tracked per subscriber as before and summed at the end; latency histograms are merged. The
// measurement window is a flag in shared memory that the main thread sets and the workers read per delivery.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { StompClient, type ClientOptions, type CloseInfo, type StompFrame } from './client.js';
import { LatencyHistogram, SeqTracker, nowUs, readStamp, type HistogramSnapshot, type Stamp } from './stats.js';

const WORKER_KIND = 'stompede-bench-fanout-subscribers';
/** How long close() waits for a worker to disconnect its clients before it terminates the thread. */
const CLOSE_TIMEOUT_MS = 5000;
const MAX_WORKER_ERRORS = 8;

/** What a worker thread starts with. */
interface WorkerInit {
  readonly kind: typeof WORKER_KIND;
  readonly index: number;
  /** One URL per subscriber this worker holds. */
  readonly urls: readonly string[];
  readonly client: Omit<ClientOptions, 'url' | 'trace'>;
  readonly destination: string;
  /** The stamp's publisher id of the one fanout publisher. */
  readonly publisher: number;
  readonly concurrency: number;
  /** Int32Array over it: [0] is 1 while the measurement window is open. */
  readonly measuring: SharedArrayBuffer;
}

export interface TrackerTotals {
  readonly unique: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
}

/** A worker's figures at the end of the run. */
export interface WorkerReport {
  readonly trackers: readonly TrackerTotals[];
  readonly deliveredInWindow: number;
  readonly latency: HistogramSnapshot;
  readonly badBodies: number;
}

type ToWorker = { readonly type: 'report' } | { readonly type: 'close' };

type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'complete'; readonly seqs: readonly number[] }
  | { readonly type: 'error'; readonly message: string }
  | { readonly type: 'report'; readonly report: WorkerReport }
  | { readonly type: 'closed' };

export interface SubscriberWorkersOptions {
  readonly workers: number;
  /** Subscriber i connects to urlOf(i). */
  readonly subscribers: number;
  readonly urlOf: (i: number) => string;
  readonly client: Omit<ClientOptions, 'url' | 'trace'>;
  readonly destination: string;
  readonly publisher: number;
  readonly concurrency: number;
  readonly measuring: Int32Array;
  /** A message reached every subscriber of one worker. */
  readonly onComplete: (seq: number) => void;
  readonly onError: (message: string) => void;
}

/**
 * Counts first deliveries per message among one worker's receivers: a message is complete for the worker once each
 * of its `needed` receivers got it. Messages never completed (lost somewhere) stay counted; there are as many as
 * the run loses.
 */
export class CompletionCounter {
  readonly #needed: number;
  readonly #counts = new Map<number, number>();

  constructor(needed: number) {
    if (!Number.isInteger(needed) || needed < 1) throw new TypeError(`needed must be a positive integer, got ${needed}`);
    this.#needed = needed;
  }

  /** One more receiver got `seq` for the first time; true when that makes all of them. */
  add(seq: number): boolean {
    const count = (this.#counts.get(seq) ?? 0) + 1;
    if (count < this.#needed) {
      this.#counts.set(seq, count);
      return false;
    }
    this.#counts.delete(seq);
    return true;
  }

  /** Messages some but not all receivers have. */
  get incomplete(): number {
    return this.#counts.size;
  }
}

/** The main thread's side: starts the workers, relays completions and errors, collects the figures. */
export class SubscriberWorkers {
  readonly #workers: Worker[];
  readonly #exited: Array<Promise<void>>;
  #replies: Array<((message: FromWorker) => void) | undefined>;

  private constructor(workers: Worker[], exited: Array<Promise<void>>, replies: Array<((message: FromWorker) => void) | undefined>) {
    this.#workers = workers;
    this.#exited = exited;
    this.#replies = replies;
  }

  /** How many workers run: each reports each message once, so it is the publisher's `needed`. */
  get size(): number {
    return this.#workers.length;
  }

  /** Starts the workers and resolves once every subscriber is connected and subscribed (with a RECEIPT). */
  static async start(o: SubscriberWorkersOptions): Promise<SubscriberWorkers> {
    const n = Math.max(1, Math.min(o.workers, o.subscribers));
    const buffer = o.measuring.buffer;
    if (!(buffer instanceof SharedArrayBuffer)) throw new TypeError('measuring must be backed by a SharedArrayBuffer');
    const workers: Worker[] = [];
    const exited: Array<Promise<void>> = [];
    const replies: Array<((message: FromWorker) => void) | undefined> = [];
    const ready: Array<Promise<void>> = [];
    for (let w = 0; w < n; w++) {
      // Round-robin, so that on several targets every worker holds subscribers of every node.
      const urls: string[] = [];
      for (let i = w; i < o.subscribers; i += n) urls.push(o.urlOf(i));
      const init: WorkerInit = {
        kind: WORKER_KIND,
        index: w,
        urls,
        client: o.client,
        destination: o.destination,
        publisher: o.publisher,
        concurrency: Math.max(1, Math.ceil(o.concurrency / n)),
        measuring: buffer,
      };
      const worker = new Worker(new URL(import.meta.url), { workerData: init });
      workers.push(worker);
      replies.push(undefined);
      exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.on('message', (message: FromWorker) => {
            switch (message.type) {
              case 'complete':
                for (const seq of message.seqs) o.onComplete(seq);
                return;
              case 'ready':
                resolve();
                return;
              case 'failed':
                reject(new Error(`subscriber worker ${w}: ${message.message}`));
                return;
              case 'error':
                o.onError(`subscriber worker ${w}: ${message.message}`);
                return;
              case 'report':
              case 'closed':
                replies[w]?.(message);
                return;
              default: {
                const never: never = message;
                throw new TypeError(`unknown worker message ${JSON.stringify(never)}`);
              }
            }
          });
          worker.on('error', (err) => {
            o.onError(`subscriber worker ${w} crashed: ${err.message}`);
            reject(err);
          });
          worker.once('exit', (code) => reject(new Error(`subscriber worker ${w} exited with code ${code} before it was ready`)));
        }),
      );
    }
    const pool = new SubscriberWorkers(workers, exited, replies);
    try {
      await Promise.all(ready);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Every worker's figures; call after the drain, before close(). */
  async report(): Promise<WorkerReport[]> {
    return Promise.all(
      this.#workers.map(async (worker, w) => {
        const reply = await this.#ask(w, worker, { type: 'report' }, 'report');
        if (reply?.type !== 'report') throw new Error(`subscriber worker ${w} sent no report`);
        return reply.report;
      }),
    );
  }

  /** Disconnects every subscriber and ends the threads (terminating any that does not finish in time). */
  async close(): Promise<void> {
    await Promise.all(
      this.#workers.map(async (worker, w) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), CLOSE_TIMEOUT_MS);
        });
        try {
          await Promise.race([this.#ask(w, worker, { type: 'close' }, 'closed'), this.#exited[w], timeout]);
        } finally {
          clearTimeout(timer);
        }
        await worker.terminate();
      }),
    );
    this.#replies = this.#replies.map(() => undefined);
  }

  #ask(w: number, worker: Worker, message: ToWorker, answer: FromWorker['type']): Promise<FromWorker | undefined> {
    return new Promise((resolve) => {
      this.#replies[w] = (reply) => {
        if (reply.type !== answer) return;
        this.#replies[w] = undefined;
        resolve(reply);
      };
      void this.#exited[w]?.then(() => resolve(undefined));
      worker.postMessage(message);
    });
  }
}

// ---- The worker thread ---------------------------------------------------------------------------------------

function isWorkerInit(v: unknown): v is WorkerInit {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === WORKER_KIND;
}

async function runWorker(init: WorkerInit, port: NonNullable<typeof parentPort>): Promise<void> {
  const post = (message: FromWorker): void => port.postMessage(message);
  const measuring = new Int32Array(init.measuring);
  const latency = new LatencyHistogram();
  const stamp: Stamp = { publisher: 0, seq: 0, sentUs: 0 };
  const clients: StompClient[] = [];
  const trackers = init.urls.map(() => new SeqTracker());
  const completion = new CompletionCounter(trackers.length);
  let completed: number[] = [];
  let flushScheduled = false;
  let deliveredInWindow = 0;
  let badBodies = 0;
  let errors = 0;
  let closing = false;

  const error = (message: string): void => {
    if (++errors <= MAX_WORKER_ERRORS) post({ type: 'error', message });
  };
  const flush = (): void => {
    flushScheduled = false;
    const seqs = completed;
    completed = [];
    post({ type: 'complete', seqs });
  };
  const receive = (frame: StompFrame, tracker: SeqTracker): void => {
    if (!readStamp(frame.body, stamp) || stamp.publisher !== init.publisher) {
      if (++badBodies <= 3) error(`MESSAGE body without this run's stamp: ${JSON.stringify(frame.body.toString('latin1', 0, 80))}`);
      return;
    }
    const seq = stamp.seq;
    if (!tracker.add(seq)) return;
    if (Atomics.load(measuring, 0) === 1) {
      deliveredInWindow++;
      latency.record(nowUs() - stamp.sentUs);
    }
    if (!completion.add(seq)) return;
    completed.push(seq);
    // One message to the main thread per turn of the event loop, however many sockets were read in it.
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'report':
        post({
          type: 'report',
          report: {
            trackers: trackers.map((t) => ({ unique: t.unique, duplicates: t.duplicates, outOfOrder: t.outOfOrder })),
            deliveredInWindow,
            latency: latency.snapshot(),
            badBodies,
          },
        });
        return;
      case 'close':
        closing = true;
        void Promise.all(clients.map((c) => c.disconnect(2000))).then(() => {
          post({ type: 'closed' });
          port.close();
        });
        return;
      default: {
        const never: never = message;
        throw new TypeError(`unknown message ${JSON.stringify(never)}`);
      }
    }
  });

  try {
    let next = 0;
    const connectOne = async (): Promise<void> => {
      while (next < init.urls.length) {
        const i = next++;
        const url = init.urls[i] as string;
        const client = await StompClient.connect({ ...init.client, url });
        clients.push(client);
        client.onError = (err) => {
          if (!closing) error(`client ${client.id}: ${err.message}`);
        };
        client.onClose = (info: CloseInfo) => {
          if (closing || info.reason === 'local' || info.reason === 'error') return;
          error(`client ${client.id}: ${info.reason === 'heartbeat-timeout' ? 'heart-beat timeout' : 'closed by the server'}`);
        };
        const tracker = trackers[i] as SeqTracker;
        await client.subscribe(init.destination, (frame) => receive(frame, tracker), { receipt: true });
      }
    };
    await Promise.all(Array.from({ length: Math.min(init.concurrency, init.urls.length) }, connectOne));
    post({ type: 'ready' });
  } catch (err) {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    closing = true;
    for (const c of clients) c.destroy();
    port.close();
  }
}

if (!isMainThread && parentPort !== null && isWorkerInit(workerData)) {
  void runWorker(workerData, parentPort);
}
