#!/usr/bin/env node
/**
 * The CLI only: parse flags, load config, create the broker, listen, close on SIGTERM/SIGINT.
 * Every config key has a flag named after it (`wsPort` → `--ws-port`), so flags, config-file keys and
 * STOMPEDE_* variables always cover the same settings.
 */
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { createInterface } from 'node:readline';
import { addUser } from '../broker/auth.js';
import { ctlCommand } from './ctl.js';
import type { Broker } from '../broker/broker.js';
import { createBroker, listen, withNodeId } from '../broker/server.js';
import { listeningUrls, URL_LABELS } from './urls.js';
import { SERVER_VERSION } from '../broker/version.js';
import { ConfigError, envName, flagName, loadConfig, type BrokerConfig } from '../broker/config.js';
import { effectiveRoutes, routeText } from '../broker/ports/routes.js';
import { SETTINGS } from '../broker/settings.js';
import type { Logger } from '../broker/ports/logger.js';
import { MASK, maskSecrets } from '../broker/ports/secrets.js';

/** Settings holding URLs that may carry passwords (masked by broker/ports/secrets.ts), and ones that are secrets. */
const URL_KEYS = new Set(['redis', 'kafka', 'mongo', 'jwksUrl']);
const SECRET_KEYS = new Set(['redisPassword', 'kafkaSaslPassword']);

/** A setting's value as shown anywhere: URL passwords masked, password settings replaced whole (when set). */
function mask(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (SECRET_KEYS.has(key)) return value === '' ? value : MASK;
  return URL_KEYS.has(key) ? maskSecrets(value) : value;
}

/** pino's error serializer, with URL passwords masked in the message and the stack. */
function maskedError(error: Error): Record<string, unknown> {
  const out = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  for (const key of ['message', 'stack']) if (typeof out[key] === 'string') out[key] = maskSecrets(out[key]);
  return out;
}

/** What to check when an engine is down, by the role `Broker.readiness()` names it with. */
function engineHint(engine: string, config: Readonly<BrokerConfig>): string {
  switch (engine) {
    case 'fanout':
    case 'queues':
      return `Redis at ${String(mask('redis', config.redis))} (--redis, ${envName('redis')})`;
    case 'log':
      return `Kafka at ${config.kafka} (--kafka, ${envName('kafka')})`;
    case 'history':
      return config.mongo !== '' ? `MongoDB at ${String(mask('mongo', config.mongo))} (--mongo, ${envName('mongo')})` : 'the history store';
    default:
      return engine;
  }
}

/** How often the CLI looks at readiness; it logs only changes, so a healthy node logs nothing. */
const READINESS_CHECK_MS = 5_000;

/**
 * Logs once when an engine goes down (naming what to check, and whether /readyz follows) and once when it is back.
 * Engines carrying SENDs make the node unready; the history store does not (Broker.readiness says why).
 */
function watchReadiness(broker: Broker, logger: Logger): void {
  let wasDown = new Set<string>();
  const timer = setInterval(() => {
    const { ready, state, engines } = broker.readiness();
    if (state === 'draining' || state === 'closing' || state === 'starting') return;
    const down = new Set(
      Object.entries(engines)
        .filter(([, healthy]) => !healthy)
        .map(([engine]) => engine),
    );
    const fallen = [...down].filter((engine) => !wasDown.has(engine));
    const back = [...wasDown].filter((engine) => !down.has(engine));
    wasDown = down;
    const readyz = ready ? '/readyz answers 200' : '/readyz answers 503';
    if (back.length > 0) logger.info({ engines, back }, `reachable again: ${back.join(', ')}; ${readyz}`);
    if (fallen.length === 0) return;
    const what = [...new Set(fallen.map((engine) => engineHint(engine, broker.config)))].join(' and ');
    if (fallen.every((engine) => engine === 'history')) {
      logger.warn(
        { engines, down: [...down] },
        `history store down: cannot reach ${what}; live traffic flows, history appends are retried and replays wait. ` +
          `${readyz} (a history outage alone does not make a node unready). Start it, or fix the address.`,
      );
    } else {
      logger.warn(
        { engines, down: [...down] },
        `not ready: cannot reach ${what}; /readyz answers 503 until it is reachable. Start it, or fix the address.`,
      );
    }
  }, READINESS_CHECK_MS);
  timer.unref();
}

