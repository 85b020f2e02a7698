/**
 * `stompede ctl`: the management API (broker/management.ts) from a shell, as `rabbitmqctl` is to RabbitMQ. It speaks
 * HTTP to a node's ops listener and prints aligned tables, or the API's JSON with `--json`. Exit status 0 when the
 * node did what was asked, 1 otherwise, with one line on standard error saying what to fix.
 */
import type { Command } from 'commander';

/** Where `ctl` looks without --url: the ops port's default on this machine. */
export const DEFAULT_CTL_URL = 'http://127.0.0.1:15692';

interface CtlOptions {
  url?: string;
  user?: string;
  password?: string;
  json?: boolean;
  vhost?: string;
}

/** A failure to report on one line; the message says what to do. */
export class CtlError extends Error {}

/** Rows as an aligned text table: a header line, then one line per row; numbers right-aligned. */
export function table(columns: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const text = rows.map((row) => columns.map((_, i) => cell(row[i])));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((r) => (r[i] as string).length)));
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (numeric[i] === true ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...text.map(line)].join('\n') + '\n';
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** `a`, `/queue/a` → `%2Fqueue%2Fa`. */
function queuePath(queue: string): string {
  return encodeURIComponent(queue.startsWith('/queue/') ? queue : `/queue/${queue}`);
}

