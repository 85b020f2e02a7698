import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import type { WebSocketServer } from 'ws';
import { envName, FD_HEADROOM, flagName, type BrokerConfig } from '../config.js';
import type { ConnectionAcceptor } from '../connection.js';
import { attachSocket } from './tcp.js';
import { createWsServer } from './websocket.js';

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface ListenAddresses {
  /** Plain TCP, unless `port` is -1 (a node behind TLS only, or WebSocket only). */
  readonly tcp: Address | undefined;
  readonly ws: (Address & { readonly path: string; readonly url: string }) | undefined;
  readonly tls: Address | undefined;
  readonly wss: (Address & { readonly path: string; readonly url: string }) | undefined;
  /** The ops listener (`/metrics`, `/healthz`, `/readyz`) when `opsPort` is set; else they are on `ws`. */
  readonly ops: (Address & { readonly url: string }) | undefined;
}

export interface Listeners {
  readonly addresses: ListenAddresses;
  /** Closes the listening sockets; resolves when they are closed. */
  stopAccepting(): Promise<void>;
  /** Resolves once every client socket has closed, destroying stragglers after `timeoutMs`. */
  waitClosed(timeoutMs: number): Promise<void>;
}

/** Answers plain HTTP requests on the WebSocket or ops port (health, metrics, the chat page). True when handled. */
export type HttpHandler = (request: IncomingMessage, response: ServerResponse) => boolean;

/** The path of a request URL without its query string: what every HTTP handler here matches on. */
export function urlPath(url: string | undefined): string {
  if (url === undefined) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The settings the listeners read: addresses, TLS files, and the limits enforced before a session exists. */
export type ListenConfig = Readonly<
  Pick<
    BrokerConfig,
    | 'host'
    | 'port'
    | 'tlsPort'
    | 'wsPort'
    | 'wssPort'
    | 'opsPort'
    | 'wsPath'
    | 'tlsCertFile'
    | 'tlsKeyFile'
    | 'maxConnections'
    | 'connectTimeoutMs'
    | 'maxFrameBytes'
    | 'maxFrameBytesUnauthenticated'
    | 'outboundHighWaterBytes'
  >
>;

/** What the listeners need of a broker, and nothing more: its settings, its limit counter, and `handle`. */
export interface ListenTarget {
  readonly config: ListenConfig;
  /** Counts a peer refused by a transport-level defence, beside the broker's other limit hits. */
  limitHit(limit: 'connections' | 'handshake' | 'websocket-message'): void;
  /** `Broker.handle`: a new connection in, its handler out. */
  readonly accept: ConnectionAcceptor;
}

/** The plain-HTTP answers: `web` on the WebSocket ports, `ops` on the ops port when `opsPort` is set. */
export interface ListenHttp {
  readonly web?: HttpHandler | undefined;
  readonly ops?: HttpHandler | undefined;
  /**
   * Run once the ops listener is open and before any client listener opens (the broker's engines start here), so
   * probes get answers (a 503 `starting`) while a slow engine connects, and no client arrives before it is up.
   */
  readonly beforeClients?: (() => Promise<void>) | undefined;
}

/** `setting` names the config key of the port, so the error can say which flag or variable to change. */
function listenOn(
  server: NetServer,
  host: string,
  port: number,
  setting: 'port' | 'wsPort' | 'tlsPort' | 'wssPort' | 'opsPort',
): Promise<Address> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      if (error.code === 'EADDRINUSE') {
        reject(
          new Error(
            `port ${port} on ${host} is already in use: stop the program using it, or choose another port with --${flagName(setting)} (${envName(setting)})`,
            { cause: error },
          ),
        );
      } else if (error.code === 'EADDRNOTAVAIL') {
        reject(
          new Error(
            `cannot listen on ${host}: no interface of this machine has that address; fix --host (${envName('host')}), e.g. 0.0.0.0 for every interface`,
            { cause: error },
          ),
        );
      } else if (error.code === 'EACCES') {
        reject(
          new Error(
            `not allowed to listen on port ${port}: ports below 1024 need privileges; choose another port with --${flagName(setting)} (${envName(setting)})`,
            { cause: error },
          ),
        );
      } else {
        reject(error);
      }
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address();
      resolve({ host, port: typeof a === 'object' && a !== null ? a.port : port });
    });
  });
}

