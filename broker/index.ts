export { Broker, createBroker, SERVER_NAME, SERVER_VERSION, type BrokerOptions, type BrokerEventMap } from './broker.js';
export { DEFAULT_CONFIG, loadConfig, ConfigError, type BrokerConfig, type ConfigInput } from './config.js';
export { allowAll, usersFileAuthenticator, addUser, hashPassword, verifyPassword, type Authenticator, type AuthResult, type Credentials } from './auth.js';
export { BROKER_ERRORS, ProtocolError, type BrokerErrorCode } from './errors.js';
export type { Connection } from './connection.js';
export type { Logger } from './logger.js';
export { Session } from './session.js';
export type { ListenAddresses } from './transports/listen.js';