/** Names the setting behind a file that could not be read, so the message says what to fix. */
function fileProblem(error: NodeJS.ErrnoException, config: Readonly<BrokerConfig> | undefined): string | undefined {
  if (typeof error.path !== 'string' || (error.code !== 'ENOENT' && error.code !== 'EACCES' && error.code !== 'EISDIR')) return undefined;
  const path = error.path;
  const key = config === undefined ? undefined : (Object.keys(config) as (keyof BrokerConfig)[]).find((k) => config[k] === path);
  const reason = error.code === 'ENOENT' ? 'does not exist' : error.code === 'EACCES' ? 'is not readable by this user' : 'is a directory';
  if (key === undefined) return `${path} ${reason}`;
  const fix =
    key === 'usersFile' && error.code === 'ENOENT' ? `create it with \`stompede add-user --users-file ${path} <login>\`, or fix` : 'fix';
  return `${path} ${reason}: ${fix} --${flagName(key)} (${envName(key)})`;
}

/** The effective config, once loaded: error messages use it to name the setting at fault. */
let loaded: Readonly<BrokerConfig> | undefined;

/** The first line of standard input, when it is a pipe or a file (scripts, tests). */
async function readPasswordLine(): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  throw new Error('no password on standard input');
}

/**
 * Prompts on a terminal with echo off (raw mode), so the password never shows on screen or in scrollback. Reads
 * `prompts.length` lines; typed-ahead input carries over from one prompt to the next.
 */
function promptHidden(prompts: readonly string[]): Promise<string[]> {
  const input = process.stdin;
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let typed = '';
    const done = (error?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.off('data', onData);
      if (error !== undefined) reject(error);
      else resolve(lines);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\u0003' || ch === '\u0004') {
          process.stderr.write('\n');
          return done(new Error('cancelled; nothing was saved'));
        }
        if (ch === '\r' || ch === '\n') {
          process.stderr.write('\n');
          lines.push(typed);
          typed = '';
          const next = prompts[lines.length];
          if (next === undefined) return done();
          process.stderr.write(next);
        } else if (ch === '\u007f' || ch === '\b') {
          typed = typed.slice(0, -1);
        } else {
          typed += ch;
        }
      }
    };
    input.setRawMode(true);
    input.resume();
    input.on('data', onData);
    process.stderr.write(prompts[0] ?? '');
  });
}

async function readPassword(): Promise<string> {
  if (process.stdin.isTTY !== true) return readPasswordLine();
  const [first = '', again = ''] = await promptHidden(['Password: ', 'Password (again): ']);
  if (first !== '' && again !== first) throw new Error('the two passwords differ; nothing was saved');
  return first;
}

/** A default as help shows it: `none` for empty text and lists. */
function shownDefault(value: unknown): string {
  if (value === '' || (Array.isArray(value) && value.length === 0)) return 'none';
  return Array.isArray(value) ? value.join(',') : String(value);
}

