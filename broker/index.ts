export { Broker, SERVER_NAME, SERVER_VERSION, type BrokerBackends, type BrokerEventMap } from './broker.js';
export { createBroker, type BrokerOptions } from './server.js';
export { DEFAULT_CONFIG, loadConfig, ConfigError, type BrokerConfig, type ConfigInput } from './config.js';
export { allowAll, usersFileAuthenticator, addUser, hashPassword, verifyPassword, type Authenticator, type AuthResult, type Credentials } from './auth.js';
export { BROKER_ERRORS, ProtocolError, type BrokerErrorCode } from './errors.js';
export type { Connection } from './connection.js';
export type { Logger } from './ports/logger.js';
export { Session } from './session.js';
export type { ListenAddresses } from './transports/listen.js';
