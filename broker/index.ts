export { Broker, type BrokerBackends, type BrokerEngines, type BrokerEventMap } from './broker.js';
export { SERVER_NAME, SERVER_VERSION } from './version.js';
export { createBroker, listen, type BrokerOptions, type ListenOptions, type Listeners, type HttpHandler } from './server.js';
export { DEFAULT_CONFIG, loadConfig, ConfigError, type BrokerConfig, type ConfigInput } from './config.js';
export {
  allowAll,
  usersFileAuthenticator,
  addUser,
  hashPassword,
  verifyPassword,
  type Authenticator,
  type AuthResult,
  type Credentials,
} from './auth.js';
export { BROKER_ERRORS, ProtocolError, type BrokerErrorCode } from './errors.js';
export type { Connection, ConnectionHandler } from './connection.js';
export type { Logger } from './ports/logger.js';
export { Session, type SessionHost } from './session.js';
export type { ListenAddresses } from './transports/listen.js';
// The ports: what a custom engine implements to be passed as `fanout`, `log`, `queues` or `history`.
export {
  BridgeError,
  type BusCapabilities,
  type BusEnvelope,
  type ClusterBus,
  type Deliver,
  type LinkListener,
  type PublishInput,
} from './ports/bus.js';
export type { HistoryQuery, HistoryRecord, HistoryRetention, HistoryStore } from './ports/history.js';
export type { SharedQueueMessage, SharedQueues } from './ports/queues.js';
export type { Route, RouteKind } from './ports/routes.js';
