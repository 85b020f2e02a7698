import { readFileSync } from 'node:fs';
import type { KafkaConfig, SASLOptions } from 'kafkajs';

/** How a node reaches a production Kafka: TLS and SASL, in the settings' own terms (files, not their contents). */
export interface KafkaSecurity {
  readonly ssl?: boolean | undefined;
  readonly sslCaFile?: string | undefined;
  readonly sslCertFile?: string | undefined;
  readonly sslKeyFile?: string | undefined;
  readonly saslMechanism?: 'none' | 'plain' | 'scram-sha-256' | 'scram-sha-512' | undefined;
  readonly saslUsername?: string | undefined;
  readonly saslPassword?: string | undefined;
}

const given = (s: string | undefined): s is string => s !== undefined && s !== '';

/**
 * The `ssl` and `sasl` parts of a kafkajs config. TLS is on when asked for, or when any TLS file is given; each
 * file is read here, once, so a missing one fails the start naming it. No SASL unless a mechanism is chosen.
 */
export function kafkaClientSecurity(
  s: KafkaSecurity,
  read: (file: string) => Buffer = (f) => readFileSync(f),
): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const out: Pick<KafkaConfig, 'ssl' | 'sasl'> = {};
  const files = { ca: s.sslCaFile, cert: s.sslCertFile, key: s.sslKeyFile };
  if (s.ssl === true || Object.values(files).some(given)) {
    const tls: { ca?: Buffer[]; cert?: Buffer; key?: Buffer } = {};
    if (given(files.ca)) tls.ca = [read(files.ca)];
    if (given(files.cert)) tls.cert = read(files.cert);
    if (given(files.key)) tls.key = read(files.key);
    out.ssl = Object.keys(tls).length === 0 ? true : tls;
  }
  const mechanism = s.saslMechanism ?? 'none';
  if (mechanism !== 'none') {
    const sasl: SASLOptions = { mechanism, username: s.saslUsername ?? '', password: s.saslPassword ?? '' };
    out.sasl = sasl;
  }
  return out;
}
