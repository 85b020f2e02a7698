// Measurement helpers for the load generator: a bounded latency histogram, per-publisher sequence tracking
// (loss and duplicates), the message stamp carried in each body, and broker process sampling from /proc.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/**
 * Log-bucketed latency histogram: 1 % relative precision, constant memory, values in microseconds.
 * Percentiles report the upper edge of the bucket.
 */
const BUCKET_RATIO = 1.01;

export interface HistogramSnapshot {
  readonly counts: Float64Array;
  readonly total: number;
  readonly max: number;
  readonly sum: number;
}

const LOG_BUCKET_RATIO = Math.log(BUCKET_RATIO);

export class LatencyHistogram {
  /** Buckets cover 1 µs .. ~1000 s. */
  readonly #counts = new Float64Array(Math.ceil(Math.log(1e9) / LOG_BUCKET_RATIO) + 2);
  #total = 0;
  #max = 0;
  #sum = 0;

  record(us: number): void {
    const v = us < 1 ? 1 : us;
    let idx = Math.ceil(Math.log(v) / LOG_BUCKET_RATIO);
    if (idx >= this.#counts.length) idx = this.#counts.length - 1;
    this.#counts[idx] = (this.#counts[idx] ?? 0) + 1;
    this.#total++;
    this.#sum += v;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#total;
  }

  /** The whole histogram as plain data, to send from a worker thread to the thread that reports. */
  snapshot(): HistogramSnapshot {
    return { counts: Float64Array.from(this.#counts), total: this.#total, max: this.#max, sum: this.#sum };
  }

  /** Adds every value of another histogram (a worker thread's snapshot). */
  merge(other: HistogramSnapshot): void {
    if (other.counts.length !== this.#counts.length) throw new TypeError('histogram snapshot of another bucket layout');
    for (let i = 0; i < other.counts.length; i++) this.#counts[i] = (this.#counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.#total += other.total;
    this.#sum += other.sum;
    if (other.max > this.#max) this.#max = other.max;
  }

  get maxUs(): number {
    return this.#max;
  }

  get meanUs(): number {
    return this.#total === 0 ? 0 : this.#sum / this.#total;
  }

  /** The value at quantile q (0..1), in microseconds; NaN when empty. */
  quantileUs(q: number): number {
    if (this.#total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.#total));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i] ?? 0;
      if (seen >= rank) return Math.min(BUCKET_RATIO ** i, this.#max);
    }
    return this.#max;
  }
}

/** A growable bit set of the sequence numbers one receiver group got from one publisher. */
export class SeqTracker {
  #bits: Uint8Array;
  #unique = 0;
  #received = 0;
  #outOfOrder = 0;
  #highest = -1;

  constructor(initialBytes = 1024) {
    this.#bits = new Uint8Array(Math.max(1, initialBytes));
  }

  /** Records seq; returns false if it was a duplicate. */
  add(seq: number): boolean {
    this.#received++;
    const byte = seq >>> 3;
    if (byte >= this.#bits.length) {
      let size = this.#bits.length * 2;
      while (size <= byte) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.#bits);
      this.#bits = bigger;
    }
    const mask = 1 << (seq & 7);
    const old = this.#bits[byte] ?? 0;
    if ((old & mask) !== 0) return false;
    this.#bits[byte] = old | mask;
    this.#unique++;
    if (seq < this.#highest) this.#outOfOrder++;
    else this.#highest = seq;
    return true;
  }

  get unique(): number {
    return this.#unique;
  }

  get duplicates(): number {
    return this.#received - this.#unique;
  }

  get outOfOrder(): number {
    return this.#outOfOrder;
  }
}

/**
 * The stamp at the start of every benchmark body: `<publisher> <seq> <send time µs> ` then padding. Putting it
 * in the body (not in headers) works with any broker, whatever it does with custom headers.
 */
export interface Stamp {
  publisher: number;
  seq: number;
  sentUs: number;
}

/**
 * performance.now() counts from the start of the calling thread, so two threads (or processes) disagree on it.
 * Shifted by where this thread started on the machine's monotonic clock (the one process.hrtime reads), the stamp
 * a publisher writes in one thread and the receive time read in another share one clock.
 */
const THREAD_ORIGIN_US = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;

/** Microseconds on the machine's monotonic clock: comparable across the worker threads of the load generator. */
export function nowUs(): number {
  return Math.round(THREAD_ORIGIN_US + performance.now() * 1000);
}

const padding = new Map<number, string>();

export function makeBody(publisher: number, seq: number, sizeBytes: number): string {
  const head = `${publisher} ${seq} ${nowUs()} `;
  const missing = sizeBytes - head.length;
  if (missing <= 0) return head;
  let pad = padding.get(missing);
  if (pad === undefined) {
    pad = 'x'.repeat(missing);
    padding.set(missing, pad);
  }
  return head + pad;
}

/** Parses the stamp into `out`; returns false if the body does not start with one. */
export function readStamp(body: Buffer, out: Stamp): boolean {
  let field = 0;
  let value = 0;
  let digits = 0;
  const len = body.length;
  for (let i = 0; i < len; i++) {
    const c = body[i] ?? 0;
    if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      digits++;
      continue;
    }
    if (c !== 0x20 || digits === 0) return false;
    if (field === 0) out.publisher = value;
    else if (field === 1) out.seq = value;
    else {
      out.sentUs = value;
      return true;
    }
    field++;
    value = 0;
    digits = 0;
  }
  return false;
}

/** CPU time (user + system) and resident memory of a process, from /proc. */
export interface ProcessSample {
  readonly cpuSeconds: number;
  readonly rssKiB: number;
  readonly atMs: number;
}

const CLOCK_TICKS = 100; // USER_HZ, 100 on every Linux architecture Node supports

export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return {
      cpuSeconds: (utime + stime) / CLOCK_TICKS,
      rssKiB: match?.[1] !== undefined ? Number(match[1]) : Number.NaN,
      atMs: performance.now(),
    };
  } catch {
    return undefined;
  }
}

/** Broker CPU use between two samples, in percent of one core. */
export function cpuPercent(from: ProcessSample, to: ProcessSample): number {
  const wall = (to.atMs - from.atMs) / 1000;
  return wall > 0 ? (100 * (to.cpuSeconds - from.cpuSeconds)) / wall : Number.NaN;
}
