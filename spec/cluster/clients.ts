/**
 * Real STOMP clients for the cluster specs, behind one small interface so a scenario can mix them:
 *
 * - `StompitClient`: stompit 1.0.0 over TCP (as spec/interop/stompit.spec.ts uses it: SUBSCRIBE with a receipt is
 *   sent by hand with `setImplicitSubscription`, since stompit's subscribe() cannot ask for one).
 * - `StompjsClient`: @stomp/stompjs 7 over WebSocket (the `ws` package), receipts through `watchForReceipt`.
 *
 * Every SEND made with `send()` carries a receipt and settles exactly once: resolved by its RECEIPT, rejected with
 * a `SendFailure` saying whether an ERROR frame answered it (`error`) or the connection ended without an answer
 * (`closed`), or `timeout`. Tests that must prove "RECEIPT or ERROR, never silence" count these kinds.
 */
import { Client, type IFrame, type IMessage, type StompSubscription } from '@stomp/stompjs';
import stompit from 'stompit';
import { WebSocket } from 'ws';
import type { StompedeNode } from '../support/cluster.js';
import { within } from '../support/cluster.js';

export type Headers = Readonly<Record<string, string>>;

/** One MESSAGE as a client got it. */
export interface Received {
  readonly headers: Headers;
  readonly body: string;
  readonly at: number;
  /** The node of the client that got it. */
  readonly node: string;
  readonly client: StompClient;
  /** ACK / NACK with a receipt (client and client-individual subscriptions). */
  ack(): Promise<void>;
  nack(): Promise<void>;
}

export type FailureKind = 'error' | 'closed' | 'timeout';

/** Why a frame that asked for a receipt did not get one. */
export class SendFailure extends Error {
  readonly kind: FailureKind;
  constructor(kind: FailureKind, message: string) {
    super(message);
    this.name = 'SendFailure';
    this.kind = kind;
  }
}

/** Messages of one subscription, in arrival order, with waits on their count. */
export class Inbox {
  readonly messages: Received[] = [];
  #waiters: { test: () => boolean; resolve: () => void }[] = [];

  push(message: Received): void {
    this.messages.push(message);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test()) return true;
      w.resolve();
      return false;
    });
  }

  get length(): number {
    return this.messages.length;
  }

  /** Resolves once `test` holds (checked on every arrival). */
  until(test: () => boolean, ms: number, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    let waiter: { test: () => boolean; resolve: () => void } | undefined;
    const reached = new Promise<void>((resolve) => {
      waiter = { test, resolve };
      this.#waiters.push(waiter);
    });
    return within(reached, ms, `${what} (got ${this.messages.length})`).catch((error: unknown) => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      throw error;
    });
  }

  /** Resolves once at least `n` messages arrived. */
  count(n: number, ms: number, what = `${n} messages`): Promise<void> {
    return this.until(() => this.messages.length >= n, ms, what);
  }

  bodies(): string[] {
    return this.messages.map((m) => m.body);
  }
}

export interface Subscription {
  readonly id: string;
  readonly destination: string;
  readonly inbox: Inbox;
  unsubscribe(): Promise<void>;
}

export interface StompClient {
  readonly kind: 'stompit' | 'stompjs';
  readonly label: string;
  readonly node: StompedeNode;
  readonly nodeId: string;
  /** The `session` of CONNECTED. */
  readonly session: string;
  /** True once the connection ended (for any reason). */
  readonly closed: boolean;
  /** Resolves when the connection ends. */
  readonly ended: Promise<void>;
  /** `message` of every ERROR frame received, and transport errors. */
  readonly errors: string[];
  subscribe(destination: string, headers?: Headers): Promise<Subscription>;
  /** SEND with a receipt: resolves on the RECEIPT; rejects with a SendFailure. */
  send(destination: string, body: string, headers?: Headers, timeoutMs?: number): Promise<void>;
  /** SEND without a receipt. */
  publish(destination: string, body: string, headers?: Headers): void;
  /** DISCONNECT (with a receipt where the client library asks for one); destroys it if that takes too long. */
  close(): Promise<void>;
  destroy(): void;
}

let sequence = 0;
const next = (prefix: string): string => `${prefix}${(++sequence).toString(36)}`;

// ---- stompit over TCP ---------------------------------------------------------------------------------------------

