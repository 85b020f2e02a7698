/**
 * Plain HTTP: `/healthz`, `/readyz` and `/metrics` for operators on the ops listener (`opsPort`, 15692 by default;
 * on the WebSocket port only when `opsPort` is -1), and the WebSocket port's handlers (the chat page and any
 * extra ones). Handlers compose: the first that answers a request wins.
 */
import type { ServerResponse } from 'node:http';
import { allowAll, type Authenticator } from './auth.js';
import type { Logger } from './ports/logger.js';
import { brokerMetrics, type MetricsSource } from './metrics.js';
import { urlPath, type HttpHandler } from './transports/listen.js';
import { chatConfigHandler, webPageHandler, type ChatConfig } from './web.js';

/** What the operator endpoints read of a broker (a `Broker` is one): readiness, memory, metrics, a logger. */
export interface OpsSource extends MetricsSource {
  readonly logger: Logger;
  readiness(): {
    readonly ready: boolean;
    readonly state: string;
    readonly closing: boolean;
    readonly engines: Record<string, boolean>;
  };
  memoryStatus(): { readonly rssBytes: number; readonly watermarkBytes: number; readonly alarm: boolean };
}

/** What the WebSocket port's handlers read besides: where the ops endpoints live, and who may log in. */
export interface HttpSource extends OpsSource {
  readonly config: { readonly clusterName: string; readonly opsPort: number; readonly wsPath: string };
  readonly authenticator: Authenticator;
}

export type { HttpHandler } from './transports/listen.js';

/** The paths the operator endpoints answer. */
export const OPS_PATHS = Object.freeze({ health: '/healthz', ready: '/readyz', metrics: '/metrics' } as const);

/** One handler trying each of `handlers` in order; the first that returns true has answered the request. */
export function composeHttpHandlers(handlers: readonly HttpHandler[]): HttpHandler {
  const list = [...handlers];
  return (request, response) => {
    for (const handler of list) if (handler(request, response)) return true;
    return false;
  };
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response
    .writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
    .end(body);
}

/**
 * `GET /healthz`: 200 while the process runs (liveness only). `GET /readyz`: 200 when traffic may be sent here
 * (`Broker.readiness`), else 503 (starting, draining, closing, or an engine carrying SENDs down); JSON either way,
 * with the state, every engine's health (a history store outage shows here without failing readiness) and the last
 * memory sample, which never affects readiness. `GET /metrics`: the Prometheus text of the broker and process.
 */
export function opsHttpHandler(broker: OpsSource): HttpHandler {
  const metrics = brokerMetrics(broker);
  return (request, response) => {
    const path = urlPath(request.url);
    if (!isOpsPath(path)) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`${path} answers GET only.\n`);
      return true;
    }
    if (path === OPS_PATHS.health) {
      send(response, 200, 'text/plain; charset=utf-8', 'ok\n');
    } else if (path === OPS_PATHS.ready) {
      const { ready, state, closing, engines } = broker.readiness();
      const down = Object.entries(engines)
        .filter(([, healthy]) => !healthy)
        .map(([name]) => name);
      // Memory is detail for operators, never a reason to be unready: the watermark refuses SENDs instead.
      const body = JSON.stringify({ ready, state, closing, engines, down, memory: broker.memoryStatus() }) + '\n';
      send(response, ready ? 200 : 503, 'application/json', body);
    } else {
      metrics.scrape().then(
        (text) => send(response, 200, metrics.contentType, text),
        (error: unknown) => {
          broker.logger.error({ err: error }, 'metrics scrape failed');
          if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', 'metrics scrape failed; see the broker log\n');
          else response.destroy();
        },
      );
    }
    return true;
  };
}

/**
 * What the chat page needs to know of this node. Read per request: `login` follows the authenticator the broker
 * has now. Any authenticator but `allowAll` (users file, tokens, or one a program passed in) wants credentials.
 */
export function chatConfig(broker: HttpSource): () => ChatConfig {
  return () => ({ wsPath: broker.config.wsPath, login: broker.authenticator !== allowAll });
}

function isOpsPath(path: string): boolean {
  return path === OPS_PATHS.health || path === OPS_PATHS.ready || path === OPS_PATHS.metrics;
}

/**
 * On the WebSocket port when `opsPort` is set: the operator paths answer 404 here, ahead of every other handler,
 * so no extra handler can expose them on the public port by accident. The text names the port to ask instead.
 */
function opsElsewhereHandler(opsPort: number): HttpHandler {
  const where = opsPort > 0 ? `its ops port, ${opsPort}` : 'its ops port';
  const text = `Not found here: this node serves /metrics, /healthz and /readyz on ${where} (opsPort, --ops-port), not on the WebSocket port.\n`;
  return (request, response) => {
    if (!isOpsPath(urlPath(request.url))) return false;
    response.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(text);
    return true;
  };
}

/**
 * What `listen` (server.ts) serves on the WebSocket port: the operator endpoints first (or their 404 when they live
 * on the ops port), then `extra` handlers in order, then the chat page (`/` and its config).
 */
export function brokerHttpHandler(broker: HttpSource, extra: readonly HttpHandler[] = []): HttpHandler {
  const ops = broker.config.opsPort >= 0 ? opsElsewhereHandler(broker.config.opsPort) : opsHttpHandler(broker);
  return composeHttpHandlers([ops, ...extra, chatConfigHandler(chatConfig(broker)), webPageHandler()]);
}