function close(server: NetServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Opens the listeners the config asks for: the ops listener first, then (after `http.beforeClients`) TCP, TLS,
 * WebSocket and WSS, each handing connections to `target`.
 */
export async function listenTransports(target: ListenTarget, http: ListenHttp = {}): Promise<Listeners> {
  const c = target.config;
  const sockets = new Set<Socket | Duplex>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const servers: NetServer[] = [];
  const wsServers: WebSocketServer[] = [];
  /**
   * A backstop under maxConnections, which sessions enforce with an ERROR: sockets that never become sessions
   * (TLS handshakes in progress, plain HTTP) and refused ones still closing count here, and past this Node drops
   * new ones at accept, so a flood cannot use up the file descriptors that /healthz and new clients need.
   */
  const guard = (server: NetServer): void => {
    server.maxConnections = c.maxConnections + FD_HEADROOM / 2;
    server.on('drop', () => target.limitHit('connections'));
  };

  // Plain HTTP even when TLS is configured: it is meant for an internal network (Prometheus, kubelet probes).
  let ops: (Address & { url: string }) | undefined;
  if (c.opsPort >= 0) {
    const answer = http.ops;
    const server = createHttpServer((request, response) => {
      if (answer?.(request, response) === true) return;
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found. This port serves /metrics, /healthz and /readyz only.\n');
    });
    server.on('connection', track);
    servers.push(server);
    const a = await listenOn(server, c.host, c.opsPort, 'opsPort');
    ops = { ...a, url: `http://${c.host}:${a.port}` };
  }

  let clients: ClientAddresses;
  try {
    await http.beforeClients?.();
    clients = await listenClients({ target, web: http.web, track, guard, servers, wsServers });
  } catch (error) {
    // A failed start (an engine, a port in use) leaves nothing listening, probes' sockets included: an embedder
    // may retry in-process.
    for (const w of wsServers) w.close();
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map(close));
    throw error;
  }

  return {
    addresses: { ...clients, ops },
    async stopAccepting() {
      for (const w of wsServers) w.close();
      await Promise.all(servers.map(close));
    },
    async waitClosed(timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of sockets) s.destroy();
    },
  };
}

type ClientAddresses = Omit<ListenAddresses, 'ops'>;

/** What the client listeners share with `listenTransports`: the servers and sockets it closes at the end. */
interface ListenContext {
  readonly target: ListenTarget;
  readonly web: HttpHandler | undefined;
  readonly track: (socket: Socket) => void;
  readonly guard: (server: NetServer) => void;
  readonly servers: NetServer[];
  readonly wsServers: WebSocketServer[];
}

/** Opens the TCP, TLS, WebSocket and WSS listeners the config asks for. */
async function listenClients({ target, web: webHandler, track, guard, servers, wsServers }: ListenContext): Promise<ClientAddresses> {
  const c = target.config;
  const accept = target.accept;
  let tcpAddress: Address | undefined;
  if (c.port >= 0) {
    const tcp = createNetServer((socket) => {
      track(socket);
      attachSocket(socket, 'tcp', accept);
    });
    guard(tcp);
    servers.push(tcp);
    tcpAddress = await listenOn(tcp, c.host, c.port, 'port');
  }

  // The connect timeout starts once a session exists, after the handshake: a peer that opens TCP to a TLS port and
  // says nothing must be cut off by the handshake timeout, which Node otherwise sets at 120 s.
  const handshakeTimeout = c.connectTimeoutMs > 0 ? c.connectTimeoutMs : 120_000;
  const tlsOptions =
    c.tlsCertFile !== '' ? { cert: readFileSync(c.tlsCertFile), key: readFileSync(c.tlsKeyFile), handshakeTimeout } : undefined;
  // With a listener, Node leaves closing the socket to us (without one it destroys it itself).
  const onTlsClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    if (error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') target.limitHit('handshake');
    socket.destroy();
  };
  let tlsAddress: Address | undefined;
  if (tlsOptions !== undefined) {
    const tls = createTlsServer(tlsOptions, (socket) => {
      track(socket);
      attachSocket(socket, 'tls', accept);
    });
    tls.on('tlsClientError', onTlsClientError);
    guard(tls);
    servers.push(tls);
    tlsAddress = await listenOn(tls, c.host, c.tlsPort, 'tlsPort');
  }

  // Health and metrics are the handlers' business (broker/http.ts), on whichever port the config puts them.
  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    if (webHandler?.(request, response) === true) return;
    response.writeHead(404, { 'content-type': 'text/plain' }).end(`Not found. STOMP over WebSocket is served at ${c.wsPath}.\n`);
  };

  const web = async (secure: boolean, port: number) => {
    const transport = secure ? 'wss' : 'ws';
    const server: HttpServer = secure && tlsOptions !== undefined ? createHttpsServer(tlsOptions, onRequest) : createHttpServer(onRequest);
    server.on('connection', track);
    if (secure) server.on('tlsClientError', onTlsClientError);
    guard(server);
    const wss = createWsServer(
      {
        path: c.wsPath,
        // One WebSocket message may carry several frames (stomp.js batches none, but others do): room for a few.
        maxPayloadBytes: c.maxFrameBytes * 4,
        maxPayloadBytesUnauthenticated: c.maxFrameBytesUnauthenticated,
        onOversize: () => target.limitHit('websocket-message'),
        highWaterBytes: c.outboundHighWaterBytes,
        transport,
      },
      accept,
    );
    wsServers.push(wss);
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (urlPath(request.url) !== c.wsPath) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    });
    servers.push(server);
    const a = await listenOn(server, c.host, port, secure ? 'wssPort' : 'wsPort');
    return { ...a, path: c.wsPath, url: `${transport}://${c.host}:${a.port}${c.wsPath}` };
  };

  const ws = c.wsPort >= 0 ? await web(false, c.wsPort) : undefined;
  const wss = tlsOptions !== undefined && c.wssPort >= 0 ? await web(true, c.wssPort) : undefined;

  return { tcp: tcpAddress, ws, tls: tlsAddress, wss };
}