/** Help text is Markdown in the schema (shared with docs/configuration.md): plain in a terminal. */
function plain(markdown: string): string {
  return markdown.replace(/\[([^\]]+)\]\([^)]*\)/g, '$1').replace(/`/g, '');
}

/** What `--print-config` shows: the values a start would use, routes as the node would route, secrets masked. */
function printable(config: Readonly<BrokerConfig>): Record<string, unknown> {
  const routes = effectiveRoutes(config.routes, { redis: config.redis !== '', kafka: config.kafka !== '' });
  const shown: Record<string, unknown> = { ...config, routes: routes.map(routeText) };
  return Object.fromEntries(Object.entries(shown).map(([k, v]) => [k, mask(k, v)]));
}

function serveCommand(program: Command): void {
  program.option('--config <file>', 'config file, YAML (.yaml, .yml) or JSON (.json); its keys are the long option names in camelCase');
  program.option('--print-config', 'check the configuration as a start would, print the effective values (secrets masked) and exit');
  for (const [key, s] of Object.entries(SETTINGS)) {
    const description = `${plain(s.help)} [env ${envName(key)}, default ${shownDefault(s.default)}]`;
    program.addOption(new Option(`--${flagName(key)} ${s.arg}`, description));
  }
  program.action(async (opts: Record<string, unknown>) => {
    const flags: Record<string, string> = {};
    for (const key of Object.keys(SETTINGS)) if (typeof opts[key] === 'string') flags[key] = opts[key];
    const config = loadConfig({ file: opts.config as string | undefined, env: process.env, flags });
    loaded = config;
    if (opts.printConfig === true) {
      process.stdout.write(JSON.stringify(printable(config), null, 2) + '\n');
      return;
    }
    // The node id is chosen before the logger exists, so every line carries it, a generated one too.
    const node = withNodeId(config);
    const logger = pino({
      level: node.logLevel,
      base: { node: node.nodeId },
      timestamp: pino.stdTimeFunctions.isoTime,
      // A safety net under the engines' own masking: no URL password reaches a log line, in a message or an error.
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a: unknown) => (typeof a === 'string' ? maskSecrets(a) : a)) as Parameters<typeof method>);
        },
      },
      serializers: { err: maskedError },
    }) as unknown as Logger;
    const broker = await createBroker({ config: node, logger });
    const listeners = await listen(broker);
    const a = listeners.addresses;
    const urls = listeningUrls(listeners.addresses, node.host);
    const where = Object.entries(urls).map(([what, url]) => `${URL_LABELS[what] ?? what} ${url}`);
    logger.info(
      { tcp: a.tcp, ws: a.ws, tls: a.tls, wss: a.wss, ops: a.ops, urls },
      `stompede ${SERVER_VERSION} node ${broker.nodeId} listening: ${where.join(', ')}`,
    );
    watchReadiness(broker, logger);
    let stopping = false;
    let draining: NodeJS.Timeout | undefined;
    const close = (): void => {
      stopping = true;
      logger.info('shutting down');
      broker.close().then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    // SIGHUP reloads the users file (and a JWKS file); an invalid file keeps the previous users in force.
    process.on('SIGHUP', () => {
      broker.reloadAuth().then(
        () => logger.info('SIGHUP: authentication settings reloaded'),
        (error: unknown) => {
          logger.error({ err: error }, 'SIGHUP: reload failed; the previous users stay in force');
        },
      );
    });
    /**
     * SIGTERM (Kubernetes, systemd, docker stop) drains first: /readyz answers 503 for shutdownDrainMs while every
     * listener keeps serving, so load balancers stop sending new clients before the sessions close. SIGINT (Ctrl-C
     * in a terminal) stops at once: nobody load-balances a terminal. A second signal during the drain skips the rest.
     */
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      if (draining !== undefined) {
        clearTimeout(draining);
        logger.info({ signal }, `${signal} during the drain: stopping now`);
        close();
        return;
      }
      const drainMs = signal === 'SIGTERM' ? node.shutdownDrainMs : 0;
      if (drainMs <= 0) {
        logger.info({ signal }, `${signal}: stopping`);
        close();
        return;
      }
      broker.drain();
      logger.info(
        { signal, drainMs },
        `${signal}: draining for ${drainMs} ms (/readyz answers 503, listeners keep serving), then stopping; send SIGTERM or SIGINT again to stop now`,
      );
      draining = setTimeout(close, drainMs);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

const program = new Command('stompede')
  .description('A STOMP 1.0/1.1/1.2 broker over TCP and WebSocket')
  .version(SERVER_VERSION)
  // The hint, not the whole help: commander's own message already suggests the nearest flag.
  .showHelpAfterError('(stompede --help lists every option)')
  // Without this, the root command would take `--users-file` meant for `add-user` (both define it).
  .enablePositionalOptions();
serveCommand(program);

program
  .command('add-user')
  .description(
    'add or replace a user in a users file (password prompted without echo on a terminal, else the first line of standard input, unless --password)',
  )
  .argument('<login>', 'the login clients send in CONNECT')
  .requiredOption('--users-file <file>', 'the JSON users file (created when missing)')
  .option('--password <password>', 'the password (prefer standard input: a flag shows in the process list)')
  .option('--admin', 'make the user an admin of the management API (stompede ctl); a new admin gets every right on vhost /')
  .action(async (login: string, opts: { usersFile: string; password?: string; admin?: boolean }) => {
    const password = opts.password ?? (await readPassword());
    if (password === '') throw new Error('the password must not be empty; nothing was saved');
    await addUser(opts.usersFile, login, password, { admin: opts.admin === true });
    process.stdout.write(`user "${login}" saved in ${opts.usersFile}${opts.admin === true ? ' (admin)' : ''}\n`);
  });

ctlCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`stompede: ${maskSecrets(error.message)}\n`);
    process.exit(2);
  }
  const file = error instanceof Error ? fileProblem(error, loaded) : undefined;
  process.stderr.write(`stompede: ${maskSecrets(file ?? (error instanceof Error ? error.message : String(error)))}\n`);
  process.exit(1);
});
