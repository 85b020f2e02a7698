/** Runs the built CLI (dist/bin/stompede.js) for the ops specs, always with a timeout and always reaped. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { CLI } from './repo.js';

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * What every CLI run in the specs gets unless `env` says otherwise: an ops listener on a free port (parallel runs
 * would meet on the default 15692) and no shutdown drain (SIGTERM would otherwise wait shutdownDrainMs).
 */
export const CLI_SPEC_DEFAULTS: Readonly<Record<string, string>> = { STOMPEDE_OPS_PORT: '0', STOMPEDE_SHUTDOWN_DRAIN_MS: '0' };

/** The environment of a CLI run: this process's, less every STOMPEDE_* variable, plus CLI_SPEC_DEFAULTS and `env`. */
export function cliEnv(env: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STOMPEDE_')));
  return { ...clean, ...CLI_SPEC_DEFAULTS, ...env };
}

/** Runs the CLI to completion (killed after `timeoutMs`). */
export function runCli(args: readonly string[], env: Readonly<Record<string, string>> = {}, timeoutMs = 30_000): Promise<CliResult> {
  return runNode([CLI, ...args], env, timeoutMs);
}

export function runNode(args: readonly string[], env: Readonly<Record<string, string>> = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A CLI left running, whose output a spec can wait on; `stop` sends SIGTERM and waits for the exit. */
export class RunningCli {
  stdout = '';
  stderr = '';
  readonly #child: ChildProcess;
  readonly #exited: Promise<CliResult>;

  constructor(args: readonly string[], env: Readonly<Record<string, string>> = {}) {
    const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.#exited = new Promise((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr })),
    );
  }

  /** The JSON log lines written so far. */
  get logs(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Resolves with the first log line that `match` accepts, polling for up to `timeoutMs`. */
  async waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found !== undefined) return found;
      if (this.#child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`no matching log line (exit ${String(this.#child.exitCode)}); stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Sends `signal` and returns at once; `exited` says how the process ended. */
  signal(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  get exited(): Promise<CliResult> {
    return this.#exited;
  }

  async stop(timeoutMs = 10_000): Promise<CliResult> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs);
      const result = await this.#exited;
      clearTimeout(timer);
      return result;
    }
    return this.#exited;
  }
}

/** A loopback port that was free a moment ago, and one that nothing listens on (for "cannot reach" checks). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