export class StompitClient implements StompClient {
  readonly kind = 'stompit';
  readonly label: string;
  readonly node: StompedeNode;
  readonly nodeId: string;
  readonly errors: string[] = [];
  readonly ended: Promise<void>;
  closed = false;
  session = '';
  #client: stompit.Client;
  #pending = new Map<string, { resolve: () => void; reject: (e: SendFailure) => void }>();
  #receipts = 0;

  private constructor(node: StompedeNode, label: string, client: stompit.Client) {
    this.node = node;
    this.nodeId = node.id;
    this.label = label;
    this.#client = client;
    let ended: () => void = () => {};
    this.ended = new Promise<void>((resolve) => (ended = resolve));
    const finish = (failure: SendFailure): void => {
      if (this.closed) return;
      this.closed = true;
      for (const p of this.#pending.values()) p.reject(failure);
      this.#pending.clear();
      ended();
    };
    client.on('error', (error: Error & { isApplicationError?: () => boolean; longMessage?: string }) => {
      const application = error.isApplicationError?.() === true;
      this.errors.push(
        `${application ? 'ERROR frame' : 'transport'}: ${error.message}${error.longMessage !== undefined ? ` (${error.longMessage.trim()})` : ''}`,
      );
      // stompit loses the receipt-id of an ERROR frame; a client keeping one receipt in flight knows which it was.
      finish(new SendFailure(application ? 'error' : 'closed', `${label}: ${error.message}`));
    });
    client.on('end', () => finish(new SendFailure('closed', `${label}: connection ended`)));
    client.getTransportSocket().on('close', () => finish(new SendFailure('closed', `${label}: connection closed`)));
  }

  static async connect(node: StompedeNode, label = next(`stompit@${node.id}-`)): Promise<StompitClient> {
    let result: ((error: Error | null) => void) | undefined;
    const connected = new Promise<void>((resolve, reject) => {
      result = (error) => (error === null ? resolve() : reject(error));
    });
    // noDelay: stompit writes header, body and the NUL separately; with Nagle each frame would wait ~40 ms.
    const raw = stompit.connect({ host: '127.0.0.1', port: node.tcpPort, noDelay: true, timeout: 5_000 }, (error) => result?.(error));
    const client = new StompitClient(node, label, raw);
    raw.on('error', (error: Error) => result?.(error));
    await within(connected, 10_000, `${label} CONNECTED`);
    client.session = String(raw.headers.session ?? '');
    return client;
  }

  #withReceipt(
    command: string,
    headers: stompit.OutgoingHeaders,
    body: string | undefined,
    timeoutMs: number,
    frame?: (onReceipt: () => void) => void,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new SendFailure('closed', `${this.label}: ${command} on a closed connection`));
    const key = String(++this.#receipts);
    const done = new Promise<void>((resolve, reject) => this.#pending.set(key, { resolve, reject }));
    const onReceipt = (): void => {
      this.#pending.get(key)?.resolve();
      this.#pending.delete(key);
    };
    if (frame !== undefined) frame(onReceipt);
    else {
      const out = this.#client.sendFrame(command, headers, { onReceipt });
      if (body === undefined) out.end();
      else out.end(body);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SendFailure('timeout', `${this.label}: no RECEIPT for ${command} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([done, timeout]).finally(() => {
      clearTimeout(timer);
      this.#pending.delete(key);
    });
  }

  async subscribe(destination: string, headers: Headers = {}): Promise<Subscription> {
    const id = headers.id ?? next('s');
    const inbox = new Inbox();
    const ackMode = headers.ack ?? 'auto';
    this.#client.setImplicitSubscription(id, ackMode, (error, frame) => {
      if (error !== null || frame === undefined) return;
      frame.readString('utf8', (_e, body) => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(frame.headers)) if (v !== undefined) h[k] = String(v);
        inbox.push({
          headers: h,
          body: body ?? '',
          at: Date.now(),
          node: this.nodeId,
          client: this,
          ack: () => this.#withReceipt('ACK', {}, undefined, 10_000, (onReceipt) => this.#client.ack(frame, {}, { onReceipt })),
          nack: () => this.#withReceipt('NACK', {}, undefined, 10_000, (onReceipt) => this.#client.nack(frame, {}, { onReceipt })),
        });
      });
    });
    await this.#withReceipt('SUBSCRIBE', { ...headers, id, destination, ack: ackMode }, undefined, 20_000);
    return {
      id,
      destination,
      inbox,
      unsubscribe: () => this.#withReceipt('UNSUBSCRIBE', { id }, undefined, 10_000),
    };
  }

  send(destination: string, body: string, headers: Headers = {}, timeoutMs = 30_000): Promise<void> {
    return this.#withReceipt('SEND', { ...headers, destination }, body, timeoutMs);
  }

  publish(destination: string, body: string, headers: Headers = {}): void {
    if (this.closed) throw new SendFailure('closed', `${this.label}: SEND on a closed connection`);
    this.#client.send({ ...headers, destination }).end(body);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await within(new Promise<void>((resolve) => this.#client.disconnect(() => resolve())), 3_000, `${this.label} DISCONNECT`);
    } catch {
      this.destroy();
    }
    this.closed = true;
  }

  destroy(): void {
    this.#client.destroy();
  }
}

// ---- stompjs over WebSocket ---------------------------------------------------------------------------------------

export class StompjsClient implements StompClient {
  readonly kind = 'stompjs';
  readonly label: string;
  readonly node: StompedeNode;
  readonly nodeId: string;
  readonly errors: string[] = [];
  readonly ended: Promise<void>;
  session = '';
  #ended = false;
  /** An ERROR frame arrived: the broker closes the connection next and reads nothing more from it. */
  #errored = false;
  #client: Client;
  #pending = new Map<string, { resolve: () => void; reject: (e: SendFailure) => void }>();

  private constructor(node: StompedeNode, label: string, onConnect: (frame: IFrame) => void, onFail: (error: Error) => void) {
    this.node = node;
    this.nodeId = node.id;
    this.label = label;
    let ended: () => void = () => {};
    this.ended = new Promise<void>((resolve) => (ended = resolve));
    const finish = (): void => {
      if (this.#ended) return;
      this.#ended = true;
      for (const p of this.#pending.values()) p.reject(new SendFailure('closed', `${label}: connection closed without an answer`));
      this.#pending.clear();
      ended();
    };
    this.#client = new Client({
      webSocketFactory: () => new WebSocket(node.wsUrl, this.#client.stompVersions.protocolVersions()),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
      onConnect,
      onStompError: (frame) => {
        const message = frame.headers.message ?? 'ERROR';
        this.#errored = true;
        this.errors.push(`ERROR frame: ${message}${frame.body !== '' ? ` (${frame.body.trim()})` : ''}`);
        const id = frame.headers['receipt-id'];
        const pending = id === undefined ? undefined : this.#pending.get(id);
        if (id !== undefined && pending !== undefined) {
          this.#pending.delete(id);
          pending.reject(new SendFailure('error', `${label}: ERROR ${message}`));
        }
      },
      onWebSocketError: () => {
        this.errors.push('transport: websocket error');
        onFail(new Error(`${label}: websocket error`));
      },
      onWebSocketClose: () => {
        onFail(new Error(`${label}: websocket closed`));
        finish();
      },
    });
  }

  /** True once the connection ended, or an ERROR frame said it is about to (frames sent now get no answer). */
  get closed(): boolean {
    return this.#ended || this.#errored;
  }

  static async connect(node: StompedeNode, label = next(`stompjs@${node.id}-`)): Promise<StompjsClient> {
    let connected: (frame: IFrame) => void = () => {};
    let failed: (error: Error) => void = () => {};
    const ready = new Promise<IFrame>((resolve, reject) => {
      connected = resolve;
      failed = reject;
    });
    const client = new StompjsClient(
      node,
      label,
      (frame) => connected(frame),
      (error) => failed(error),
    );
    client.#client.activate();
    const frame = await within(ready, 10_000, `${label} CONNECTED`).catch(async (error: unknown) => {
      await client.#client.deactivate({ force: true });
      throw error;
    });
    client.session = frame.headers.session ?? '';
    return client;
  }

  #receipt(what: string, timeoutMs: number): { id: string; done: Promise<void> } {
    const id = next('r');
    if (this.closed) return { id, done: Promise.reject(new SendFailure('closed', `${this.label}: ${what} on a closed connection`)) };
    const done = new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#client.watchForReceipt(id, () => {
        this.#pending.get(id)?.resolve();
        this.#pending.delete(id);
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SendFailure('timeout', `${this.label}: no RECEIPT for ${what} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return {
      id,
      done: Promise.race([done, timeout]).finally(() => {
        clearTimeout(timer);
        this.#pending.delete(id);
      }),
    };
  }

  async subscribe(destination: string, headers: Headers = {}): Promise<Subscription> {
    const inbox = new Inbox();
    const r = this.#receipt('SUBSCRIBE', 20_000);
    const id = headers.id ?? next('s');
    const sub: StompSubscription = this.#client.subscribe(
      destination,
      (m: IMessage) => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers)) h[k] = String(v);
        inbox.push({
          headers: h,
          body: m.body,
          at: Date.now(),
          node: this.nodeId,
          client: this,
          ack: () => this.#settle(m, 'ack'),
          nack: () => this.#settle(m, 'nack'),
        });
      },
      { ...headers, id, receipt: r.id },
    );
    await r.done;
    return {
      id,
      destination,
      inbox,
      unsubscribe: async () => {
        const u = this.#receipt('UNSUBSCRIBE', 10_000);
        sub.unsubscribe({ receipt: u.id });
        await u.done;
      },
    };
  }

  async #settle(message: IMessage, kind: 'ack' | 'nack'): Promise<void> {
    const r = this.#receipt(kind.toUpperCase(), 10_000);
    message[kind]({ receipt: r.id });
    await r.done;
  }

  send(destination: string, body: string, headers: Headers = {}, timeoutMs = 30_000): Promise<void> {
    const r = this.#receipt('SEND', timeoutMs);
    if (!this.closed) this.#client.publish({ destination, body, headers: { ...headers, receipt: r.id } });
    return r.done;
  }

  publish(destination: string, body: string, headers: Headers = {}): void {
    if (this.closed) throw new SendFailure('closed', `${this.label}: SEND on a closed connection`);
    this.#client.publish({ destination, body, headers: { ...headers } });
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    try {
      await within(this.#client.deactivate(), 3_000, `${this.label} deactivate`);
    } catch {
      await this.#client.deactivate({ force: true });
    }
    this.#ended = true;
  }

  destroy(): void {
    void this.#client.deactivate({ force: true });
  }
}

