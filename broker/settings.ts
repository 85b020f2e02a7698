/**
 * The settings schema: every setting of a node, once. Its type and constraints (zod), its default, a one-line
 * description with units, an example and the docs section it belongs to. Everything else derives from it:
 * `DEFAULT_CONFIG` and the `BrokerConfig` type, the flag (`--ws-port`) and the variable (`STOMPEDE_WS_PORT`) named
 * after the key, `loadConfig`'s checks (broker/config.ts), the CLI help (bin/stompede.ts) and the settings tables of
 * docs/configuration.md (`npm run docs:config`, checked by spec/ops/docs.spec.ts).
 *
 * To add a setting: add ONE entry below, in the section's place (units in the key: `…Ms`, `…Bytes`); pick a type
 * from the helpers (`port`, `ms`, `count`, `bytes`, `text`, …) or write a zod type with messages that read after
 * "<setting>: "; then run `npm run docs:config` and add the key to the full example YAML of docs/configuration.md.
 * Rules that tie several settings together go in `crossProblems` (broker/config.ts).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { DEFAULT_FRAME_LIMITS } from '../frames/index.js';
import { NAME_RULE } from './ports/names.js';
import { DESTINATION_SOURCES, OPTION_NAMES, ROUTE_FORMATS, routeFields, type Route, type RouteKind } from './ports/routes.js';

/** The docs sections, in the order of docs/configuration.md; each has a generated table there. */
export const SECTIONS = {
  listeners: 'Listeners',
  node: 'Node, clients and logs',
  auth: 'Authentication and bearer tokens',
  timeouts: 'Heart-beats and timeouts',
  frames: 'Frame limits',
  flow: 'Flow control and queues',
  limits: 'Connection and session limits',
  cluster: 'Cluster engines and routes',
  history: 'Topic history',
} as const;
export type SectionId = keyof typeof SECTIONS;

/** How a value reads in a problem: `got string`, `got a list`. */
function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'a mapping' : typeof value;
}

/** A number whose failed `check` reads `message(value)`; a non-number reads "expected a number, got …". */
function number(check: (n: number) => boolean, message: (n: number) => string) {
  return z.number({ error: (issue) => `expected a number, got ${kindOf(issue.input)}` }).superRefine((n, ctx) => {
    if (!check(n)) ctx.addIssue({ code: 'custom', message: message(n) });
  });
}

function textOf(check: (s: string) => boolean, message: (s: string) => string) {
  return z.string({ error: (issue) => `expected text, got ${kindOf(issue.input)}` }).superRefine((s, ctx) => {
    if (!check(s)) ctx.addIssue({ code: 'custom', message: message(s) });
  });
}

/** A TCP port; `-1` (where `min` allows it) turns the listener off, `0` picks a free port. */
const port = (min: -1 | 0) => ({
  type: number(
    (n) => Number.isInteger(n) && n >= min && n <= 65535,
    (n) => `${n} is not a port (${min}..65535)`,
  ),
  arg: '<port>',
});
const whole = (min: 0 | 1, arg: string) => ({
  type: number(
    (n) => Number.isInteger(n) && n >= min,
    (n) => `must be a whole number of ${min} or more, not ${n}`,
  ),
  arg,
});
/** Durations: 0 usually means "never" or "none", as each description says. */
const ms = () => whole(0, '<ms>');
/** Counts and sizes that must allow at least one of something. */
const count = () => whole(1, '<count>');
const bytes = () => whole(1, '<bytes>');
const text = (arg = '<text>') => ({
  type: textOf(
    () => true,
    () => '',
  ),
  arg,
});
const file = () => text('<file>');
/** On or off: a flag or a variable takes `true`/`false` (also `on`/`off`, `yes`/`no`, `1`/`0`). */
const flag = () => ({
  type: z.boolean({ error: (issue) => `expected true or false, got ${kindOf(issue.input)}` }),
  arg: '<true|false>',
});
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, arg: string) => ({
  type: z.enum(values, { error: (issue) => `"${String(issue.input)}" is not one of ${values.join(', ')}` }),
  arg,
});

/** A host name (RFC 1123 labels) or an IP address: what a listener can bind to. */
function validHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  return host.length <= 253 && host.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

const urlOf = (schemes: RegExp, example: string) => ({
  type: textOf(
    (s) => s === '' || schemes.test(s),
    (s) => `"${s}" is not a URL (e.g. ${example})`,
  ),
  arg: '<url>',
});

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const ROUTE_SHAPE = 'a route is text pattern=kind[:target][;option=value]... or a mapping {pattern, kind, target, format, destination}';

