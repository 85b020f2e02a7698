import { spawn } from 'node:child_process';
import { join } from 'node:path';

/**
 * Starts a throwaway redis-server of a spec's own (Sentinel, TLS: set-ups the shared test Redis is not), detached
 * on 127.0.0.1 with nothing persisted, its pid and log file named `name` in `dir`; resolves once it daemonized.
 * `args` give the port(s) and the rest; `leading` goes first (a config file must).
 */
export async function startRedisDaemon(dir: string, name: string, args: readonly string[], leading: readonly string[] = []): Promise<void> {
  const all = [
    ...leading,
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'yes',
    '--dir',
    dir,
    '--pidfile',
    join(dir, `${name}.pid`),
    '--logfile',
    join(dir, `${name}.log`),
    ...args,
  ];
  const child = spawn('redis-server', all, { stdio: 'ignore' });
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  if (code !== 0) throw new Error(`redis-server ${all.join(' ')} exited with ${code}`);
}
