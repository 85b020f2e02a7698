// A minimal, fast STOMP 1.2 client for load generation against any broker, over TCP (node:net) or
// WebSocket (ws, subprotocol v12.stomp). It deliberately shares no code with the broker's codec in frames/:
// the load generator is an independent second implementation of the wire format.
//
// Frame grammar it reads (STOMP 1.2 §Augmented BNF):
//   frame   = command EOL *( header EOL ) EOL *OCTET NULL *( EOL )
//   header  = header-name ":" header-value
//   EOL     = [CR] LF
// and, between frames, heart-beats: bare EOLs.

import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const BACKSLASH = 0x5c;

export interface StompFrame {
  readonly command: string;
  /**
   * First occurrence wins (STOMP 1.2 §Repeated Header Entries). Values are unescaped. A MESSAGE's headers are
   * decoded on first use (a malformed header line of a MESSAGE then throws here).
   */
  readonly headers: ReadonlyMap<string, string>;
  /** One header, without decoding the others (a MESSAGE's receiver needs `subscription` only). */
  header(name: string): string | undefined;
  /** A view into the receive buffer: valid only during the callback, copy it to keep it. */
  readonly body: Buffer;
}

export interface FrameSink {
  frame(frame: StompFrame): void;
  heartbeat(): void;
  error(err: Error): void;
}

export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Incremental frame reader: push Buffers in any chunking, get frames and heart-beats out. Reports one
 * error and then ignores further input. Scans with indexOf, copies only when a frame spans chunks.
 */
export class FrameReader {
  readonly #sink: FrameSink;
  readonly #maxFrameBytes: number;
  /** Unconsumed bytes; always starts at a frame boundary (or at heart-beat EOLs). */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Do not try to parse until this many bytes are pending (known content-length, or scan progress). */
  #needBytes = 0;
  /** Where the NUL scan of a body without content-length resumes, relative to the frame start. */
  #nulScanFrom = 0;
  #failed = false;

  constructor(sink: FrameSink, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.#sink = sink;
    this.#maxFrameBytes = maxFrameBytes;
  }

