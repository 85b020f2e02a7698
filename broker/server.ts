/**
 * The composition root: the one module in broker/ that wires concrete pieces together. The Broker opens no
 * socket and the transports know no broker (only broker/connection.ts); here the listeners, the plain-HTTP
 * handlers (health, readiness, metrics, the chat page) and the broker meet. Nothing imports this module but
 * bin/, the specs' support code and programs that embed a node.
 */
import type { Broker } from './broker.js';
import { brokerHttpHandler, opsHttpHandler } from './http.js';
import { listenTransports, type HttpHandler, type Listeners, type ListenTarget } from './transports/listen.js';

export type { ListenAddresses, Listeners, HttpHandler } from './transports/listen.js';

export interface ListenOptions {
  /** Plain-HTTP handlers on the WebSocket port, tried in order after /healthz, /readyz and /metrics (e.g. a web page). */
  readonly httpHandlers?: readonly HttpHandler[];
}

/**
 * Starts the broker's engines, then opens the TCP, WebSocket, TLS and ops listeners its config asks for, each
 * handing connections to `broker.handle`. `broker.close()` stops them: it closes the listeners first.
 */
export async function listen(broker: Broker, options: ListenOptions = {}): Promise<Listeners> {
  await broker.start();
  const target: ListenTarget = {
    config: broker.config,
    limitHit: (limit) => broker.stats.limitHit(limit),
    accept: (connection) => broker.handle(connection),
  };
  const listeners = await listenTransports(target, {
    web: brokerHttpHandler(broker, options.httpHandlers ?? []),
    ops: broker.config.opsPort >= 0 ? opsHttpHandler(broker) : undefined,
  });
  broker.attach(listeners);
  return listeners;
}
