// Writes the users file bench/permissions.sh starts the "permissions" node with: the bench login with 10
// permission rules per check (read; write allow + deny), and two other users, as a tenant's file would have.
//
//   node dist/bench/permissions-users.js --out users.json [--login bench --password bench] [--format rules|legacy]
//
// `legacy` writes `{"users": {"bench": "<hash>"}}` (no permissions) for nodes that predate them; `rules` is the
// measured form. Hashes come from broker/auth.ts, so the node verifies them exactly as it does in production.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { hashPassword } from '../broker/auth.js';

/**
 * Glob rules (segments split on `.` or `/`, `*` one segment, `**` any run). The rules a scenario's destinations
 * match come last, so each check walks the non-matching ones first; the two denies never match a bench
 * destination but are consulted on every SEND. Every scenario destination is allowed: fanout
 * `/topic/bench.fanout.<run>`, pairs `/topic/bench.pairs.<run>.<i>`, queue `/queue/bench.<run>`, receipts
 * `/topic/bench.receipts.<run>.<i>` and chat `/topic/chat.room<n>.<run>`.
 */
const READ = [
  '/topic/orders.*.created',
  '/topic/orders.*.cancelled',
  '/topic/audit.**',
  '/topic/prices.*',
  '/queue/jobs.*',
  '/queue/reports.daily',
  '/queue/reports.weekly',
  '/topic/chat.**',
  '/topic/bench.**',
  '/queue/bench.*',
] as const;

const WRITE_ALLOW = [
  '/topic/orders.*.created',
  '/topic/prices.*',
  '/queue/jobs.*',
  '/queue/reports.daily',
  '/topic/audit.**',
  '/topic/chat.**',
  '/topic/bench.**',
  '/queue/bench.*',
] as const;

const WRITE_DENY = ['/topic/bench.admin.**', '/queue/bench.dlq'] as const;

const FORMATS = ['rules', 'legacy'] as const;
type Format = (typeof FORMATS)[number];

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      out: { type: 'string' },
      login: { type: 'string', default: 'bench' },
      password: { type: 'string', default: 'bench' },
      format: { type: 'string', default: 'rules' },
    },
  });
  const format = values.format;
  if (values.out === undefined || !(FORMATS as readonly string[]).includes(format)) {
    process.stderr.write('usage: node dist/bench/permissions-users.js --out FILE [--login L --password P] [--format rules|legacy]\n');
    process.exit(2);
  }
  const login = values.login;
  const hash = await hashPassword(values.password);
  let users: Record<string, unknown>;
  if ((format as Format) === 'legacy') {
    users = { [login]: hash };
  } else {
    users = {
      [login]: { password: hash, vhosts: { '/': { read: [...READ], write: { allow: [...WRITE_ALLOW], deny: [...WRITE_DENY] } } } },
      // Others in the same file: the lookup is by login, but a realistic file is not a single entry.
      'reports-reader': {
        password: await hashPassword(`${login}-reports`),
        vhosts: { '/': { read: ['/queue/reports.*'], write: { allow: [], deny: ['**'] } } },
      },
      'orders-service': {
        password: await hashPassword(`${login}-orders`),
        vhosts: { '/': { read: ['/queue/jobs.*'], write: { allow: ['/topic/orders.**'], deny: [] } } },
      },
    };
  }
  writeFileSync(values.out, `${JSON.stringify({ users }, null, 2)}\n`, { mode: 0o600 });
}

main().catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