// ---- bookkeeping --------------------------------------------------------------------------------------------------

/** Clients opened by a test, closed by `closeAll()` in afterEach whatever the test left behind. */
export class ClientPool {
  #clients: StompClient[] = [];

  async stompit(node: StompedeNode, label?: string): Promise<StompitClient> {
    const c = await StompitClient.connect(node, label);
    this.#clients.push(c);
    return c;
  }

  async stompjs(node: StompedeNode, label?: string): Promise<StompjsClient> {
    const c = await StompjsClient.connect(node, label);
    this.#clients.push(c);
    return c;
  }

  /** Errors every client of the pool saw, `label: message`. */
  errors(): string[] {
    return this.#clients.flatMap((c) => c.errors.map((e) => `${c.label}: ${e}`));
  }

  async closeAll(): Promise<void> {
    const clients = this.#clients.splice(0);
    await Promise.all(clients.map((c) => c.close().catch(() => c.destroy())));
  }
}

/** A topic's messages, checked against what was sent: every one exactly once, in order. Returns problems found. */
export function sequenceProblems(got: readonly string[], sent: readonly string[], what: string): string[] {
  const problems: string[] = [];
  const position = new Map(sent.map((b, i) => [b, i]));
  const seen = new Set<string>();
  let last = -1;
  let more = 0;
  for (const body of got) {
    const at = position.get(body);
    let problem: string | undefined;
    if (at === undefined) problem = `${what}: unexpected message "${body}"`;
    else if (seen.has(body)) problem = `${what}: duplicate "${body}"`;
    else if (at < last) problem = `${what}: "${body}" after "${sent[last]}" (out of order)`;
    if (problem !== undefined && problems.length < 10) problems.push(problem);
    else if (problem !== undefined) more++;
    if (at !== undefined) last = Math.max(last, at);
    seen.add(body);
  }
  if (more > 0) problems.push(`${what}: ${more} more duplicates or reorderings`);
  const missing = sent.filter((b) => !seen.has(b));
  if (missing.length > 0) problems.push(`${what}: ${missing.length} of ${sent.length} missing, first ${missing.slice(0, 5).join(', ')}`);
  return problems;
}
