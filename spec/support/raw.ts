/**
 * Raw STOMP test clients: they send exactly the bytes a test gives them, and read what the broker sends with the
 * project's own FrameParser while keeping every byte, so a spec can assert the wire image of each frame.
 *
 * - `RawClient.tcp(port)` speaks over node:net (Nagle off, so each `send` leaves as it is written).
 * - `RawClient.ws(url, protocols)` speaks over a WebSocket (`ws`), and also records each inbound message with its
 *   opcode, so specs can check message boundaries and text/binary choice.
 *
 * Attribution of raw bytes: a frame can only end on a NUL and a heart-beat only on an LF, so input is pushed to the
 * parser in pieces cut after every NUL and LF; whatever the parser reports at the end of a piece owns every byte
 * pushed since the previous report.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { FrameParser, VERSIONS, type Frame, type FrameError, type FrameLimits, type StompVersion } from '../../frames/index.js';

/** A frame as the broker sent it: the parsed view plus its exact bytes (command line through the NUL). */
export interface RawFrame extends Frame {
  readonly raw: Buffer;
  /** When it was parsed (Date.now()). */
  readonly at: number;
}

/** One inbound WebSocket message as it arrived. */
export interface WsMessage {
  readonly data: Buffer;
  readonly binary: boolean;
}

/** The client never refuses what the broker sends: limits are the broker's business, not the test's. */
const UNLIMITED: FrameLimits = Object.freeze({
  maxFrameBytes: 2 ** 31,
  maxBodyBytes: 2 ** 31,
  maxHeaders: 2 ** 31,
  maxHeaderLineBytes: 2 ** 31,
});

const LF = 0x0a;
const NUL = 0x00;

type Waiter = { resolve: (frame: RawFrame) => void; reject: (error: Error) => void; timer: NodeJS.Timeout };

export abstract class RawClient {
  /** Every frame received, in order. */
  readonly frames: RawFrame[] = [];
  /** Arrival time of every heart-beat EOL received between frames. */
  readonly heartbeats: number[] = [];
  /** Set when the broker's bytes could not be parsed; nextFrame rejects from then on. */
  parseError: FrameError | undefined;
  /** True once the peer (the broker) ended the connection, false when the test closed it first. */
  closedByServer = false;

  #chunks: Buffer[] = [];
  #sinceEvent: Buffer[] = [];
  #unread: RawFrame[] = [];
  #waiters: Waiter[] = [];
  #isClosed = false;
  #closeWaiters: (() => void)[] = [];
  #parser: FrameParser;

  protected constructor() {
    this.#parser = new FrameParser(
      {
        frame: (frame) => this.#onFrame(frame),
        heartbeat: () => {
          this.#sinceEvent = [];
          this.heartbeats.push(Date.now());
        },
        error: (error) => this.#onParseError(error),
      },
      UNLIMITED,
    );
  }

  /** A TCP client connected to 127.0.0.1:port. */
  static tcp(port: number, host = '127.0.0.1'): Promise<TcpRawClient> {
    return TcpRawClient.open(port, host);
  }

  /** A WebSocket client; `protocols` are the subprotocols offered in the handshake (none when omitted). */
  static ws(url: string, protocols?: string | string[]): Promise<WsRawClient> {
    return WsRawClient.open(url, protocols);
  }

  /** Escaping the client's parser applies to the broker's frames; follows CONNECTED `version` automatically. */
  get version(): StompVersion {
    return this.#parser.version;
  }

  set version(version: StompVersion) {
    this.#parser.version = version;
  }

  /** Every byte received so far. */
  get rawBytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Sends bytes exactly as given (a string as UTF-8). */
  abstract send(data: string | Buffer): void;

  /** Closes from the client side at once; safe to call more than once and after the server closed. */
  abstract close(): void;

  /** The next frame not yet returned, waiting up to `timeoutMs` for it. Heart-beats are skipped (see `heartbeats`). */
  nextFrame(timeoutMs = 2000): Promise<RawFrame> {
    const ready = this.#unread.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.parseError !== undefined) return Promise.reject(new Error(`broker bytes did not parse: ${this.parseError.message}`));
    if (this.#isClosed) return Promise.reject(new Error('connection closed and no frame is left to read'));
    return new Promise<RawFrame>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(new Error(`no frame within ${timeoutMs} ms (received so far: ${JSON.stringify(this.rawBytes.toString('latin1'))})`));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Puts frames already taken back in front of the unread ones, in the given order. */
  unread(...frames: RawFrame[]): void {
    this.#unread.unshift(...frames);
  }

  /** Resolves once no frame arrived for `ms`; rejects with the frame if one does. */
  async noFrame(ms: number): Promise<void> {
    let frame: RawFrame | undefined;
    try {
      frame = await this.nextFrame(ms);
    } catch {
      return;
    }
    throw new Error(`expected no frame, got ${JSON.stringify(frame.raw.toString('latin1'))}`);
  }

  /** Resolves when the connection has closed (by either side); rejects after `timeoutMs`. */
  closed(timeoutMs = 2000): Promise<void> {
    if (this.#isClosed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.#closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Bytes from the transport, in any split. */
  protected received(chunk: Buffer): void {
    this.#chunks.push(chunk);
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === NUL || b === LF) {
        this.#push(chunk.subarray(from, i + 1));
        from = i + 1;
      }
    }
    if (from < chunk.length) this.#push(chunk.subarray(from));
  }

  /** The transport closed; `byServer` when the broker ended it. */
  protected ended(byServer: boolean): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.closedByServer = byServer;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`connection closed while waiting for a frame (received: ${JSON.stringify(this.rawBytes.toString('latin1'))})`));
    }
    for (const done of this.#closeWaiters.splice(0)) done();
  }

  #push(piece: Buffer): void {
    this.#sinceEvent.push(piece);
    this.#parser.push(piece);
  }

  #onFrame(frame: Frame): void {
    const raw = Buffer.concat(this.#sinceEvent);
    this.#sinceEvent = [];
    const rawFrame: RawFrame = { command: frame.command, headers: frame.headers, body: Buffer.from(frame.body), raw, at: Date.now() };
    if (frame.command === 'CONNECTED') {
      const v = frame.headers.get('version');
      // STOMP 1.2 §Value Encoding: what follows CONNECTED is escaped by the negotiated version's rules.
      this.#parser.version = (VERSIONS as readonly string[]).includes(v ?? '') ? (v as StompVersion) : '1.0';
    }
    this.frames.push(rawFrame);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      waiter.resolve(rawFrame);
    } else {
      this.#unread.push(rawFrame);
    }
  }

  #onParseError(error: FrameError): void {
    this.parseError = error;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`broker bytes did not parse: ${error.message}`));
    }
  }
}

