/**
 * The URLs the CLI's startup line shows: every address a user needs (STOMP, WebSocket, the chat page, TLS, WSS, the
 * ops endpoints), with a host they can connect to.
 */
import { hostname, networkInterfaces } from 'node:os';
import type { ListenAddresses } from '../broker/server.js';

/**
 * The host to show in URLs: the configured one, or, when the node listens on every interface (0.0.0.0, ::), this
 * machine's first external IPv4 address (its host name when it has none), which a user can actually connect to.
 */
export function shownHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::' && host !== '') return host.includes(':') ? `[${host}]` : host;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return hostname();
}

/** Every URL a user needs, by what it is for: STOMP, WebSocket, the chat page, TLS, WSS, the ops endpoints. */
export function listeningUrls(a: ListenAddresses, host: string): Record<string, string> {
  const h = shownHost(host);
  const urls: Record<string, string> = {};
  if (a.tcp) urls.stomp = `tcp://${h}:${a.tcp.port}`;
  if (a.ws) {
    urls.websocket = `ws://${h}:${a.ws.port}${a.ws.path}`;
    urls.chat = `http://${h}:${a.ws.port}/`;
  }
  if (a.tls) urls.stompTls = `ssl://${h}:${a.tls.port}`;
  if (a.wss) urls.websocketTls = `wss://${h}:${a.wss.port}${a.wss.path}`;
  // The page is served beside every WebSocket endpoint; over HTTPS only when plain WebSocket is off.
  if (a.wss && !a.ws) urls.chat = `https://${h}:${a.wss.port}/`;
  if (a.ops) urls.ops = `http://${h}:${a.ops.port}`;
  return urls;
}

/** How each URL is introduced in the startup line. */
export const URL_LABELS: Readonly<Record<string, string>> = {
  stomp: 'STOMP',
  websocket: 'WebSocket',
  chat: 'chat page',
  stompTls: 'STOMP over TLS',
  websocketTls: 'secure WebSocket',
  ops: 'ops (/metrics, /healthz, /readyz)',
};
