import type { IncomingMessage } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import type { Connection, ConnectionAcceptor, ConnectionHandler } from '../connection.js';

/** The subprotocols we speak, best first; `stomp` is what some older clients offer (ActiveMQ accepts it too). */
const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp', 'stomp'];

/** Echo the best STOMP subprotocol offered; with none we still accept (stomp.py and Spring offer none). */
export function chooseSubprotocol(offered: Set<string>): string | false {
  for (const p of SUBPROTOCOLS) if (offered.has(p)) return p;
  return false;
}

/**
 * STOMP over WebSocket: exactly one whole frame per message (stomp.js cannot reassemble split frames), text when
 * the frame is valid UTF-8 and binary otherwise.
 */
export class WsConnection implements Connection {
  readonly transport: 'ws' | 'wss';
  readonly remoteAddress: string;
  #ws: WebSocket;
  #highWater: number;
  #maxPayloadBytes: number;
  #onDrain: () => void;
  #waitingForDrain = false;
  #afterSend = (): void => {
    if (this.#waitingForDrain && this.#ws.bufferedAmount < this.#highWater / 2) {
      this.#waitingForDrain = false;
      this.#onDrain();
    }
  };

  constructor(
    ws: WebSocket,
    transport: 'ws' | 'wss',
    remoteAddress: string,
    highWater: number,
    maxPayloadBytes: number,
    onDrain: () => void,
  ) {
    this.#ws = ws;
    this.#maxPayloadBytes = maxPayloadBytes;
    this.transport = transport;
    this.remoteAddress = remoteAddress;
    this.#highWater = highWater;
    this.#onDrain = onDrain;
  }

  writeFrame(pieces: readonly Buffer[], utf8: boolean): void {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    const data = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
    // A completion callback only while we are above the high-water mark: that is when a drain matters.
    if (ws.bufferedAmount > this.#highWater) {
      this.#waitingForDrain = true;
      ws.send(data, { binary: !utf8 }, this.#afterSend);
    } else {
      ws.send(data, { binary: !utf8 });
    }
  }

  get bufferedBytes(): number {
    return this.#ws.bufferedAmount;
  }

  end(): void {
    // The close frame is queued after everything already sent, so the peer reads our last frames first.
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000);
  }

  destroy(): void {
    this.#ws.terminate();
  }

  /** From here on a message may be as large as an authenticated client's frames allow. */
  authenticated(): void {
    setMaxPayload(this.#ws, this.#maxPayloadBytes);
  }
}

/**
 * The message size a WebSocket accepts from now on. ws has no public API to change it per connection, so this
 * sets its Receiver's `_maxPayload`, which ws checks against each frame's length field before it buffers the
 * payload. spec/security/websocket-limits.spec.ts fails if that field goes away. False when it is not there.
 */
export function setMaxPayload(ws: WebSocket, bytes: number): boolean {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } | null })._receiver;
  if (receiver === undefined || receiver === null || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}

export interface WsOptions {
  readonly path: string;
  /** Largest message once the session is authenticated. */
  readonly maxPayloadBytes: number;
  /**
   * Largest message before that (the pre-authentication frame limit): enforced by ws while the message arrives,
   * so an unknown peer cannot make us buffer megabytes.
   */
  readonly maxPayloadBytesUnauthenticated: number;
  /** A message over either limit: ws closes the connection with 1009. */
  readonly onOversize?: () => void;
  readonly highWaterBytes: number;
  readonly transport: 'ws' | 'wss';
}

/** A WebSocket server (noServer) whose connections are handed to `accept` (the broker). */
export function createWsServer(options: WsOptions, accept: ConnectionAcceptor): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    // Every connection starts with the pre-authentication limit, through ws's public option; authenticated()
    // raises it, so if ws's internals ever change the failure is a too-strict limit, never a missing one.
    maxPayload: options.maxPayloadBytesUnauthenticated,
    perMessageDeflate: false,
    clientTracking: true,
    handleProtocols: (offered: Set<string>) => chooseSubprotocol(offered),
  });
  wss.on('connection', (ws: WebSocket, request: IncomingMessage) => {
    const remote = `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? 0}`;
    let handler: ConnectionHandler | undefined;
    const drained = (): void => handler?.drained();
    const connection = new WsConnection(ws, options.transport, remote, options.highWaterBytes, options.maxPayloadBytes, drained);
    handler = accept(connection);
    const s = handler;
    // Text and binary messages alike are bytes to the parser; a frame may span messages, or a message hold several.
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      if (Buffer.isBuffer(data)) s.receive(data);
      else if (Array.isArray(data)) for (const part of data) s.receive(part);
      else s.receive(Buffer.from(data));
    });
    ws.on('close', () => s.transportClosed());
    ws.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') options.onOversize?.();
    });
  });
  return wss;
}
