import { spawn, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/spec/interop/ (compiled) or spec/interop/ (source) alike. */
export const REPO_ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));
const PIP_CACHE = join(REPO_ROOT, '.cache', 'pip');
const REQUIREMENTS = join(REPO_ROOT, 'interop', 'python', 'requirements.txt');
/** The interop venv's interpreter (`ensureVenv()` with no arguments). */
export const VENV_PYTHON = join(REPO_ROOT, '.cache', 'venv', 'bin', 'python');

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion, killing it after `timeoutMs`. Never rejects for a non-zero exit. */
export function run(command: string, args: readonly string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message}`, { cause: error }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(command: string, args: readonly string[], options: SpawnOptions = {}): Promise<void> {
  const r = await run(command, args, { ...options, timeoutMs: 240_000 });
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.code}:\n${r.stdout}${r.stderr}`);
}

/**
 * The venv under .cache/venv with interop/python/requirements.txt installed from PyPI, created when missing or
 * built from other requirements; on repeat runs only the marker is read. Needs nothing but `python3` (or $PYTHON):
 * where its venv module lacks ensurepip (Debian without python3-venv), a pip-less venv is filled by the system pip.
 * With `packages` (pip requirement specifiers), a venv of those alone under .cache/<name> instead: the README spec
 * runs its stomp.py snippet with the version the README names, whatever the interop checks pin.
 */
export async function ensureVenv(packages?: readonly string[], name = 'venv'): Promise<string> {
  const venv = join(REPO_ROOT, '.cache', name);
  const venvPython = join(venv, 'bin', 'python');
  /** Holds the requirements the venv was built from; a venv whose marker matches is used as it is. */
  const marker = join(venv, '.stompede-requirements');
  const wanted = packages === undefined ? await readFile(REQUIREMENTS, 'utf8') : `${packages.join('\n')}\n`;
  const built = await readFile(marker, 'utf8').catch(() => undefined);
  if (built === wanted && existsSync(venvPython)) return venvPython;

  const python = process.env.PYTHON ?? 'python3';
  const env = { ...process.env, PIP_CACHE_DIR: PIP_CACHE, PIP_DISABLE_PIP_VERSION_CHECK: '1' };
  const install = ['install', '--quiet', ...(packages === undefined ? ['--requirement', REQUIREMENTS] : packages)];
  const created = await run(python, ['-m', 'venv', '--clear', venv], { timeoutMs: 120_000 });
  if (created.code === 0) {
    await must(venvPython, ['-m', 'pip', ...install], { env });
  } else {
    // pip ≥ 22.3 can install into another interpreter's environment.
    const bare = await run(python, ['-m', 'venv', '--clear', '--without-pip', venv], { timeoutMs: 120_000 });
    const pip = bare.code === 0 ? await run(python, ['-m', 'pip', '--python', venvPython, ...install], { env, timeoutMs: 240_000 }) : bare;
    if (pip.code !== 0) {
      throw new Error(
        `cannot create the stomp.py venv with ${python}: ${created.stderr.trim()}\n${pip.stderr.trim()}\n` +
          'Install the venv module (Debian/Ubuntu: apt-get install python3-venv) or set $PYTHON to a full Python 3.',
      );
    }
  }
  await writeFile(marker, wanted);
  return venvPython;
}