async function call(opts: CtlOptions, method: string, path: string): Promise<unknown> {
  const user = opts.user ?? process.env.STOMPEDE_CTL_USER;
  const password = opts.password ?? process.env.STOMPEDE_CTL_PASSWORD;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (user !== undefined) headers.authorization = `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}`;
  const vhost = opts.vhost === undefined ? '' : `?vhost=${encodeURIComponent(opts.vhost)}`;
  const base = opts.url ?? process.env.STOMPEDE_CTL_URL ?? DEFAULT_CTL_URL;
  let url: URL;
  try {
    url = new URL(`${path}${vhost}`, base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new CtlError(`--url "${base}" is not a URL; e.g. ${DEFAULT_CTL_URL}`);
  }
  let response: Response;
  try {
    response = await fetch(url, { method, headers, signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    throw new CtlError(`cannot reach ${url.origin} (${cause}): is the node running, and is --url its ops port (--ops-port)?`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CtlError(`${url.origin} answered ${response.status} without JSON: is --url the node's ops port?`);
  }
  if (response.ok) return body;
  const said = typeof body === 'object' && body !== null && 'error' in body ? String(body.error) : text.trim();
  if (response.status === 401)
    throw new CtlError(`401 ${said}: give an admin user with --user and --password (or STOMPEDE_CTL_USER and STOMPEDE_CTL_PASSWORD)`);
  throw new CtlError(`${response.status} ${said}`);
}

function rows(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
}

const LISTS = {
  connections: {
    path: 'api/connections',
    columns: ['id', 'user', 'vhost', 'transport', 'remote', 'version', 'heartbeat', 'subs', 'in', 'out', 'since'],
    row: (c: Record<string, unknown>): unknown[] => {
      const hb = c.heartbeats as { outgoingMs?: number; incomingMs?: number } | undefined;
      return [
        c.id,
        c.user,
        c.vhost,
        c.transport,
        c.remoteAddress,
        c.version,
        hb === undefined ? null : `${hb.outgoingMs ?? 0},${hb.incomingMs ?? 0}`,
        c.subscriptions,
        c.bytesIn,
        c.bytesOut,
        c.connectedSince,
      ];
    },
  },
  queues: {
    path: 'api/queues',
    columns: ['vhost', 'queue', 'depth', 'bytes', 'consumers', 'unacked', 'dlq', 'shared'],
    row: (q: Record<string, unknown>): unknown[] => [
      q.vhost,
      q.destination,
      q.depth,
      q.bytes,
      q.consumers,
      q.unacked,
      q.dlqDepth,
      q.shared,
    ],
  },
  destinations: {
    path: 'api/destinations',
    columns: ['vhost', 'destination', 'kind', 'route', 'subscribers', 'messages'],
    row: (d: Record<string, unknown>): unknown[] => [d.vhost, d.destination, d.kind, d.route, d.subscribers, d.messages],
  },
} as const;
type ListName = keyof typeof LISTS;

function overviewText(o: Record<string, unknown>): string {
  const engines = rows(o.engines).map((e) => [e.role, e.engine, e.healthy === true ? 'up' : 'DOWN']);
  const routes = rows(o.routes).map((r) => [r.pattern, r.kind, r.target, r.format]);
  const totals = (o.totals ?? {}) as Record<string, unknown>;
  return [
    `node ${cell(o.node)} of cluster ${cell(o.cluster)}, stompede ${cell(o.version)}, ${o.ready === true ? 'ready' : 'NOT READY'}\n`,
    table(['engine', 'kind', 'state'], engines),
    table(['route', 'engine', 'target', 'format'], routes),
    table(
      ['connections', 'sessions', 'subscriptions', 'bytes in', 'bytes out'],
      [[totals.connections, totals.sessions, totals.subscriptions, totals.bytesIn, totals.bytesOut]],
    ),
  ].join('\n');
}

/** Runs one ctl action and prints its outcome; errors become one line and exit status 1. */
function run(opts: CtlOptions, action: () => Promise<[unknown, string]>): Promise<void> {
  return action().then(
    ([json, text]) => {
      process.stdout.write(opts.json === true ? JSON.stringify(json, null, 2) + '\n' : text);
    },
    (error: unknown) => {
      process.stderr.write(`stompede ctl: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * The options every ctl command takes, before or after its arguments (`ctl --json list queues` and `ctl list queues
 * --json` alike: the CLI's positional options would otherwise accept them only before the subcommand).
 */
function common(cmd: Command): Command {
  return cmd
    .option('--url <url>', `the node's ops listener (env STOMPEDE_CTL_URL, default ${DEFAULT_CTL_URL})`)
    .option('--user <login>', 'an admin user (env STOMPEDE_CTL_USER)')
    .option('--password <password>', 'its password (env STOMPEDE_CTL_PASSWORD; a flag shows in the process list)')
    .option('--vhost <name>', 'virtual host of a queue (default /); filters lists (default: all)')
    .option('--json', "print the API's JSON instead of a table");
}

/** Adds `ctl` and its subcommands to the CLI. */
export function ctlCommand(program: Command): void {
  const ctl = common(
    program.command('ctl').description("manage a running node through its ops port's management API (an admin user of the users file)"),
  );
  let current: Command = ctl;
  const options = (): CtlOptions => current.optsWithGlobals<CtlOptions>();
  ctl.hook('preAction', (_root, leaf) => {
    current = leaf;
  });

  common(ctl.command('overview'))
    .description('node, version, engines and their health, routes, totals')
    .action(() =>
      run(options(), async () => {
        const o = (await call(options(), 'GET', 'api/overview')) as Record<string, unknown>;
        return [o, overviewText(o)];
      }),
    );
  common(ctl.command('list'))
    .description('list connections, queues or destinations')
    .argument('<what>', 'connections | queues | destinations')
    .action((what: string) =>
      run(options(), async () => {
        if (!Object.hasOwn(LISTS, what)) throw new CtlError(`cannot list "${what}": choose connections, queues or destinations`);
        const list = LISTS[what as ListName];
        const json = await call(options(), 'GET', list.path);
        return [
          json,
          table(
            list.columns,
            rows(json).map((r) => list.row(r)),
          ),
        ];
      }),
    );
  common(ctl.command('purge'))
    .description('drop the waiting messages of a queue')
    .argument('<queue>', 'queue name, e.g. /queue/orders or orders')
    .action((queue: string) =>
      run(options(), async () => {
        const r = (await call(options(), 'POST', `api/queues/${queuePath(queue)}/purge`)) as Record<string, unknown>;
        return [r, `purged ${cell(r.purged)} messages from ${cell(r.queue)}\n`];
      }),
    );
  common(ctl.command('close'))
    .description('close a connection with an ERROR saying an operator closed it')
    .argument('<connection-id>', 'as `list connections` shows it')
    .action((id: string) =>
      run(options(), async () => {
        const r = (await call(options(), 'DELETE', `api/connections/${encodeURIComponent(id)}`)) as Record<string, unknown>;
        return [r, `closed ${cell(r.closed)}\n`];
      }),
    );
  const dlq = common(ctl.command('dlq').description('dead-letter queues'));
  common(dlq.command('move'))
    .description('send the messages of <queue>.dlq back to <queue>')
    .argument('<queue>', 'the queue (or its .dlq)')
    .action((queue: string) =>
      run(options(), async () => {
        const dlq = queue.endsWith('.dlq') ? queue : `${queue}.dlq`;
        const r = (await call(options(), 'POST', `api/queues/${queuePath(dlq)}/move`)) as Record<string, unknown>;
        return [r, `moved ${cell(r.moved)} messages from ${cell(r.from)} to ${cell(r.to)}\n`];
      }),
    );
}
