import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import type { HistoryRetention } from './ports/history.js';
import { validateRoutes } from './ports/routes.js';
import { SETTINGS, type CONFIG_SCHEMA, type SettingKey } from './settings.js';

/**
 * The settings of a node, as broker/settings.ts declares them (one entry per key, with units in the names). Each key
 * also has a flag (`--ws-port`) and an environment variable (`STOMPEDE_WS_PORT`), both derived from the key.
 */
export type BrokerConfig = z.output<typeof CONFIG_SCHEMA>;

const KEYS = Object.keys(SETTINGS) as SettingKey[];

/** Every default, from the schema. */
export const DEFAULT_CONFIG: BrokerConfig = Object.fromEntries(KEYS.map((k) => [k, SETTINGS[k].default])) as BrokerConfig;

/**
 * File descriptors a node needs besides its client connections: listeners, engine clients, log files, and the
 * sockets of connections being refused. maxConnections should leave this much below the soft RLIMIT_NOFILE.
 */
export const FD_HEADROOM = 64;

/** The history retention the config asks for, as every HistoryStore takes it. */
export function historyRetention(c: Readonly<BrokerConfig>): HistoryRetention {
  return {
    maxPerDestination: c.historyMaxPerDestination,
    maxAgeMs: c.historyMaxAgeMs,
    maxBytesPerDestination: c.historyMaxBytesPerDestination,
    maxBytes: c.historyMaxBytes,
  };
}
export type ConfigInput = { -readonly [K in keyof BrokerConfig]?: BrokerConfig[K] | undefined };

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** `wsPort` → `STOMPEDE_WS_PORT`. */
export function envName(key: string): string {
  return 'STOMPEDE_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** `wsPort` → `ws-port`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** Where a value came from, so a problem names the setting as the user wrote it. */
export type ConfigSource =
  | { readonly kind: 'default' }
  | { readonly kind: 'file'; readonly file: string }
  | { readonly kind: 'env' }
  | { readonly kind: 'flag' }
  | { readonly kind: 'option' };

/** `--ws-port`, `STOMPEDE_WS_PORT`, `wsPort in node.yaml`, or the key itself (defaults, options given in code). */
export function settingLabel(key: string, source: ConfigSource): string {
  switch (source.kind) {
    case 'flag':
      return `--${flagName(key)}`;
    case 'env':
      return envName(key);
    case 'file':
      return `${key} in ${source.file}`;
    case 'default':
    case 'option':
      return key;
    default: {
      const never: never = source;
      return never;
    }
  }
}

/** Edit distance (insert, delete, substitute), for "did you mean" on misspelt keys. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((previous[j] as number) + 1, (row[j - 1] as number) + 1, (previous[j - 1] as number) + cost);
    }
    previous = row;
  }
  return previous[b.length] as number;
}

/** The known key closest to `name` (`ws-port`, `wsport` and `wsPrt` all suggest `wsPort`), if one is close. */
export function suggestKey(name: string): SettingKey | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  let best: SettingKey | undefined;
  let bestDistance = Infinity;
  for (const key of KEYS) {
    const d = distance(plain(name), plain(key));
    if (d < bestDistance) [best, bestDistance] = [key, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function unknownKey(name: string): string {
  const near = suggestKey(name);
  return near === undefined ? `unknown setting "${name}"` : `unknown setting "${name}"; did you mean \`${near}\`?`;
}

/** Text from a flag or a variable, as the key's type: numbers parsed, lists split on commas; routes parse later. */
function fromText(key: SettingKey, text: string): { value: unknown } | { problem: string } {
  const sample: unknown = SETTINGS[key].default;
  if (typeof sample === 'number') {
    const n = Number(text);
    return text.trim() === '' || !Number.isFinite(n) ? { problem: `"${text}" is not a number` } : { value: n };
  }
  if (typeof sample === 'boolean') {
    const word = text.trim().toLowerCase();
    if (['true', 'on', 'yes', '1'].includes(word)) return { value: true };
    if (['false', 'off', 'no', '0'].includes(word)) return { value: false };
    return { problem: `"${text}" is not true or false` };
  }
  if (Array.isArray(sample) && key !== 'routes')
    return {
      value: text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    };
  return { value: text };
}

/** A config file's object, parsed as YAML (`.yaml`, `.yml`) or JSON (`.json`) by its extension. */
function readConfigFile(file: string): object {
  const format = /\.ya?ml$/i.test(file) ? 'YAML' : /\.json$/i.test(file) ? 'JSON' : undefined;
  if (format === undefined) throw new ConfigError([`config file ${file}: name it *.yaml, *.yml or *.json, so its format is known`]);
  let parsed: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    parsed = format === 'YAML' ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`config file ${file}: ${(error as Error).message}`]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`config file ${file}: expected a ${format} ${format === 'YAML' ? 'mapping' : 'object'} of settings`]);
  }
  return parsed;
}

