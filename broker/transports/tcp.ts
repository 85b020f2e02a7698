import type { Socket } from 'node:net';
import type { Connection } from '../connection.js';
import type { Session } from '../session.js';

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

  /** The socket emits 'drain' once its buffer empties, which resumes reading (Session.drained). */
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

/** Wires a freshly accepted socket to a new session. */
export function attachSocket(socket: Socket, transport: 'tcp' | 'tls', open: (c: TcpConnection) => Session): void {
  // Nagle's algorithm would hold small frames (RECEIPTs, heart-beats) for up to 40 ms; we batch writes ourselves.
  socket.setNoDelay(true);
  const session = open(new TcpConnection(socket, transport));
  socket.on('data', (chunk: Buffer) => session.receive(chunk));
  socket.on('drain', () => session.drained());
  socket.on('close', () => session.transportClosed());
  // A reset peer is an ordinary way for a connection to end; 'close' follows and tears the session down.
  socket.on('error', () => {});
}
