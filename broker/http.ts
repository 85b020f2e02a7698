/**
 * Plain HTTP on the WebSocket port: `/healthz`, `/readyz` and `/metrics` for operators, and room for more
 * handlers (the chat page) tried after them. Handlers compose: the first that answers a request wins.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker } from './broker.js';
import { brokerMetrics } from './metrics.js';
import type { HttpHandler } from './transports/listen.js';
import { webPageHandler } from './web.js';

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

/** The request path, without the query string. */
export function requestPath(request: IncomingMessage): string {
  return (request.url ?? '/').split('?')[0] ?? '/';
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) }).end(body);
}

/**
 * `GET /healthz`: 200 while the process runs. `GET /readyz`: 200 when every configured engine is connected, else
 * 503 with JSON naming the engines that are down (and the last memory sample, which never affects readiness). `GET /metrics`: the Prometheus text of the broker and process.
 */
export function opsHttpHandler(broker: Broker): HttpHandler {
  const metrics = brokerMetrics(broker);
  return (request, response) => {
    const path = requestPath(request);
    if (path !== OPS_PATHS.health && path !== OPS_PATHS.ready && path !== OPS_PATHS.metrics) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`${path} answers GET only.\n`);
      return true;
    }
    if (path === OPS_PATHS.health) {
      send(response, 200, 'text/plain; charset=utf-8', 'ok\n');
    } else if (path === OPS_PATHS.ready) {
      const { ready, closing, engines } = broker.readiness();
      const down = Object.entries(engines).filter(([, healthy]) => !healthy).map(([name]) => name);
      // Memory is detail for operators, never a reason to be unready: the watermark refuses SENDs instead.
      const body = JSON.stringify({ ready, closing, engines, down, memory: broker.memoryStatus() }) + '\n';
      send(response, ready ? 200 : 503, 'application/json', body);
    } else {
      metrics.scrape().then((text) => send(response, 200, metrics.contentType, text), (error: unknown) => {
        broker.logger.error({ err: error }, 'metrics scrape failed');
        if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', 'metrics scrape failed; see the broker log\n');
        else response.destroy();
      });
    }
    return true;
  };
}

/** What `Broker.listen` serves: the operator endpoints first, then `extra` handlers in order, then the chat page (`/`). */
export function brokerHttpHandler(broker: Broker, extra: readonly HttpHandler[] = []): HttpHandler {
  return composeHttpHandlers([opsHttpHandler(broker), ...extra, webPageHandler()]);
}
