/**
 * The test services a spec needs, named by the environment that `infra/with-services.sh` (and so `make test`)
 * exports. A spec that needs one and does not find it FAILS, naming what is missing: a suite that turned
 * pending whenever a variable was unset would pass without testing anything.
 */

/** `redis-cluster`: three Redis Cluster masters (`infra/services.sh start redis-cluster`), given as a seed list. */
export type ServiceName = 'redis' | 'kafka' | 'mongo' | 'redis-cluster';

/** Which variable names each service's URL. */
export const SERVICE_VARIABLES = Object.freeze({
  redis: 'STOMPEDE_TEST_REDIS_URL',
  kafka: 'STOMPEDE_TEST_KAFKA_BROKERS',
  mongo: 'STOMPEDE_TEST_MONGO_URL',
  'redis-cluster': 'STOMPEDE_TEST_REDIS_CLUSTER',
} as const satisfies Record<ServiceName, string>);

/** The URL the environment gives for a service, or undefined when it is unset or empty. */
export function serviceUrl(name: ServiceName): string | undefined {
  const value = process.env[SERVICE_VARIABLES[name]];
  return value === undefined || value === '' ? undefined : value;
}

/** Thrown (from a `before` hook, so the whole block fails) when a service the spec needs is not configured. */
export class MissingServiceError extends Error {
  readonly missing: readonly ServiceName[];
  /** `detail`: what exactly is missing when a service needs more than its URL (default: its URL variable). */
  constructor(missing: readonly ServiceName[], detail?: string) {
    const list = detail ?? missing.map((n) => `${n} (${SERVICE_VARIABLES[n]})`).join(', ');
    super(`required test service(s) not configured: ${list}; run the specs through \`make test\` or infra/with-services.sh`);
    this.name = 'MissingServiceError';
    this.missing = missing;
  }
}

/** The URL of `name`; throws MissingServiceError when the environment does not name it. */
export function requireService(name: ServiceName): string {
  const url = serviceUrl(name);
  if (url === undefined) throw new MissingServiceError([name]);
  return url;
}

/** Checks several at once, so that one failure names every missing service. */
export function requireServices(names: readonly ServiceName[]): void {
  const missing = names.filter((n) => serviceUrl(n) === undefined);
  if (missing.length > 0) throw new MissingServiceError(missing);
}

/** The SASL login the test Kafka's SASL listeners accept (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512), and its TLS CA. */
export interface KafkaSaslService {
  /** host:port of the SASL_PLAINTEXT listener. */
  readonly sasl: string;
  /** host:port of the SASL_SSL listener, whose certificate the CA in `caFile` signed. */
  readonly saslSsl: string;
  readonly username: string;
  readonly password: string;
  readonly caFile: string;
}

const KAFKA_SASL_VARIABLES = Object.freeze({
  sasl: 'STOMPEDE_TEST_KAFKA_SASL',
  saslSsl: 'STOMPEDE_TEST_KAFKA_SASL_SSL',
  username: 'STOMPEDE_TEST_KAFKA_SASL_USER',
  password: 'STOMPEDE_TEST_KAFKA_SASL_PASSWORD',
  caFile: 'STOMPEDE_TEST_KAFKA_TLS_CA',
} as const satisfies Record<keyof KafkaSaslService, string>);

/** The test Kafka's SASL listeners and login; throws MissingServiceError naming every unset variable. */
export function requireKafkaSasl(): KafkaSaslService {
  const read = (variable: string): string => process.env[variable] ?? '';
  const missing = Object.values(KAFKA_SASL_VARIABLES).filter((v) => read(v) === '');
  if (missing.length > 0) throw new MissingServiceError(['kafka'], `kafka SASL listeners (${missing.join(', ')})`);
  const v = KAFKA_SASL_VARIABLES;
  return {
    sasl: read(v.sasl),
    saslSsl: read(v.saslSsl),
    username: read(v.username),
    password: read(v.password),
    caFile: read(v.caFile),
  };
}