/**
 * One route as a config file writes it (the mapping form, or the text grammar of broker/ports/routes.ts turned into
 * one), as the Route it stands for. `kind`, the target and the engines are checked together by validateRoutes.
 */
const ROUTE = z
  .object(
    {
      pattern: z.string({ error: 'a route needs a pattern (text starting with /)' }),
      kind: z.string({ error: 'a route needs a kind (local, redis or kafka)' }),
      target: z.string({ error: 'target must be text (a Kafka topic or Redis channel, {N} for the N-th wildcard)' }).optional(),
      /** The name the target had before templates; still read so that older files keep working. */
      kafkaTopic: z.string({ error: 'kafkaTopic must be text' }).optional(),
      format: z
        .enum(ROUTE_FORMATS, { error: (i) => `format must be one of ${ROUTE_FORMATS.join(', ')}, not ${shown(i.input)}` })
        .optional(),
      destination: z
        .enum(DESTINATION_SOURCES, { error: (i) => `destination must be one of ${DESTINATION_SOURCES.join(', ')}, not ${shown(i.input)}` })
        .optional(),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown route option ${issue.keys.map((k) => `"${k}"`).join(', ')} (known: target, ${OPTION_NAMES.join(', ')})`
          : `${ROUTE_SHAPE}, not ${kindOf(issue.input)}`,
    },
  )
  .strict()
  .superRefine((r, ctx) => {
    if (r.target !== undefined && r.kafkaTopic !== undefined && r.target !== r.kafkaTopic)
      ctx.addIssue({ code: 'custom', message: 'give target or kafkaTopic (its older name), not both' });
  })
  .transform((r): Route => {
    const target = r.target ?? r.kafkaTopic;
    const options = {
      ...(r.format !== undefined ? { format: r.format } : {}),
      ...(r.destination !== undefined ? { destination: r.destination } : {}),
    };
    return {
      pattern: r.pattern,
      kind: r.kind as RouteKind,
      ...(target !== undefined ? { target } : {}),
      ...(Object.keys(options).length > 0 ? { options } : {}),
    };
  });

function shown(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : kindOf(value);
}

/**
 * A route in the text grammar → its mapping form, the grammar of the flag and the variable. A config file may
 * write routes that way too (`routes: ["/topic/**=redis"]`, or one comma-separated string): same grammar everywhere.
 */
export function routeFromText(entry: string): Record<string, string> {
  return routeFields(entry);
}

function routesFromText(value: unknown): unknown {
  const entries = (text: string) =>
    text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(routeFromText);
  if (typeof value === 'string') return entries(value);
  if (Array.isArray(value)) return value.flatMap((r: unknown) => (typeof r === 'string' ? entries(r) : [flatRoute(r)]));
  return value;
}

/** A Route as loadConfig produced it (options nested), in the mapping form again: a loaded config can be loaded again. */
function flatRoute(route: unknown): unknown {
  if (typeof route !== 'object' || route === null || !('options' in route)) return route;
  const { options, ...rest } = route;
  return typeof options === 'object' && options !== null ? { ...rest, ...options } : route;
}

interface Setting<T extends z.ZodType> {
  readonly type: T;
  /** Shown in help: `<port>`, `<ms>`, `<bytes>`. */
  readonly arg: string;
  readonly default: z.output<T>;
  readonly section: SectionId;
  /** One line with units, for `--help` and the start of the docs row (Markdown: backticks, links). */
  readonly help: string;
  /** The rest of the docs row. */
  readonly details?: string;
  /** A value as a flag takes it. */
  readonly example: string;
}

/** Keeps each entry's own zod type, so `BrokerConfig` is inferred key by key. */
function setting<T extends z.ZodType>(s: Setting<T>): Setting<T> {
  return s;
}

export const SETTINGS = {
  host: setting({
    type: textOf(validHost, (s) => `"${s}" is not a host name or an IP address`),
    arg: '<host>',
    default: '127.0.0.1',
    section: 'listeners',
    help: 'Interface every listener binds to.',
    details: '`0.0.0.0` listens on every interface (the Docker image sets it).',
    example: '0.0.0.0',
  }),
  port: setting({
    ...port(-1),
    default: 61613,
    section: 'listeners',
    help: 'STOMP over TCP (`-1`: off).',
    details: 'Keep at least one STOMP listener: TCP, WebSocket, or TLS with a certificate.',
    example: '61623',
  }),
  wsPort: setting({
    ...port(-1),
    default: 15674,
    section: 'listeners',
    help: 'STOMP over WebSocket, plus plain HTTP: the chat page (`-1`: off).',
    details: 'With `opsPort` `-1`, `/healthz`, `/readyz` and `/metrics` answer here too.',
    example: '15684',
  }),
  wsPath: setting({
    type: textOf(
      (s) => s.startsWith('/'),
      (s) => `"${s}" must start with /`,
    ),
    arg: '<path>',
    default: '/ws',
    section: 'listeners',
    help: 'Path of the WebSocket endpoint (`ws://host:15674/ws`); must start with `/`.',
    example: '/stomp',
  }),
  opsPort: setting({
    ...port(-1),
    default: 15692,
    section: 'listeners',
    help: "Plain-HTTP listener for `/metrics`, `/healthz`, `/readyz` and the management API (15692, like RabbitMQ's Prometheus port).",
    details:
      'They answer only there (404 on `wsPort`), so they can stay on an internal port; `-1`: none, and the health and metrics endpoints answer on `wsPort`.',
    example: '15692',
  }),
  tlsPort: setting({
    ...port(0),
    default: 61614,
    section: 'listeners',
    help: 'STOMP over TLS, when `tlsCertFile` and `tlsKeyFile` are both set.',
    example: '61615',
  }),
  wssPort: setting({
    ...port(-1),
    default: 15673,
    section: 'listeners',
    help: 'STOMP over secure WebSocket, with the same certificate (`-1`: off).',
    example: '-1',
  }),
  tlsCertFile: setting({
    ...file(),
    default: '',
    section: 'listeners',
    help: 'PEM certificate (chain) for TLS and WSS; give it together with `tlsKeyFile`.',
    example: '/etc/stompede/cert.pem',
  }),
  tlsKeyFile: setting({
    ...file(),
    default: '',
    section: 'listeners',
    help: 'PEM private key of `tlsCertFile`.',
    example: '/etc/stompede/key.pem',
  }),
  nodeId: setting({
    type: textOf(
      (s) => s === '' || NAME_RULE.pattern.test(s),
      (s) => `"${s}" may use only ${NAME_RULE.text}`,
    ),
    arg: '<name>',
    default: '',
    section: 'node',
    help: `Names this node in logs, message ids, metrics and the cluster (${NAME_RULE.text}; empty: random).`,
    details: 'Give each node of a cluster a stable one, so a restarted node resumes where it stopped.',
    example: 'node-1',
  }),
  usersFile: setting({
    ...file(),
    default: '',
    section: 'node',
    help: 'JSON users file (scrypt password hashes, per-vhost permissions); reloaded on SIGHUP and when it changes.',
    details:
      'Made with `stompede add-user --users-file FILE LOGIN` (see [security.md](security.md)). Empty (and no JWKS): anyone may connect, with or without a login.',
    example: '/etc/stompede/users.json',
  }),
  logLevel: setting({
    type: z.enum(LOG_LEVELS, { error: (issue) => `"${String(issue.input)}" is not one of ${LOG_LEVELS.join(', ')}` }),
    arg: '<level>',
    default: 'info',
    section: 'node',
    help: 'Least level logged (pino JSON lines on standard output): `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`.',
    example: 'warn',
  }),
  virtualHosts: setting({
    type: z.array(z.string({ error: 'each virtual host must be text' }), {
      error: (issue) => `expected a list of names, got ${kindOf(issue.input)}`,
    }),
    arg: '<list>',
    default: [],
    section: 'node',
    help: 'Virtual hosts a client may name in the CONNECT `host` header besides the default `/` (comma-separated).',
    details:
      'The names of this machine and no header at all mean `/`. Empty: every host value means `/` (each new name logged once at debug); set: any other name is an ERROR that lists none of them.',
    example: 'chat,ops',
  }),
  jwksFile: setting({
    ...file(),
    default: '',
    section: 'auth',
    help: 'JWKS file (`{"keys": [...]}`) verifying bearer tokens: a `passcode` that is a JWT.',
    details: 'Re-read on SIGHUP. Set at most one of `jwksFile` and `jwksUrl`.',
    example: '/etc/stompede/jwks.json',
  }),
  jwksUrl: setting({
    ...urlOf(/^https?:\/\//, 'https://login.example.com/.well-known/jwks.json'),
    default: '',
    section: 'auth',
    help: 'JWKS URL (http or https), fetched and cached; refetched when a token names an unknown key id.',
    example: 'https://login.example.com/.well-known/jwks.json',
  }),
  jwtIssuer: setting({
    ...text(),
    default: '',
    section: 'auth',
    help: 'Required `iss` of tokens (empty: not checked).',
    example: 'https://login.example.com/',
  }),
  jwtAudience: setting({
    ...text(),
    default: '',
    section: 'auth',
    help: 'Required `aud` of tokens (empty: not checked).',
    example: 'stompede',
  }),
  jwtUserClaim: setting({
    type: textOf(
      (s) => s !== '',
      () => 'must name a claim',
    ),
    arg: '<claim>',
    default: 'sub',
    section: 'auth',
    help: 'Token claim that holds the login (`user-name`, `user-id`).',
    example: 'preferred_username',
  }),
  jwtPermissionsClaim: setting({
    type: textOf(
      (s) => s !== '',
      () => 'must name a claim',
    ),
    arg: '<claim>',
    default: 'stompede',
    section: 'auth',
    help: 'Token claim that holds the rights: the users-file object without its password, `{"vhosts": {...}}`.',
    details: 'No claim: no virtual host.',
    example: 'stomp_rights',
  }),
  authFailureDelayMs: setting({
    ...ms(),
    default: 100,
    section: 'auth',
    help: 'Delay (ms) before the next attempt after a failed login, per address and per login; doubles per failure.',
    details: 'Paid before the password check.',
    example: '250',
  }),
  authFailureDelayMaxMs: setting({
    ...ms(),
    default: 5000,
    section: 'auth',
    help: 'Cap of that delay (ms; 5 s); not less than `authFailureDelayMs`.',
    example: '10000',
  }),
  authFailureForgetMs: setting({
    ...ms(),
    default: 60000,
    section: 'auth',
    help: 'Failures of an address or login are forgiven after this long without another (ms; 1 min).',
    example: '300000',
  }),
  maxConcurrentAuthChecks: setting({
    ...count(),
    default: 2,
    section: 'auth',
    help: 'Password checks (scrypt, ~30 ms of CPU each) running at once, node-wide.',
    details: 'More wait their turn, one per remote address at a time.',
    example: '4',
  }),
  heartbeatMinMs: setting({
    ...ms(),
    default: 1000,
    section: 'timeouts',
    help: 'Floor of negotiated heart-beats in both directions (ms); heart-beats otherwise follow the client’s CONNECT offer.',
    details:
      'The node beats every max(cy, floor) and expects a beat every max(cx, floor) for a CONNECT `heart-beat: cx,cy`; `0` from the client means none that way. `0`: no floor.',
    example: '500',
  }),
  heartbeatGrace: setting({
    type: number(
      (n) => n > 0,
      (n) => `must be greater than 0, not ${n}`,
    ),
    arg: '<factor>',
    default: 2,
    section: 'timeouts',
    help: 'A client silent for its negotiated interval times this factor is disconnected.',
    example: '3',
  }),
  connectTimeoutMs: setting({
    ...ms(),
    default: 10000,
    section: 'timeouts',
    help: 'A connection that has not sent CONNECT by then is closed (ms); `0` waits forever.',
    example: '5000',
  }),
  shutdownDrainMs: setting({
    ...ms(),
    default: 5000,
    section: 'timeouts',
    help: 'On SIGTERM, how long `/readyz` answers 503 while the listeners still serve (ms).',
    details: 'So a load balancer stops sending new clients before they are closed.',
    example: '15000',
  }),
  closeTimeoutMs: setting({
    ...ms(),
    default: 2000,
    section: 'timeouts',
    help: 'After an ERROR, or on shutdown, how long a peer gets to read what we sent before its socket is destroyed (ms).',
    example: '5000',
  }),
  maxFrameBytes: setting({
    ...bytes(),
    default: DEFAULT_FRAME_LIMITS.maxFrameBytes,
    section: 'frames',
    help: 'Largest frame accepted, headers and body (4 MiB + 64 KiB).',
    details: 'An authenticated WebSocket message may hold up to four such frames.',
    example: '1114112',
  }),
  maxBodyBytes: setting({
    ...bytes(),
    default: DEFAULT_FRAME_LIMITS.maxBodyBytes,
    section: 'frames',
    help: 'Largest body accepted (4 MiB).',
    example: '1048576',
  }),
  maxHeaders: setting({
    ...count(),
    default: DEFAULT_FRAME_LIMITS.maxHeaders,
    section: 'frames',
    help: 'Most headers in one frame.',
    example: '100',
  }),
  maxHeaderLineBytes: setting({
    ...bytes(),
    default: DEFAULT_FRAME_LIMITS.maxHeaderLineBytes,
    section: 'frames',
    help: 'Longest header line (10 KiB).',
    example: '4096',
  }),
  maxFrameBytesUnauthenticated: setting({
    ...bytes(),
    default: 64 * 1024,
    section: 'frames',
    help: 'Frame limit until the client has authenticated (64 KiB), so strangers cannot make us buffer much.',
    details:
      'Also the largest WebSocket message before then, enforced while the message arrives (the connection closes with 1009; `stompede_limit_hits_total{limit="websocket-message"}`).',
    example: '16384',
  }),
  maxOutboundBytes: setting({
    ...bytes(),
    default: 16 * 1024 * 1024,
    section: 'flow',
    help: 'Unsent bytes past which a session is a slow consumer and is disconnected (16 MiB).',
    details:
      'Checked after any frame we write (MESSAGE, RECEIPT, ERROR, heart-beat): the session gets the ERROR `slow consumer (limit N unsent bytes)`, its socket destroyed after `closeTimeoutMs` even if it never reads (`stompede_slow_consumer_disconnects_total`, `stompede_limit_hits_total{limit="outbound-bytes"}`). History replays (`x-history` and the like) are paced by the socket instead: sent while fewer than `outboundHighWaterBytes` (at most half of this) wait, resumed as it drains, so a replay of any size reaches a client that reads; live messages held back meanwhile may total this much, past it the subscriber is a slow consumer.',
    example: '67108864',
  }),
  outboundHighWaterBytes: setting({
    ...bytes(),
    default: 1024 * 1024,
    section: 'flow',
    help: 'Queue deliveries to a session pause while this many bytes (1 MiB) wait on its socket, and resume when it drains.',
    details:
      'Over TCP and TLS the broker also stops reading from such a client until then (flow control), so RECEIPTs it does not collect wait in its own socket.',
    example: '262144',
  }),
  maxQueueMessages: setting({
    ...count(),
    default: 100_000,
    section: 'flow',
    help: 'Most messages a queue holds while nobody consumes them; a SEND past it gets an ERROR.',
    example: '10000',
  }),
  maxQueueBytes: setting({
    ...bytes(),
    default: 256 * 1024 * 1024,
    section: 'flow',
    help: 'Most bytes a queue holds (256 MiB; each message counts its body plus 256); a SEND past it gets an ERROR.',
    example: '67108864',
  }),
  maxDeliveries: setting({
    ...whole(0, '<count>'),
    default: 5,
    section: 'flow',
    help: 'Deliveries of one queue message before it moves to `<queue>.dlq`; `0` never dead-letters.',
    example: '10',
  }),
  maxDestinationsPerVhost: setting({
    ...count(),
    default: 10_000,
    section: 'flow',
    help: 'Distinct destinations one virtual host holds state for (queues, topics with history or subscribers).',
    details:
      'Each queue, each topic with history in memory, each topic with (non-wildcard) subscribers counts once. A SEND or SUBSCRIBE that would create one more gets ERROR `too many destinations: <destination> would exceed maxDestinationsPerVhost (<n>)`. A queue with no messages, consumers or unacknowledged deliveries on this node is forgotten, as is a topic whose history was evicted and that nobody subscribes to.',
    example: '50000',
  }),
  memoryHighWatermarkBytes: setting({
    ...whole(0, '<bytes>'),
    default: 0,
    section: 'flow',
    help: 'Resident memory (RSS) above which every SEND is refused (`0`: 40% of the machine or cgroup memory).',
    details:
      "Sampled every 500 ms. A SEND gets ERROR `broker low on memory` (the body gives RSS and the watermark) and that connection closes, until memory falls below it again; subscribers keep receiving. `0` follows RabbitMQ's `vm_memory_high_watermark` 0.4.",
    example: '2147483648',
  }),
  maxConnections: setting({
    ...count(),
    default: 65_536,
    section: 'limits',
    help: 'Open connections per node, counted from accept, before CONNECT.',
    details:
      'One more gets `too many connections (limit N per node)` (`connections`). Each listener also drops sockets at accept, silently, past this plus 32 (TLS handshakes and HTTP requests that never become sessions count there too). On Linux the node warns at start when this plus 64 does not fit under the open-file soft limit (`ulimit -n`).',
    example: '10000',
  }),
  maxConnectionsPerUser: setting({
    ...count(),
    default: 20_000,
    section: 'limits',
    help: 'CONNECTed sessions per login on this node, checked at CONNECTED time.',
    details:
      'One more gets `too many connections for this user (limit N per user)` (`connections-per-user`). Only when clients authenticate (a users file or an authenticator); without, everyone is `anonymous` and only `maxConnections` applies.',
    example: '100',
  }),
  maxSubscriptionsPerConnection: setting({
    ...count(),
    default: 1000,
    section: 'limits',
    help: 'Subscriptions one connection may hold.',
    details: 'One more gets `too many subscriptions (limit N per connection)` (`subscriptions`).',
    example: '100',
  }),
  maxTransactionsPerConnection: setting({
    ...count(),
    default: 100,
    section: 'limits',
    help: 'Transactions open at once on one connection.',
    details: 'One more gets `too many open transactions (limit N per connection)` (`transactions`).',
    example: '10',
  }),
  maxTransactionBytes: setting({
    ...bytes(),
    default: 16 * 1024 * 1024,
    section: 'limits',
    help: "Bytes of SEND, ACK and NACK frames held in one connection's open transactions until COMMIT (16 MiB).",
    details: '`maxQueueBytes` does not see them. Past it: `transactions too large (limit N bytes per connection)` (`transaction-bytes`).',
    example: '4194304',
  }),
  maxUnackedPerSubscription: setting({
    ...count(),
    default: 1000,
    section: 'limits',
    help: 'Unacknowledged messages per `client` / `client-individual` subscription (`prefetch-count` can only lower it).',
    details:
      'A queue stops delivering to that subscription until it ACKs; a topic subscription past it gets `too many unacknowledged messages (limit N per subscription)` (`unacked`).',
    example: '100',
  }),
  idleTimeoutMs: setting({
    ...ms(),
    default: 300_000,
    section: 'limits',
    help: 'A CONNECTed session with no bytes in either direction for this long is closed (ms; 5 minutes; `0`: never).',
    details:
      'It gets `idle timeout (limit N ms without traffic)` (`idle`); heart-beats, or messages flowing to a subscriber, keep a session alive.',
    example: '60000',
  }),
  clusterName: setting({
    type: textOf(
      (s) => NAME_RULE.pattern.test(s),
      (s) => `"${s}" may use only ${NAME_RULE.text}`,
    ),
    arg: '<name>',
    default: 'stompede',
    section: 'cluster',
    help: 'Names the cluster: the Kafka consumer group, the prefix of Redis keys and channels and of MongoDB collections.',
    details: `Nodes with the same engines and the same name form one cluster; ${NAME_RULE.text}.`,
    example: 'chat-prod',
  }),
  redis: setting({
    type: textOf(
      (s) => s === '' || s.split(',').every((u) => /^[a-z+]+:\/\/\S/.test(u.trim())),
      (s) => `"${s}" is not a URL (e.g. redis://127.0.0.1:6379), nor a comma-separated list of them`,
    ),
    arg: '<url>',
    default: '',
    section: 'cluster',
    help: 'Redis URL: cross-node pub/sub (`redis` routes), shared queues, the history cache (empty: not used).',
    details:
      '`rediss://` connects with TLS. With `redisMode` `sentinel` or `cluster`, a comma-separated list: the sentinels, or seed nodes of the cluster. Passwords in it are masked wherever it is shown.',
    example: 'redis://:secret@redis:6379',
  }),
  redisMode: setting({
    ...oneOf(['standalone', 'sentinel', 'cluster'] as const, '<mode>'),
    default: 'standalone',
    section: 'cluster',
    help: '`standalone` (one server), `sentinel` (`redis` lists the sentinels) or `cluster` (`redis` lists seed nodes of a Redis Cluster).',
    details:
      'A Redis Cluster carries fan-out with sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7+) and refuses wildcard subscriptions on `redis` routes; its shared queues live in one hash slot. See [operations.md](operations.md#redis-sentinel-and-redis-cluster).',
    example: 'cluster',
  }),
  redisSentinelMaster: setting({
    ...text('<name>'),
    default: 'mymaster',
    section: 'cluster',
    help: 'With `redisMode` `sentinel`: the master name the sentinels monitor.',
    example: 'stompede',
  }),
  redisUsername: setting({
    ...text('<name>'),
    default: '',
    section: 'cluster',
    help: 'Redis ACL user (empty: the one in the URL, else `default`).',
    example: 'stompede',
  }),
  redisPassword: setting({
    ...text('<password>'),
    default: '',
    section: 'cluster',
    help: 'Redis password (empty: the one in the URL); never printed.',
    details: 'Prefer the variable or the config file to the flag, which shows in the process list.',
    example: 's3cret',
  }),
  redisTlsCaFile: setting({
    ...file(),
    default: '',
    section: 'cluster',
    help: 'PEM CA certificate(s) that verify Redis servers over TLS (empty: the system CAs); implies TLS.',
    example: '/etc/stompede/redis-ca.pem',
  }),
  kafka: setting({
    type: textOf(
      (s) => s === '' || s.split(',').every((b) => /^[^:\s]+:\d{1,5}$/.test(b.trim())),
      (s) => `"${s}" is not host:port[,host:port]`,
    ),
    arg: '<brokers>',
    default: '',
    section: 'cluster',
    help: 'Kafka bootstrap brokers, `host:port[,host:port]`: the durable ordered log (`kafka` routes; empty: not used).',
    example: 'kafka-1:9092,kafka-2:9092',
  }),
  kafkaClientId: setting({
    type: textOf(
      (s) => s === '' || /^[A-Za-z0-9._-]{1,249}$/.test(s),
      (s) => `"${s}" may use only letters, digits, ".", "_" and "-" (1 to 249)`,
    ),
    arg: '<name>',
    default: '',
    section: 'cluster',
    help: 'Kafka client id, as broker quotas and logs see it (empty: `stompede-<nodeId>`).',
    example: 'stompede-prod',
  }),
  kafkaSsl: setting({
    ...flag(),
    default: false,
    section: 'cluster',
    help: 'Connect to the Kafka brokers with TLS (verified against `kafkaSslCaFile`, else the system CAs).',
    example: 'true',
  }),
  kafkaSslCaFile: setting({
    ...file(),
    default: '',
    section: 'cluster',
    help: 'PEM CA certificate(s) of the Kafka brokers; implies `kafkaSsl`.',
    example: '/etc/stompede/kafka-ca.pem',
  }),
  kafkaSslCertFile: setting({
    ...file(),
    default: '',
    section: 'cluster',
    help: 'PEM client certificate for mutual TLS with Kafka; give it with `kafkaSslKeyFile`.',
    example: '/etc/stompede/kafka-client.pem',
  }),
  kafkaSslKeyFile: setting({
    ...file(),
    default: '',
    section: 'cluster',
    help: 'PEM private key of `kafkaSslCertFile`.',
    example: '/etc/stompede/kafka-client.key',
  }),
  kafkaSaslMechanism: setting({
    ...oneOf(['none', 'plain', 'scram-sha-256', 'scram-sha-512'] as const, '<mechanism>'),
    default: 'none',
    section: 'cluster',
    help: 'SASL login to Kafka: `none`, `plain`, `scram-sha-256` or `scram-sha-512`, with `kafkaSaslUsername` and `kafkaSaslPassword`.',
    details: 'Over plain TCP `plain` sends the password in clear: use it with `kafkaSsl`.',
    example: 'scram-sha-512',
  }),
  kafkaSaslUsername: setting({
    ...text('<name>'),
    default: '',
    section: 'cluster',
    help: 'User name of the SASL login to Kafka (with `kafkaSaslMechanism`).',
    example: 'stompede',
  }),
  kafkaSaslPassword: setting({
    ...text('<password>'),
    default: '',
    section: 'cluster',
    help: 'SASL password; never printed.',
    details: 'Prefer the variable or the config file to the flag, which shows in the process list.',
    example: 's3cret',
  }),
  kafkaAutoCreateTopics: setting({
    ...flag(),
    default: true,
    section: 'cluster',
    help: 'Create the Kafka topics the routes name when they are missing; `false`: a missing topic stops the start, named.',
    example: 'false',
  }),
  kafkaTopicPartitions: setting({
    ...count(),
    default: 8,
    section: 'cluster',
    help: 'Partitions of the topics this node creates (existing topics keep theirs).',
    example: '24',
  }),
  kafkaReplicationFactor: setting({
    ...whole(0, '<count>'),
    default: 0,
    section: 'cluster',
    help: 'Replicas of the topics this node creates (`0`: min(3, brokers in the Kafka cluster), asked at start).',
    example: '3',
  }),
  mongo: setting({
    ...urlOf(/^[a-z+]+:\/\//, 'mongodb://127.0.0.1:27017'),
    default: '',
    section: 'cluster',
    help: "MongoDB URL for topic history shared by the cluster (empty: history stays in each node's memory).",
    example: 'mongodb://mongo:27017',
  }),
  routes: setting({
    type: z.preprocess(routesFromText, z.array(ROUTE, { error: (issue) => `expected a list of routes, got ${kindOf(issue.input)}` })),
    arg: '<routes>',
    default: [],
    section: 'cluster',
    help: 'Which engine carries which destinations: `pattern=kind[:target][;option=value]...`, comma-separated, first match wins.',
    details:
      'kind is `local`, `redis` or `kafka`; `{N}` in the target is what the N-th wildcard matched. ' +
      'Empty: the defaults for the engines configured. See [Routes](#routes).',
    example: '/topic/orders.*=kafka:orders.{1},/topic/**=redis,/queue/**=local',
  }),
  kafkaSessionTimeoutMs: setting({
    ...count(),
    arg: '<ms>',
    default: 2_000,
    section: 'cluster',
    help: 'A node silent this long (ms) loses its Kafka partitions to the others: it bounds failover after a crash.',
    details:
      "The Kafka brokers' `group.min.session.timeout.ms` (default 6000) must allow it: set it to 2000 or lower there (a node refused at start says so). Lower is quicker failover, but a node whose event loop stalls this long is taken for dead.",
    example: '3000',
  }),
  kafkaHeartbeatIntervalMs: setting({
    ...count(),
    arg: '<ms>',
    default: 300,
    section: 'cluster',
    help: 'How often (ms) a node tells the Kafka group coordinator it is alive; below `kafkaSessionTimeoutMs` (a third of it at most is advised).',
    example: '500',
  }),
  kafkaTopicDiscoveryMs: setting({
    ...ms(),
    default: 5_000,
    section: 'cluster',
    help: 'How often (ms) a node looks for new Kafka topics that fit a template route, to read them too (`0`: never).',
    details:
      'An outside producer may create such a topic at any time: wildcard subscribers on every node get its records, those written before the node found it included. What one look finds costs one consumer-group rebalance.',
    example: '10000',
  }),
  historyMaxPerDestination: setting({
    ...whole(0, '<count>'),
    default: 1000,
    section: 'history',
    help: 'Messages kept per topic for `x-history`, `x-resume-after` and `x-stream-offset` replays (`0`: no limit).',
    example: '10000',
  }),
  historyMaxAgeMs: setting({
    ...ms(),
    default: 7 * 24 * 3600 * 1000,
    section: 'history',
    help: 'Messages older than this (ms; 7 days) are dropped from history (`0`: no age limit).',
    example: '86400000',
  }),
  historyMaxBytesPerDestination: setting({
    ...whole(0, '<bytes>'),
    default: 16 * 1024 * 1024,
    section: 'history',
    help: 'Bytes of history kept per topic (16 MiB), oldest dropped first (`0`: no byte limit).',
    details:
      'A message counts its body, headers and 256 bytes; one larger than this alone is delivered but never kept. Applies to in-memory history and the Redis cache; MongoDB history is bounded by count and age only.',
    example: '4194304',
  }),
  historyMaxBytes: setting({
    ...whole(0, '<bytes>'),
    default: 256 * 1024 * 1024,
    section: 'history',
    help: 'Bytes of in-memory history this node keeps across all topics (256 MiB; `0`: no limit).',
    details: 'Past it the oldest messages go first, whichever topic they belong to.',
    example: '1073741824',
  }),
  historyCacheSize: setting({
    ...whole(0, '<count>'),
    default: 100,
    section: 'history',
    help: 'With both `redis` and `mongo`: the most recent messages per topic also kept in a Redis list (`0`: off).',
    details: 'So `x-history` reads skip MongoDB.',
    example: '500',
  }),
};

export type SettingKey = keyof typeof SETTINGS;
type Shape = { readonly [K in SettingKey]: (typeof SETTINGS)[K]['type'] };

/** The whole schema as one zod object: `BrokerConfig` is its output type. loadConfig checks key by key, to name each source. */
export const CONFIG_SCHEMA = z.object(Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, s.type])) as unknown as Shape);
