/**
 * A publisher that keeps sending while the cluster is hurt: one SEND with a receipt at a time, so the outcome of
 * every SEND is known exactly (RECEIPT, ERROR frame, connection closed without an answer, or no answer in time).
 * After an ERROR or a lost connection it connects again (to the node `connect` picks) and goes on.
 */
import { sleep } from '../support/cluster.js';
import { SendFailure, type FailureKind, type StompClient } from './clients.js';

export type Outcome = 'pending' | 'receipt' | FailureKind;

export interface SendRecord {
  readonly seq: number;
  readonly body: string;
  readonly node: string;
  readonly sentAt: number;
  outcome: Outcome;
  settledAt: number;
}

export interface PublisherOptions {
  readonly connect: () => Promise<StompClient>;
  readonly destination: string;
  /** Bodies are `<prefix> <seq>`. */
  readonly prefix: string;
  /** Pause between SENDs (after the previous one settled). */
  readonly intervalMs?: number;
  /** A SEND unanswered this long counts as `timeout` (silence). */
  readonly receiptTimeoutMs?: number;
  /**
   * Send a SEND that got an ERROR or a closed connection instead of a RECEIPT again, same body, on the next
   * connection: safe where a node answers every frame it took before it closes (a SIGTERM), not after a crash.
   */
  readonly resendUnanswered?: boolean;
}

export class Publisher {
  readonly records: SendRecord[] = [];
  readonly connects: string[] = [];
  #o: PublisherOptions;
  #running = false;
  #loop: Promise<void> | undefined;
  #client: StompClient | undefined;

  constructor(options: PublisherOptions) {
    this.#o = options;
  }

  get destination(): string {
    return this.#o.destination;
  }

  start(): this {
    this.#running = true;
    this.#loop = this.#run();
    return this;
  }

  /** Stops after the SEND in flight has settled. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  /** Bodies whose SEND got a RECEIPT, in send order. */
  receipted(): string[] {
    return this.records.filter((r) => r.outcome === 'receipt').map((r) => r.body);
  }

  count(outcome: Outcome): number {
    return this.records.filter((r) => r.outcome === outcome).length;
  }

  summary(): string {
    const kinds: Outcome[] = ['receipt', 'error', 'closed', 'timeout', 'pending'];
    return `${this.#o.prefix}: ${this.records.length} SENDs (${kinds.map((k) => `${k} ${this.count(k)}`).join(', ')}), connections ${this.connects.join(' ')}`;
  }

  async #run(): Promise<void> {
    let seq = 0;
    while (this.#running) {
      let client = this.#client;
      if (client === undefined || client.closed) {
        try {
          client = await this.#o.connect();
          this.#client = client;
          this.connects.push(client.nodeId);
        } catch {
          await sleep(200);
          continue;
        }
      }
      const body = `${this.#o.prefix} ${seq}`;
      // Checked and written in the same turn: a SEND is recorded only if it went out on an open connection.
      if (client.closed) continue;
      const record: SendRecord = { seq, body, node: client.nodeId, sentAt: Date.now(), outcome: 'pending', settledAt: 0 };
      const sending = client.send(this.#o.destination, body, {}, this.#o.receiptTimeoutMs ?? 30_000);
      this.records.push(record);
      try {
        await sending;
        record.outcome = 'receipt';
      } catch (error) {
        record.outcome = error instanceof SendFailure ? error.kind : 'closed';
        if (record.outcome === 'timeout') client.destroy();
      }
      if (record.outcome === 'receipt' || record.outcome === 'timeout' || this.#o.resendUnanswered !== true) seq++;
      record.settledAt = Date.now();
      if (this.#o.intervalMs !== undefined && this.#o.intervalMs > 0) await sleep(this.#o.intervalMs);
    }
    await this.#client?.close().catch(() => undefined);
  }
}

/** `<prefix> <seq>` → seq. */
export function seqOf(body: string): number {
  return Number(body.slice(body.lastIndexOf(' ') + 1));
}