export class TcpRawClient extends RawClient {
  readonly socket: Socket;
  #closing = false;

  private constructor(socket: Socket) {
    super();
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('end', () => {
      if (!this.#closing) this.closedByServer = true;
    });
    socket.on('close', () => this.ended(!this.#closing));
    socket.on('error', () => {});
  }

  static open(port: number, host: string): Promise<TcpRawClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new TcpRawClient(socket));
      });
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Stops reading: the broker's writes back up into the kernel buffers and then into its own (slow consumer). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Half-closes: sends FIN after what was written, keeps reading. */
  end(): void {
    this.socket.end();
  }

  close(): void {
    if (this.isClosed) return;
    this.#closing = true;
    this.socket.destroy();
  }
}

export class WsRawClient extends RawClient {
  readonly ws: WebSocket;
  /** Every inbound WebSocket message with its opcode. */
  readonly messages: WsMessage[] = [];
  /** The close code the broker sent, once closed. */
  closeCode: number | undefined;
  #closing = false;

  private constructor(ws: WebSocket) {
    super();
    this.ws = ws;
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const buffer = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.messages.push({ data: buffer, binary: isBinary });
      this.received(buffer);
    });
    ws.on('close', (code: number) => {
      this.closeCode = code;
      this.ended(!this.#closing);
    });
    ws.on('error', () => {});
  }

  static open(url: string, protocols?: string | string[]): Promise<WsRawClient> {
    return new Promise((resolve, reject) => {
      const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new WsRawClient(ws));
      });
    });
  }

  /** The subprotocol the broker chose ('' for none). */
  get protocol(): string {
    return this.ws.protocol;
  }

  /** One WebSocket message: text for a string, binary for a Buffer, unless `binary` says otherwise. */
  send(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  close(): void {
    if (this.isClosed) return;
    this.#closing = true;
    this.ws.terminate();
  }
}

// ---- building client frames ------------------------------------------------------------------------------------

export type HeaderList = ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>;

/**
 * The bytes of a frame exactly as given: no escaping, no content-length added, LF line ends, NUL at the end.
 * Header order is kept, repeats included (pass a list for repeats).
 */
export function stompFrame(command: string, headers: HeaderList = [], body: string | Buffer = ''): Buffer {
  const list = Array.isArray(headers) ? (headers as ReadonlyArray<readonly [string, string]>) : Object.entries(headers);
  let head = command + '\n';
  for (const [name, value] of list) head += `${name}:${value}\n`;
  head += '\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), typeof body === 'string' ? Buffer.from(body, 'utf8') : body, Buffer.from([0])]);
}

/** Sends CONNECT (1.2 with host localhost unless told otherwise) and returns the CONNECTED frame. */
export async function connect(client: RawClient, headers: HeaderList = { 'accept-version': '1.2', host: 'localhost' }): Promise<RawFrame> {
  client.send(stompFrame('CONNECT', headers));
  const reply = await client.nextFrame();
  if (reply.command !== 'CONNECTED') throw new Error(`expected CONNECTED, got ${JSON.stringify(reply.raw.toString('latin1'))}`);
  return reply;
}

/** A connected TCP client. */
export async function connectedTcp(port: number, headers?: HeaderList): Promise<TcpRawClient> {
  const client = await RawClient.tcp(port);
  try {
    await connect(client, headers);
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}
