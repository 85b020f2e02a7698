/**
 * The seam between transports and the broker, and all a transport knows of it: the transport wraps its socket in
 * a `Connection` (what the broker may do to the peer), hands it to `Broker.handle`, and feeds the returned
 * `ConnectionHandler` (what the peer did). TCP, TLS, WebSocket, and the in-memory connections of the unit specs
 * all reach the same session code this way; nothing here knows what a session is.
 */

/** What a transport gives the broker for one peer: a way to write whole frames and to close. */
export interface Connection {
  readonly transport: 'tcp' | 'tls' | 'ws' | 'wss';
  readonly remoteAddress: string;
  /**
   * Writes one whole frame given as pieces. A WebSocket sends it as one message: text when `utf8` says the bytes
   * are valid UTF-8, binary otherwise.
   */
  writeFrame(pieces: readonly Buffer[], utf8: boolean): void;
  /** Bytes accepted by writeFrame and not yet handed to the operating system. */
  readonly bufferedBytes: number;
  /** Sends what is buffered, then closes. */
  end(): void;
  /** Closes at once, dropping anything unsent. */
  destroy(): void;
  /**
   * Stop and restart reading from the peer (flow control while our unsent bytes to it are above the high-water
   * mark). Transports that cannot tell when their buffer drained leave these out and are never paused.
   */
  pauseReading?(): void;
  resumeReading?(): void;
  /** The session authenticated: lift transport caps meant for unknown peers (the WebSocket message size). */
  authenticated?(): void;
}

/**
 * What a transport tells the broker about one connection, from `Broker.handle`. The handler is the session
 * itself (no wrapper), so each inbound chunk costs one direct call.
 */
export interface ConnectionHandler {
  /** Bytes from the peer, in any split. */
  receive(chunk: Buffer): void;
  /** The transport's outbound buffer emptied (or fell below its high-water mark): writing may go on. */
  drained(): void;
  /** The transport closed: the peer went away, or the broker's own close finished. */
  transportClosed(): void;
}

/** Where a transport hands new connections: `Broker.handle`, seen from the transport's side. */
export type ConnectionAcceptor = (connection: Connection) => ConnectionHandler;

/**
 * Listeners that feed a broker connections, as the broker sees them at shutdown: it stops them accepting first,
 * and waits for their sockets after its sessions said goodbye (`Broker.attach`).
 */
export interface ConnectionSource {
  /** Closes the listening sockets; resolves when they are closed. */
  stopAccepting(): Promise<void>;
  /** Resolves once every client socket has closed, destroying stragglers after `timeoutMs`. */
  waitClosed(timeoutMs: number): Promise<void>;
}
