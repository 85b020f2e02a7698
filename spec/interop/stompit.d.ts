/**
 * The part of stompit 1.0.0 (CommonJS, no published types) that the interop spec uses, as its lib/Client.js,
 * lib/connect.js and lib/IncomingFrameStream.js define it.
 */
declare module 'stompit' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';
  import type { Readable, Writable } from 'node:stream';

  namespace stompit {
    /** Outgoing header values; `undefined` and `null` ones are left out of the frame. */
    type OutgoingHeaders = Record<string, string | number | undefined>;

    /** A received frame; its body is a stream. stompit turns `content-length` into a number. */
    interface IncomingFrame extends Readable {
      readonly command: string;
      readonly headers: Readonly<Record<string, string | number | undefined>>;
      readString(encoding: BufferEncoding, callback: (error: Error | null, body?: string) => void): void;
    }

    /** A frame being sent: the body is written to it, and `end()` sends the NUL (and an LF). */
    interface OutgoingFrame extends Writable {
      readonly command: string;
      headers: OutgoingHeaders;
    }

    interface SendOptions {
      /** Adds a `receipt` header and calls back when its RECEIPT arrives. */
      onReceipt?: () => void;
      onError?: (error: Error) => void;
    }

    interface Subscription {
      getId(): string | number;
      unsubscribe(headers?: OutgoingHeaders): void;
    }

    interface Transaction {
      readonly id: string | number;
      send(headers: OutgoingHeaders | string, options?: SendOptions): OutgoingFrame;
      commit(options?: SendOptions): void;
      abort(options?: SendOptions): void;
    }

    type MessageListener = (error: Error | null, message: IncomingFrame | undefined, subscription: Subscription) => void;
    type Callback = (error: Error | null) => void;

    interface Client extends EventEmitter {
      /** The CONNECTED frame's headers, once connected. */
      readonly headers: Readonly<Record<string, string | number | undefined>>;
      sendFrame(command: string, headers: OutgoingHeaders, options?: SendOptions): OutgoingFrame;
      send(headers: OutgoingHeaders | string, options?: SendOptions): OutgoingFrame;
      begin(headers?: OutgoingHeaders | string): Transaction;
      subscribe(headers: OutgoingHeaders | string, listener: MessageListener): Subscription;
      /** Registers a listener for a subscription id whose SUBSCRIBE the caller sends itself. */
      setImplicitSubscription(id: string | number, ack: string, listener: MessageListener): Subscription;
      ack(message: IncomingFrame, headers?: OutgoingHeaders, options?: SendOptions, callback?: Callback): void;
      nack(message: IncomingFrame, headers?: OutgoingHeaders, options?: SendOptions, callback?: Callback): void;
      /** DISCONNECT with a receipt; the transport closes once the RECEIPT arrives. */
      disconnect(callback?: Callback): void;
      destroy(error?: Error): void;
      getTransportSocket(): Socket;
    }

    interface ConnectOptions {
      host?: string;
      port?: number;
      /** Milliseconds for the TCP connect (default 3000). */
      timeout?: number;
      /** Passed through to `net.connect`. */
      noDelay?: boolean;
      connectHeaders?: OutgoingHeaders;
      /** [send, receive] in ms, what CONNECT offers as `heart-beat` (default [0, 0]). */
      heartbeat?: [number, number];
      /** Lateness allowed on the server's heart-beats (default 100 ms). */
      heartbeatDelayMargin?: number;
    }

    function connect(options: ConnectOptions, listener?: (error: Error | null, client: Client) => void): Client;
  }

  export = stompit;
}