  push(chunk: Buffer): void {
    if (this.#failed || chunk.length === 0) return;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes < this.#needBytes) return;
    const buf = this.#pending.length === 1 ? chunk : Buffer.concat(this.#pending, this.#pendingBytes);
    const consumed = this.#parse(buf);
    if (this.#failed) return;
    if (consumed === buf.length) {
      this.#pending = [];
      this.#pendingBytes = 0;
    } else {
      const rest = buf.subarray(consumed);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
      if (rest.length > this.#maxFrameBytes) this.#fail(`frame exceeds ${this.#maxFrameBytes} bytes`);
    }
  }

  /** Parses as many whole frames as `buf` holds; returns how many bytes were consumed. */
  #parse(buf: Buffer): number {
    const len = buf.length;
    let pos = 0;
    // EOLs right after a frame in the same chunk are that frame's optional trailer (STOMP 1.2 §Augmented BNF),
    // not heart-beats; a heart-beat is an EOL that arrives on its own.
    let afterFrame = false;
    while (pos < len) {
      const b = buf[pos];
      if (b === LF) {
        pos++;
        if (!afterFrame) this.#sink.heartbeat();
        continue;
      }
      if (b === CR) {
        if (pos + 1 >= len) break;
        if (buf[pos + 1] !== LF) return this.#fail('CR not followed by LF between frames');
        pos += 2;
        if (!afterFrame) this.#sink.heartbeat();
        continue;
      }
      const start = pos;
      // Find the blank line that ends the headers, looking at bytes only.
      let lineStart = start;
      let headEnd = -1;
      while (lineStart < len) {
        const nl = buf.indexOf(LF, lineStart);
        if (nl < 0) break;
        if (nl === lineStart || (nl === lineStart + 1 && buf[lineStart] === CR)) {
          headEnd = lineStart;
          lineStart = nl + 1;
          break;
        }
        lineStart = nl + 1;
      }
      if (headEnd < 0) {
        this.#needBytes = len - start + 1;
        return start;
      }
      // A MESSAGE (nearly every frame of a run) keeps its header lines as bytes until asked: the receiver reads
      // `subscription` and the body only, and a load generator that decodes every header of every delivery is the
      // bottleneck of a fan-out before the broker is. Other frames are decoded and checked at once.
      let frame: ReceivedFrame;
      const head = buf.toString('utf8', start, headEnd);
      if (head.startsWith('MESSAGE\n') || head.startsWith('MESSAGE\r\n')) frame = new ReceivedFrame('MESSAGE', head, undefined);
      else {
        const decoded = decodeHead(head);
        if (typeof decoded === 'string') return this.#fail(decoded);
        frame = new ReceivedFrame(decoded.command, head, decoded.headers);
      }
      const command = frame.command;
      const bodyStart = lineStart;
      const contentLength = frame.header('content-length');
      let bodyEnd: number;
      if (contentLength !== undefined) {
        const n = Number(contentLength);
        if (!Number.isSafeInteger(n) || n < 0) return this.#fail(`bad content-length ${contentLength}`);
        if (bodyStart - start + n + 1 > this.#maxFrameBytes) return this.#fail(`frame exceeds ${this.#maxFrameBytes} bytes`);
        bodyEnd = bodyStart + n;
        if (bodyEnd >= len) {
          this.#needBytes = bodyEnd + 1 - start;
          return start;
        }
        if (buf[bodyEnd] !== NUL) return this.#fail(`${command} body is not followed by NUL at content-length ${n}`);
      } else {
        bodyEnd = buf.indexOf(NUL, Math.max(bodyStart, start + this.#nulScanFrom));
        if (bodyEnd < 0) {
          this.#nulScanFrom = len - start;
          this.#needBytes = len - start + 1;
          return start;
        }
      }
      this.#needBytes = 0;
      this.#nulScanFrom = 0;
      pos = bodyEnd + 1;
      afterFrame = true;
      frame.body = buf.subarray(bodyStart, bodyEnd);
      this.#sink.frame(frame);
      if (this.#failed) return pos;
    }
    this.#needBytes = 0;
    return pos;
  }

  #fail(message: string): number {
    if (!this.#failed) {
      this.#failed = true;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#sink.error(new Error(`STOMP parse error: ${message}`));
    }
    return 0;
  }
}

/**
 * The command and header lines of a frame, decoded with one toString and split as a string (one native call per
 * frame instead of two per header); a string says what is malformed.
 */
function decodeHead(head: string): { command: string; headers: Map<string, string> } | string {
  let p = head.indexOf('\n');
  const command = head.slice(0, p > 0 && head.charCodeAt(p - 1) === CR ? p - 1 : p);
  const headers = new Map<string, string>();
  const escaped = command !== 'CONNECTED'; // STOMP 1.2 §Value Encoding: never for CONNECT/CONNECTED
  p++;
  while (p < head.length) {
    const nl = head.indexOf('\n', p);
    const end = nl > p && head.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
    const colon = head.indexOf(':', p);
    if (colon < 0 || colon >= end) return `header line without ':' in ${command}`;
    let name: string | undefined = head.slice(p, colon);
    if (escaped && name.includes('\\')) name = unescape(name);
    if (name === undefined) return `undefined escape in a header name of ${command}`;
    if (!headers.has(name)) {
      let value: string | undefined = head.slice(colon + 1, end);
      if (escaped && value.includes('\\')) value = unescape(value);
      if (value === undefined) return `undefined escape in header ${name} of ${command}`;
      headers.set(name, value);
    }
    p = nl + 1;
  }
  return { command, headers };
}

const EMPTY = Buffer.alloc(0);

/** `\n<name>:`, per header name asked for (a handful in a run). */
const NEEDLES = new Map<string, string>();

class ReceivedFrame implements StompFrame {
  readonly command: string;
  body: Buffer = EMPTY;
  /** The command and header lines, decoded (one toString per frame). */
  readonly #head: string;
  #headers: Map<string, string> | undefined;

  constructor(command: string, head: string, headers: Map<string, string> | undefined) {
    this.command = command;
    this.#head = head;
    this.#headers = headers;
  }

  get headers(): ReadonlyMap<string, string> {
    if (this.#headers === undefined) {
      const decoded = decodeHead(this.#head);
      if (typeof decoded === 'string') throw new Error(`STOMP parse error: ${decoded}`);
      this.#headers = decoded.headers;
    }
    return this.#headers;
  }

  header(name: string): string | undefined {
    if (this.#headers !== undefined) return this.#headers.get(name);
    let needle = NEEDLES.get(name);
    if (needle === undefined) NEEDLES.set(name, (needle = `\n${name}:`));
    // The first line that starts with the name: the first occurrence wins. A value never holds a raw LF.
    const head = this.#head;
    const at = head.indexOf(needle);
    if (at < 0) return undefined;
    const from = at + needle.length;
    let end = head.indexOf('\n', from);
    if (end < 0) end = head.length;
    if (end > from && head.charCodeAt(end - 1) === CR) end--;
    const raw = head.slice(from, end);
    if (!raw.includes('\\')) return raw;
    const value = unescape(raw);
    if (value === undefined) throw new Error(`STOMP parse error: undefined escape in header ${name} of ${this.command}`);
    return value;
  }
}

/** STOMP 1.2 §Value Encoding, decoding in one pass; undefined for an undefined escape (fatal, S5). */
function unescape(raw: string): string | undefined {
  let out = '';
  let from = 0;
  for (let i = raw.indexOf('\\'); i >= 0; i = raw.indexOf('\\', from)) {
    const e = raw.charCodeAt(i + 1);
    const c = e === 0x6e ? '\n' : e === 0x72 ? '\r' : e === 0x63 ? ':' : e === BACKSLASH ? '\\' : undefined;
    if (c === undefined) return undefined;
    out += raw.slice(from, i) + c;
    from = i + 2;
  }
  return out + raw.slice(from);
}

const ESCAPE_RE = /[\\\r\n:]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\r': '\\r', '\n': '\\n', ':': '\\c' };

function escapeValue(value: string): string {
  return value.replace(ESCAPE_RE, (c) => ESCAPES[c] ?? c);
}

export type HeaderList = ReadonlyArray<readonly [string, string]>;
const NO_HEADERS: HeaderList = Object.freeze([]);

/**
 * Encodes one frame. A string body is sent as a string (one write, text WebSocket message); SEND and
 * other frames with a body get a content-length. CONNECT headers are not escaped (STOMP 1.2 §Value Encoding).
 */
export function encodeFrame(command: string, headers: HeaderList, body?: string | Buffer): string | Buffer {
  const escaped = command !== 'CONNECT' && command !== 'STOMP';
  let head = command + '\n';
  for (const [name, value] of headers) {
    head += escaped ? `${escapeValue(name)}:${escapeValue(value)}\n` : `${name}:${value}\n`;
  }
  if (body === undefined || body.length === 0) return head + '\n\0';
  if (typeof body === 'string') {
    return `${head}content-length:${Buffer.byteLength(body)}\n\n${body}\0`;
  }
  head += `content-length:${body.length}\n\n`;
  return Buffer.concat([Buffer.from(head), body, Buffer.from([NUL])]);
}

export type AckMode = 'auto' | 'client' | 'client-individual';

export interface ClientOptions {
  /** tcp://host:port or ws://host:port/path */
  readonly url: string;
  readonly login?: string | undefined;
  readonly passcode?: string | undefined;
  /** The CONNECT `host` header (a virtual host name for brokers that have them). */
  readonly host?: string;
  /** [cx, cy] in ms: what we can send, what we want to receive. 0,0 by default. */
  readonly heartbeat?: readonly [number, number];
  readonly connectTimeoutMs?: number;
  /** How many server heart-beat periods of silence mean the connection is dead. */
  readonly heartbeatGrace?: number;
  /** Called with every raw chunk in and out, for interop debugging. */
  readonly trace?: (direction: 'in' | 'out', data: string | Buffer) => void;
}

export interface SubscribeOptions {
  readonly id?: string;
  readonly ack?: AckMode;
  readonly prefetchCount?: number;
  readonly headers?: HeaderList;
  /** Wait for a RECEIPT, so that the subscription is known to be active when the promise resolves. */
  readonly receipt?: boolean;
}

export type MessageHandler = (frame: StompFrame) => void;

/** The reason a client closed, as given to onClose. */
export interface CloseInfo {
  readonly reason: 'local' | 'remote' | 'error' | 'heartbeat-timeout';
  readonly error?: Error;
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

/** Transport-neutral byte pipe. */
interface Pipe {
  write(data: string | Buffer): void;
  end(): void;
  destroy(): void;
}

export class StompClientError extends Error {
  /** The ERROR frame, when the broker sent one. */
  readonly frame: StompFrame | undefined;
  constructor(message: string, frame?: StompFrame, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StompClientError';
    this.frame = frame;
  }
}

export function describeError(frame: StompFrame): string {
  const message = frame.headers.get('message') ?? '';
  const body = frame.body.toString('utf8').trim();
  return `ERROR ${JSON.stringify(message)}${body ? ` ${JSON.stringify(body.slice(0, 500))}` : ''}`;
}

let nextClientId = 0;

export class StompClient {
  readonly id = ++nextClientId;
  /** Bare EOLs received (server heart-beats). */
  heartbeatsReceived = 0;
  /** The negotiated heart-beat periods in ms (0 = none), known once CONNECTED arrived. */
  negotiatedHeartbeat: { readonly sendMs: number; readonly receiveMs: number } = { sendMs: 0, receiveMs: 0 };
  /** The CONNECTED frame's headers. */
  connectedHeaders: ReadonlyMap<string, string> = new Map();
  onError: (err: StompClientError) => void = () => {};
  onClose: (info: CloseInfo) => void = () => {};
  /** Called for a MESSAGE whose subscription has no handler (or an unknown subscription). */
  onUnroutedMessage: MessageHandler = () => {};

  readonly #options: ClientOptions;
  readonly #reader: FrameReader;
  #pipe: Pipe | undefined;
  #corked = false;
  #socket: Socket | undefined;
  #closed = false;
  #connected = false;
  #connectWaiter: Pending | undefined;
  readonly #receipts = new Map<string, Pending>();
  #nextReceipt = 0;
  #nextSub = 0;
  readonly #handlers = new Map<string, MessageHandler>();
  readonly #sendHeads = new Map<string, string>();
  readonly #receiptHeads = new Map<string, string>();
  #lastReadMs = 0;
  #lastWriteMs = 0;
  #sendTimer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;

  private constructor(options: ClientOptions) {
    this.#options = options;
    this.#reader = new FrameReader({
      frame: (frame) => this.#onFrame(frame),
      heartbeat: () => {
        this.heartbeatsReceived++;
      },
      error: (err) => this.#fatal(new StompClientError(err.message, undefined, { cause: err })),
    });
  }

  /** Opens the transport, sends CONNECT and resolves on CONNECTED; rejects on ERROR, close or timeout. */
  static connect(options: ClientOptions): Promise<StompClient> {
    const client = new StompClient(options);
    return client.#open().then(() => client);
  }

  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  #open(): Promise<void> {
    const url = new URL(this.#options.url);
    const timeoutMs = this.#options.connectTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fatal(new StompClientError(`no CONNECTED within ${timeoutMs} ms from ${this.#options.url}`));
      }, timeoutMs);
      this.#connectWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      if (url.protocol === 'tcp:' || url.protocol === 'stomp:') this.#openTcp(url);
      else if (url.protocol === 'ws:') this.#openWs(url);
      else this.#fatal(new StompClientError(`unsupported URL scheme ${url.protocol} (use tcp:// or ws://)`));
    });
  }

  #openTcp(url: URL): void {
    const socket = netConnect({ host: url.hostname, port: Number(url.port || 61613) });
    this.#socket = socket;
    socket.setNoDelay(true);
    const trace = this.#options.trace;
    this.#pipe = {
      write: (data) => {
        if (trace) trace('out', data);
        // Batch every frame written in one tick into one writev.
        if (!this.#corked) {
          this.#corked = true;
          socket.cork();
          process.nextTick(() => {
            this.#corked = false;
            socket.uncork();
          });
        }
        socket.write(data);
      },
      end: () => socket.end(),
      destroy: () => socket.destroy(),
    };
    socket.on('connect', () => this.#sendConnect());
    socket.on('data', (chunk: Buffer) => {
      if (trace) trace('in', chunk);
      this.#lastReadMs = performance.now();
      this.#reader.push(chunk);
    });
    socket.on('error', (err) => this.#fatal(new StompClientError(`socket error: ${err.message}`, undefined, { cause: err })));
    socket.on('close', () => this.#closedBy('remote'));
  }

  #openWs(url: URL): void {
    const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
    const trace = this.#options.trace;
    this.#pipe = {
      write: (data) => {
        if (trace) trace('out', data);
        // A string goes out as a text message (RabbitMQ's ws_frame default is text), a Buffer as binary.
        ws.send(data, { binary: typeof data !== 'string' });
      },
      end: () => ws.close(1000),
      destroy: () => ws.terminate(),
    };
    ws.on('open', () => this.#sendConnect()); // ws sets TCP_NODELAY on its socket itself
    ws.on('message', (data: WebSocket.RawData) => {
      const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (trace) trace('in', chunk);
      this.#lastReadMs = performance.now();
      this.#reader.push(chunk);
    });
    ws.on('error', (err) => this.#fatal(new StompClientError(`websocket error: ${err.message}`, undefined, { cause: err })));
    ws.on('close', () => this.#closedBy('remote'));
  }

  #sendConnect(): void {
    const o = this.#options;
    const [cx, cy] = o.heartbeat ?? [0, 0];
    const headers: Array<[string, string]> = [
      ['accept-version', '1.2'],
      ['host', o.host ?? '/'],
      ['heart-beat', `${cx},${cy}`],
    ];
    if (o.login !== undefined) headers.push(['login', o.login]);
    if (o.passcode !== undefined) headers.push(['passcode', o.passcode]);
    this.#write(encodeFrame('CONNECT', headers));
  }

  #write(data: string | Buffer): void {
    if (this.#closed || !this.#pipe) return;
    this.#lastWriteMs = performance.now();
    this.#pipe.write(data);
  }

  #onFrame(frame: StompFrame): void {
    switch (frame.command) {
      case 'MESSAGE': {
        const sub = frame.header('subscription');
        const handler = sub === undefined ? undefined : this.#handlers.get(sub);
        if (handler) handler(frame);
        else this.onUnroutedMessage(frame);
        return;
      }
      case 'RECEIPT': {
        const id = frame.header('receipt-id');
        const pending = id === undefined ? undefined : this.#receipts.get(id);
        if (id !== undefined && pending) {
          this.#receipts.delete(id);
          pending.resolve();
        }
        return;
      }
      case 'CONNECTED':
        this.#onConnected(frame);
        return;
      case 'ERROR': {
        const err = new StompClientError(describeError(frame), frame);
        const receiptId = frame.headers.get('receipt-id');
        const pending = receiptId === undefined ? undefined : this.#receipts.get(receiptId);
        if (receiptId !== undefined && pending) {
          this.#receipts.delete(receiptId);
          pending.reject(err);
        }
        this.#fatal(err); // STOMP 1.2: the server closes after ERROR
        return;
      }
      default:
        this.#fatal(new StompClientError(`unexpected ${frame.command} frame from the server`, frame));
    }
  }

  #onConnected(frame: StompFrame): void {
    this.connectedHeaders = frame.headers;
    this.#connected = true;
    // STOMP 1.2 §Heart-beating
    const [cx, cy] = this.#options.heartbeat ?? [0, 0];
    const [sx, sy] = parseHeartbeat(frame.headers.get('heart-beat'));
    const sendEvery = cx > 0 && sy > 0 ? Math.max(cx, sy) : 0;
    const expectEvery = sx > 0 && cy > 0 ? Math.max(sx, cy) : 0;
    this.negotiatedHeartbeat = { sendMs: sendEvery, receiveMs: expectEvery };
    const now = performance.now();
    this.#lastReadMs = now;
    this.#lastWriteMs = now;
    if (sendEvery > 0) {
      this.#sendTimer = setInterval(() => {
        if (performance.now() - this.#lastWriteMs >= sendEvery * 0.5) this.#write('\n');
      }, sendEvery / 2);
    }
    if (expectEvery > 0) {
      const grace = this.#options.heartbeatGrace ?? 2;
      this.#watchTimer = setInterval(() => {
        if (performance.now() - this.#lastReadMs > expectEvery * grace) {
          this.#finish({
            reason: 'heartbeat-timeout',
            error: new StompClientError(`no data from the server for ${grace}x${expectEvery} ms`),
          });
        }
      }, expectEvery);
    }
    const waiter = this.#connectWaiter;
    this.#connectWaiter = undefined;
    waiter?.resolve();
  }

  /** Subscribes; returns the subscription id (resolves once the RECEIPT arrived, if `receipt` was asked). */
  async subscribe(destination: string, onMessage: MessageHandler, options: SubscribeOptions = {}): Promise<string> {
    const id = options.id ?? `sub-${this.id}-${++this.#nextSub}`;
    const headers: Array<readonly [string, string]> = [
      ['id', id],
      ['destination', destination],
      ['ack', options.ack ?? 'auto'],
    ];
    if (options.prefetchCount !== undefined) headers.push(['prefetch-count', String(options.prefetchCount)]);
    if (options.headers) headers.push(...options.headers);
    this.#handlers.set(id, onMessage);
    if (options.receipt) {
      await this.#withReceipt('SUBSCRIBE', headers);
    } else {
      this.#write(encodeFrame('SUBSCRIBE', headers));
    }
    return id;
  }

  unsubscribe(id: string): void {
    this.#handlers.delete(id);
    this.#write(encodeFrame('UNSUBSCRIBE', [['id', id]]));
  }

  /** SEND without a receipt. `body` as a string is sent as-is with its UTF-8 content-length. */
  send(destination: string, body: string | Buffer, headers: HeaderList = NO_HEADERS): void {
    if (headers.length === 0 && typeof body === 'string' && body.length > 0) {
      // The hot path of every publisher: the escaped head of the frame is built once per destination.
      let head = this.#sendHeads.get(destination);
      if (head === undefined) {
        head = `SEND\ndestination:${escapeValue(destination)}\ncontent-length:`;
        this.#sendHeads.set(destination, head);
      }
      this.#write(`${head}${Buffer.byteLength(body)}\n\n${body}\0`);
      return;
    }
    this.#write(encodeFrame('SEND', [['destination', destination], ...headers], body));
  }

  /** SEND with a receipt; resolves when the broker confirms it. */
  sendWithReceipt(destination: string, body: string | Buffer, headers: HeaderList = NO_HEADERS): Promise<void> {
    if (headers.length === 0 && typeof body === 'string' && body.length > 0) {
      // The hot path of the `receipts` scenario: the escaped destination line is built once per destination.
      let head = this.#receiptHeads.get(destination);
      if (head === undefined) {
        head = `SEND\ndestination:${escapeValue(destination)}\nreceipt:`;
        this.#receiptHeads.set(destination, head);
      }
      const receipt = `r-${this.id}-${++this.#nextReceipt}`;
      return new Promise<void>((resolve, reject) => {
        if (this.#closed) {
          reject(new StompClientError('connection closed before SEND'));
          return;
        }
        this.#receipts.set(receipt, { resolve, reject });
        this.#write(`${head}${receipt}\ncontent-length:${Buffer.byteLength(body)}\n\n${body}\0`);
      });
    }
    return this.#withReceipt('SEND', [['destination', destination], ...headers], body);
  }

  /** ACK a MESSAGE by its `ack` header (STOMP 1.2 §ACK). */
  ack(message: StompFrame): void {
    const id = message.headers.get('ack');
    if (id === undefined) {
      this.#fatal(new StompClientError('MESSAGE has no ack header, cannot ACK it (STOMP 1.2 requires one in client ack modes)', message));
      return;
    }
    this.#write(encodeFrame('ACK', [['id', id]]));
  }

  nack(message: StompFrame): void {
    const id = message.headers.get('ack');
    if (id !== undefined) this.#write(encodeFrame('NACK', [['id', id]]));
  }

  /** Sends a bare EOL (a heart-beat); for tests. */
  heartbeat(): void {
    this.#write('\n');
  }

  /** Graceful: DISCONNECT with a receipt, wait for it (bounded), then close the transport. */
  async disconnect(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    if (this.#connected) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      try {
        await Promise.race([this.#withReceipt('DISCONNECT', []), timeout]);
      } catch {
        // The broker may close right after the receipt (or instead of it); either way we are done.
      } finally {
        clearTimeout(timer);
      }
    }
    this.#finish({ reason: 'local' });
  }

  /** Abrupt close, no DISCONNECT. */
  destroy(): void {
    this.#finish({ reason: 'local' });
  }

  #withReceipt(command: string, headers: HeaderList, body?: string | Buffer): Promise<void> {
    const receipt = `r-${this.id}-${++this.#nextReceipt}`;
    return new Promise<void>((resolve, reject) => {
      if (this.#closed) {
        reject(new StompClientError(`connection closed before ${command}`));
        return;
      }
      this.#receipts.set(receipt, { resolve, reject });
      this.#write(encodeFrame(command, [...headers, ['receipt', receipt]], body));
    });
  }

  #fatal(err: StompClientError): void {
    if (this.#closed) return;
    this.onError(err);
    this.#finish({ reason: 'error', error: err });
  }

  #closedBy(reason: 'remote'): void {
    if (this.#closed) return;
    this.#finish({ reason, error: new StompClientError('connection closed by the server') });
  }

  #finish(info: CloseInfo): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sendTimer);
    clearInterval(this.#watchTimer);
    const err = info.error ?? new StompClientError('connection closed');
    const waiter = this.#connectWaiter;
    this.#connectWaiter = undefined;
    waiter?.reject(err);
    for (const pending of this.#receipts.values()) pending.reject(err);
    this.#receipts.clear();
    if (info.reason === 'local') this.#pipe?.end();
    else this.#pipe?.destroy();
    // A half-closed TCP socket must not linger if the server never closes its side.
    if (this.#socket) {
      const socket = this.#socket;
      setTimeout(() => socket.destroy(), 1000).unref();
    }
    this.onClose(info);
  }
}

function parseHeartbeat(value: string | undefined): [number, number] {
  if (value === undefined) return [0, 0];
  const [a, b] = value.split(',');
  const x = Number(a);
  const y = Number(b);
  return [Number.isFinite(x) && x > 0 ? x : 0, Number.isFinite(y) && y > 0 ? y : 0];
}