export interface ConfigSources {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Command-line values as text, by key (commander's camelCase names); problems name them `--flag`. */
  flags?: Readonly<Record<string, string | undefined>>;
  /** Already-typed overrides, as a program or a test passes them; problems name them by key. */
  overrides?: ConfigInput;
}

/** A loaded configuration and where each value came from. */
export interface LoadedConfig {
  readonly config: Readonly<BrokerConfig>;
  readonly sources: ReadonlyMap<SettingKey, ConfigSource>;
}

/** Layers defaults, the config file (YAML or JSON), `STOMPEDE_*` variables and overrides; validates once; freezes. */
export function loadConfig(sources: ConfigSources = {}): Readonly<BrokerConfig> {
  return loadConfigWithSources(sources).config;
}

/**
 * loadConfig, also returning each value's source. Every problem is collected before throwing: a wrong type in one
 * setting does not hide a bad value in another, and each names the setting as the user wrote it.
 */
export function loadConfigWithSources(sources: ConfigSources = {}): LoadedConfig {
  const problems: string[] = [];
  const raw: Record<string, unknown> = { ...DEFAULT_CONFIG };
  const from = new Map<SettingKey, ConfigSource>();
  const failed = new Set<SettingKey>();
  const known = (k: string): k is SettingKey => Object.hasOwn(SETTINGS, k);
  const setText = (key: SettingKey, text: string, source: ConfigSource): void => {
    from.set(key, source);
    const parsed = fromText(key, text);
    if ('value' in parsed) {
      raw[key] = parsed.value;
      failed.delete(key);
    } else {
      problems.push(`${settingLabel(key, source)}: ${parsed.problem}`);
      failed.add(key);
    }
  };

  if (sources.file !== undefined && sources.file !== '') {
    const file = sources.file;
    for (const [key, value] of Object.entries(readConfigFile(file))) {
      if (!known(key)) problems.push(`${file}: ${unknownKey(key)}`);
      else {
        raw[key] = value;
        from.set(key, { kind: 'file', file });
      }
    }
  }
  const env = sources.env ?? {};
  for (const key of KEYS) {
    const text = env[envName(key)];
    if (text !== undefined) setText(key, text, { kind: 'env' });
  }
  for (const [key, text] of Object.entries(sources.flags ?? {})) {
    if (text === undefined) continue;
    if (!known(key)) problems.push(unknownKey(key));
    else setText(key, text, { kind: 'flag' });
  }
  for (const [key, value] of Object.entries(sources.overrides ?? {})) {
    if (value === undefined) continue;
    if (!known(key)) problems.push(unknownKey(key));
    // Text for a non-text setting is taken as a flag would be (programs pass commander's strings through).
    else if (typeof value === 'string' && typeof SETTINGS[key].default !== 'string') setText(key, value, { kind: 'option' });
    else {
      raw[key] = value;
      from.set(key, { kind: 'option' });
      failed.delete(key);
    }
  }

  const label = (key: SettingKey): string => settingLabel(key, from.get(key) ?? { kind: 'default' });
  const config: Record<string, unknown> = {};
  for (const key of KEYS) {
    if (failed.has(key)) continue;
    const result = SETTINGS[key].type.safeParse(raw[key]);
    if (result.success) {
      config[key] = result.data;
      continue;
    }
    failed.add(key);
    for (const issue of result.error.issues) {
      const where = issue.path.length > 0 ? `entry ${issue.path.map(String).join('.')}: ` : '';
      problems.push(`${label(key)}: ${where}${issue.message}`);
    }
  }
  problems.push(...crossProblems(config as BrokerConfig, label, failed));
  if (problems.length > 0) throw new ConfigError(problems);
  return { config: Object.freeze(config as BrokerConfig), sources: from };
}

/** The listeners a config opens, by the setting holding each port (TLS ones only with a certificate and a key). */
function listenerPorts(c: Readonly<BrokerConfig>): { key: SettingKey; port: number; stomp: boolean }[] {
  const tls = c.tlsCertFile !== '' && c.tlsKeyFile !== '';
  const all = [
    { key: 'port', port: c.port, stomp: true, on: c.port >= 0 },
    { key: 'wsPort', port: c.wsPort, stomp: true, on: c.wsPort >= 0 },
    { key: 'tlsPort', port: c.tlsPort, stomp: true, on: tls },
    { key: 'wssPort', port: c.wssPort, stomp: true, on: tls && c.wssPort >= 0 },
    { key: 'opsPort', port: c.opsPort, stomp: false, on: c.opsPort >= 0 },
  ] as const;
  return all.filter((l) => l.on).map(({ key, port, stomp }) => ({ key, port, stomp }));
}

/**
 * Rules that tie settings together, on the values that passed their own checks (a rule over a failed setting is
 * skipped: its problem is already reported). Caught here rather than at listen or connect time, so the message
 * names both settings and comes with every other problem.
 */
function crossProblems(c: Readonly<BrokerConfig>, label: (key: SettingKey) => string, failed: ReadonlySet<SettingKey>): string[] {
  const problems: string[] = [];
  const ok = (...keys: SettingKey[]) => keys.every((k) => !failed.has(k));
  // Listeners whose own settings are valid; whether TLS listens needs both file settings valid.
  const listeners = listenerPorts(c).filter(
    ({ key }) => ok(key) && (key !== 'tlsPort' && key !== 'wssPort' ? true : ok('tlsCertFile', 'tlsKeyFile')),
  );
  const seen = new Map<number, SettingKey>();
  for (const { key, port } of listeners) {
    if (port === 0) continue;
    const first = seen.get(port);
    if (first === undefined) seen.set(port, key);
    else problems.push(`${label(key)}: ${port} is also ${label(first)}; give each listener a port of its own`);
  }
  if (ok('port', 'wsPort', 'tlsPort', 'wssPort', 'tlsCertFile', 'tlsKeyFile') && !listeners.some((l) => l.stomp))
    problems.push(
      `${label('port')} and ${label('wsPort')}: both -1 (off) and no TLS certificate: keep at least one STOMP listener (TCP, WebSocket, TLS or WSS)`,
    );
  if (ok('tlsCertFile', 'tlsKeyFile') && (c.tlsCertFile === '') !== (c.tlsKeyFile === ''))
    problems.push(`${label('tlsCertFile')} and ${label('tlsKeyFile')}: give both, or neither`);
  if (ok('jwksFile', 'jwksUrl') && c.jwksFile !== '' && c.jwksUrl !== '')
    problems.push(`${label('jwksFile')} and ${label('jwksUrl')}: set at most one`);
  if (ok('authFailureDelayMs', 'authFailureDelayMaxMs') && c.authFailureDelayMaxMs < c.authFailureDelayMs)
    problems.push(`${label('authFailureDelayMaxMs')}: must not be less than ${label('authFailureDelayMs')}`);
  if (ok('kafkaSessionTimeoutMs', 'kafkaHeartbeatIntervalMs') && c.kafkaHeartbeatIntervalMs >= c.kafkaSessionTimeoutMs)
    problems.push(
      `${label('kafkaHeartbeatIntervalMs')}: must be below ${label('kafkaSessionTimeoutMs')} (${c.kafkaSessionTimeoutMs}); a third of it at most is advised`,
    );
  if (ok('redis', 'redisMode') && c.redisMode === 'standalone' && c.redis.includes(','))
    problems.push(`${label('redis')}: several URLs need ${label('redisMode')} sentinel (they are the sentinels) or cluster (seed nodes)`);
  if (ok('redis', 'redisMode') && c.redisMode !== 'standalone' && c.redis === '')
    problems.push(
      `${label('redisMode')}: ${c.redisMode} needs ${label('redis')} (the ${c.redisMode === 'sentinel' ? 'sentinels' : 'seed nodes'})`,
    );
  if (ok('kafkaSslCertFile', 'kafkaSslKeyFile') && (c.kafkaSslCertFile === '') !== (c.kafkaSslKeyFile === ''))
    problems.push(`${label('kafkaSslCertFile')} and ${label('kafkaSslKeyFile')}: give both, or neither`);
  if (ok('kafkaSaslMechanism', 'kafkaSaslUsername', 'kafkaSaslPassword') && c.kafkaSaslMechanism !== 'none' && c.kafkaSaslUsername === '')
    problems.push(
      `${label('kafkaSaslMechanism')}: ${c.kafkaSaslMechanism} needs ${label('kafkaSaslUsername')} and ${label('kafkaSaslPassword')}`,
    );
  if (ok('kafkaSaslMechanism', 'kafkaSaslUsername', 'kafkaSaslPassword') && c.kafkaSaslMechanism === 'none' && c.kafkaSaslUsername !== '')
    problems.push(
      `${label('kafkaSaslUsername')}: set, but ${label('kafkaSaslMechanism')} is none; choose plain, scram-sha-256 or scram-sha-512`,
    );
  if (ok('routes', 'redis', 'kafka')) {
    const engines = { redis: c.redis !== '', kafka: c.kafka !== '' };
    for (const problem of validateRoutes(c.routes, engines)) problems.push(`${label('routes')}: ${problem}`);
  }
  return problems;
}
