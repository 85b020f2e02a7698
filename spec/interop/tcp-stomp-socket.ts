import { connect, type Socket } from 'node:net';
import { StompSocketState, type IStompSocket } from '@stomp/stompjs';

/**
 * STOMP over plain TCP for @stomp/stompjs, which talks to anything shaped like a WebSocket (`webSocketFactory`).
 * As the stompjs docs ask: `binaryType` is 'arraybuffer', so every chunk is handed over as an ArrayBuffer (a
 * string would break a UTF-8 sequence split between two chunks); stompjs' parser reassembles frames across chunks
 * and finds several in one. Outgoing data is a string (text frames, LF heart-beats) or an ArrayBuffer / view
 * (frames with a binary body).
 */
export class TcpStompSocket implements IStompSocket {
  readonly url: string;
  binaryType = 'arraybuffer';
  readyState: number = StompSocketState.CONNECTING;
  onopen: ((event?: unknown) => unknown) | null | undefined = null;
  onmessage: ((event: { data: ArrayBuffer }) => unknown) | null | undefined = null;
  onclose: ((event?: { code: number; reason: string; wasClean: boolean }) => unknown) | null | undefined = null;
  onerror: ((event: Error) => unknown) | null | undefined = null;
  readonly #socket: Socket;

  constructor(host: string, port: number) {
    this.url = `tcp://${host}:${port}`;
    this.#socket = connect({ host, port, noDelay: true });
    this.#socket.on('connect', () => {
      this.readyState = StompSocketState.OPEN;
      this.onopen?.();
    });
    this.#socket.on('data', (chunk: Buffer) => {
      const data = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer;
      this.onmessage?.({ data });
    });
    this.#socket.on('error', (error) => this.onerror?.(error));
    this.#socket.on('close', (hadError) => {
      this.readyState = StompSocketState.CLOSED;
      this.onclose?.({ code: hadError ? 1006 : 1000, reason: '', wasClean: !hadError });
    });
  }

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (typeof data === 'string') this.#socket.write(data, 'utf8');
    else if (ArrayBuffer.isView(data)) this.#socket.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    else if (data instanceof Blob) throw new TypeError('TcpStompSocket cannot send a Blob');
    else this.#socket.write(Buffer.from(data));
  }

  /** Half-closes: the broker reads to the end, then closes its side, and only then does `onclose` fire. */
  close(): void {
    if (this.readyState >= (StompSocketState.CLOSING as number)) return;
    this.readyState = StompSocketState.CLOSING;
    this.#socket.end();
  }

  terminate(): void {
    this.readyState = StompSocketState.CLOSING;
    this.#socket.destroy();
  }
}
