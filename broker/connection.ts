/**
 * What a transport gives a session: a way to write whole frames and to close. Inbound bytes arrive through
 * `Session.receive`, so TCP, TLS and WebSocket all feed the same session code with a byte stream.
 */
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
