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
import { createBroker, listen } from '../broker/server.js';
import { SERVER_VERSION } from '../broker/version.js';
import { ConfigError, DEFAULT_CONFIG, envName, flagName, loadConfig, type BrokerConfig } from '../broker/config.js';
import type { Logger } from '../broker/ports/logger.js';

const SECRET_KEYS = new Set(['redis', 'kafka', 'mongo']);

/** Connection strings may carry passwords (`redis://user:pass@host`): shown masked. */
function mask(key: string, value: unknown): unknown {
  if (!SECRET_KEYS.has(key) || typeof value !== 'string') return value;
  // The user may be empty (`redis://:pass@host`, Redis' password-only form); the password runs to the last `@`
  // before the path, so one with an unescaped `@` is masked whole.
  return value.replace(/\/\/([^:/@]*):([^/]*)@/, '//$1:***@');
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

/** Logs once when an engine goes down (naming what to check) and once when every engine is back. */
function watchReadiness(broker: Broker, logger: Logger): void {
  let wasReady = true;
  const timer = setInterval(() => {
    const { ready, closing, engines } = broker.readiness();
    if (closing || ready === wasReady) return;
    wasReady = ready;
    if (ready) {
      logger.info({ engines }, 'every cluster engine is reachable again; /readyz answers 200');
      return;
    }
    const down = Object.entries(engines)
      .filter(([, healthy]) => !healthy)
      .map(([engine]) => engine);
    const what = [...new Set(down.map((engine) => engineHint(engine, broker.config)))];
    logger.warn(
      { engines, down },
      `not ready: cannot reach ${what.join(' and ')}; /readyz answers 503 until it is reachable. Start it, or fix the address.`,
    );
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

function serveCommand(program: Command): void {
  program.option('--config <file>', 'config file, YAML (.yaml, .yml) or JSON (.json); its keys are the long option names in camelCase');
  program.option('--print-config', 'print the effective configuration (secrets masked) and exit');
  for (const [key, value] of Object.entries(DEFAULT_CONFIG)) {
    const flag = flagName(key);
    const arg = typeof value === 'number' ? `<number>` : Array.isArray(value) ? '<list>' : '<value>';
    const option = new Option(`--${flag} ${arg}`, `${key} (env ${envName(key)}, default ${JSON.stringify(value)})`);
    program.addOption(option);
  }
  program.action(async (opts: Record<string, unknown>) => {
    const overrides: Record<string, unknown> = {};
    for (const key of Object.keys(DEFAULT_CONFIG)) if (opts[key] !== undefined) overrides[key] = opts[key];
    const config = loadConfig({ file: opts.config as string | undefined, env: process.env, overrides });
    loaded = config;
    if (opts.printConfig === true) {
      const shown = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, mask(k, v)]));
      process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
      return;
    }
    const logger = pino({ level: config.logLevel, base: { node: config.nodeId || undefined } }) as unknown as Logger;
    const broker = await createBroker({ config, logger });
    const { addresses: a } = await listen(broker);
    const where = [`stomp tcp://${a.tcp.host}:${a.tcp.port}`];
    if (a.ws) where.push(`websocket ${a.ws.url}`);
    if (a.tls) where.push(`stomp+ssl://${a.tls.host}:${a.tls.port}`);
    if (a.wss) where.push(`websocket ${a.wss.url}`);
    if (a.ops) where.push(`metrics ${a.ops.url}/metrics`);
    logger.info(
      { tcp: a.tcp, ws: a.ws, tls: a.tls, wss: a.wss, ops: a.ops },
      `stompede ${SERVER_VERSION} node ${broker.nodeId} listening: ${where.join(', ')}`,
    );
    watchReadiness(broker, logger);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
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
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

const program = new Command('stompede')
  .description('A STOMP 1.0/1.1/1.2 broker over TCP and WebSocket')
  .version(SERVER_VERSION)
  .showHelpAfterError()
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
    process.stderr.write(`stompede: ${error.message}\n`);
    process.exit(2);
  }
  const file = error instanceof Error ? fileProblem(error, loaded) : undefined;
  process.stderr.write(`stompede: ${file ?? (error instanceof Error ? error.message : String(error))}\n`);
  process.exit(1);
});
