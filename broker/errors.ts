/**
 * Codes for everything the broker refuses. Each becomes the `message` header's prefix-free reason and a metrics
 * label, so a code is public API.
 */
export const BROKER_ERRORS = Object.freeze({
  ERR_NOT_CONNECTED: 'ERR_NOT_CONNECTED',
  ERR_ALREADY_CONNECTED: 'ERR_ALREADY_CONNECTED',
  ERR_UNSUPPORTED_VERSION: 'ERR_UNSUPPORTED_VERSION',
  ERR_BAD_CREDENTIALS: 'ERR_BAD_CREDENTIALS',
  ERR_UNKNOWN_VHOST: 'ERR_UNKNOWN_VHOST',
  ERR_ACCESS_REFUSED: 'ERR_ACCESS_REFUSED',
  ERR_UNKNOWN_COMMAND: 'ERR_UNKNOWN_COMMAND',
  ERR_MISSING_HEADER: 'ERR_MISSING_HEADER',
  ERR_BAD_HEADER_VALUE: 'ERR_BAD_HEADER_VALUE',
  ERR_BODY_NOT_ALLOWED: 'ERR_BODY_NOT_ALLOWED',
  ERR_BAD_DESTINATION: 'ERR_BAD_DESTINATION',
  ERR_DUPLICATE_SUBSCRIPTION: 'ERR_DUPLICATE_SUBSCRIPTION',
  ERR_UNKNOWN_SUBSCRIPTION: 'ERR_UNKNOWN_SUBSCRIPTION',
  ERR_UNKNOWN_ACK: 'ERR_UNKNOWN_ACK',
  ERR_UNKNOWN_TRANSACTION: 'ERR_UNKNOWN_TRANSACTION',
  ERR_DUPLICATE_TRANSACTION: 'ERR_DUPLICATE_TRANSACTION',
  ERR_QUEUE_FULL: 'ERR_QUEUE_FULL',
  ERR_TOO_MANY_DESTINATIONS: 'ERR_TOO_MANY_DESTINATIONS',
  ERR_LOW_MEMORY: 'ERR_LOW_MEMORY',
  ERR_SLOW_CONSUMER: 'ERR_SLOW_CONSUMER',
  ERR_HEARTBEAT_TIMEOUT: 'ERR_HEARTBEAT_TIMEOUT',
  ERR_CONNECT_TIMEOUT: 'ERR_CONNECT_TIMEOUT',
  ERR_IDLE_TIMEOUT: 'ERR_IDLE_TIMEOUT',
  /** A per-node, per-user or per-connection resource limit (connections, subscriptions, transactions, unacked). */
  ERR_LIMIT_EXCEEDED: 'ERR_LIMIT_EXCEEDED',
  ERR_ROUTE_FAILED: 'ERR_ROUTE_FAILED',
  ERR_SHUTDOWN: 'ERR_SHUTDOWN',
  /** Closed through the management API (`DELETE /api/connections/:id`, `stompede ctl close`). */
  ERR_CLOSED_BY_OPERATOR: 'ERR_CLOSED_BY_OPERATOR',
  ERR_INTERNAL: 'ERR_INTERNAL',
} as const);

export type BrokerErrorCode = (typeof BROKER_ERRORS)[keyof typeof BROKER_ERRORS];

/** A refusal the client is told about in an ERROR frame, after which its connection closes. */
export class ProtocolError extends Error {
  // The union names the broker's own codes for readers; `string` admits the codec's (frames/ FRAME_ERRORS) too.
  // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents
  readonly code: BrokerErrorCode | string;
  /** Extra ERROR headers, such as `version` for a failed negotiation. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly detail: string;

  constructor(
    // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents -- as for `code` above
    code: BrokerErrorCode | string,
    message: string,
    detail = '',
    headers: ReadonlyArray<readonly [string, string]> = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
    this.detail = detail;
    this.headers = headers;
  }
}
