import type { Socket } from 'node:net';
import type { Connection, ConnectionAcceptor } from '../connection.js';

/**
 * STOMP over a TCP (or TLS) socket. Writes made in one turn of the event loop are corked together and leave in
 * one writev, so a fan-out or a burst of RECEIPTs costs one system call per client rather than one per frame.
 */
export class TcpConnection implements Connection {
  readonly transport: 'tcp' | 'tls';
  #socket: Socket;
  #corked = false;

  constructor(socket: Socket, transport: 'tcp' | 'tls') {
    this.#socket = socket;
    this.transport = transport;
  }

  /** Built when asked (logs, authentication), not for every connection. */
  get remoteAddress(): string {
    return `${this.#socket.remoteAddress ?? '?'}:${this.#socket.remotePort ?? 0}`;
  }

  writeFrame(pieces: readonly Buffer[]): void {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(uncork, this);
    }
    for (const piece of pieces) socket.write(piece);
  }

  uncork(): void {
    this.#corked = false;
    this.#socket.uncork();
  }

  get bufferedBytes(): number {
    return this.#socket.writableLength;
  }

  end(): void {
    if (this.#corked) this.uncork();
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** The socket emits 'drain' once its buffer empties, which resumes reading (ConnectionHandler.drained). */
  pauseReading(): void {
    this.#socket.pause();
  }

  resumeReading(): void {
    this.#socket.resume();
  }
}

function uncork(connection: TcpConnection): void {
  connection.uncork();
}

/** Wires a freshly accepted socket to the broker. */
export function attachSocket(socket: Socket, transport: 'tcp' | 'tls', accept: ConnectionAcceptor): void {
  // Nagle's algorithm would hold small frames (RECEIPTs, heart-beats) for up to 40 ms; we batch writes ourselves.
  socket.setNoDelay(true);
  const handler = accept(new TcpConnection(socket, transport));
  socket.on('data', (chunk: Buffer) => handler.receive(chunk));
  socket.on('drain', () => handler.drained());
  socket.on('close', () => handler.transportClosed());
  // A reset peer is an ordinary way for a connection to end; 'close' follows and tears the session down.
  socket.on('error', () => {});
}
