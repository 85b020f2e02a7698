/**
 * README.md as the docs specs read it: its `## ` sections, fenced blocks with the bold label that introduces each,
 * shell lines split into words as the shell would, and a snippet run as a reader would run it.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliEnv } from '../ops/cli.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const README = readFileSync(join(REPO, 'README.md'), 'utf8');
export const CLI = join(REPO, 'dist/bin/stompede.js');

export const TCP_PORT = '61613';
export const WS_PORT = '15674';
/** How long a snippet has to print what it sent. */
export const SNIPPET_MS = 10_000;

export interface Block {
  readonly lang: string;
  readonly code: string;
  /** The bold label before the block (`**stomp.js** (…)` → `stomp.js`). */
  readonly label: string;
  /** The text from that label to the block: what the README tells a reader to do with it. */
  readonly intro: string;
}

/** The text of a `## ` section, up to the next `## ` heading. */
export function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  expect(start, `README.md has a "## ${heading}" section`).to.be.at.least(0);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

export function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  let previousEnd = 0;
  for (const m of markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    const before = markdown.slice(previousEnd, m.index);
    const labels = [...before.matchAll(/\*\*([^*]+)\*\*/g)];
    const last = labels.at(-1);
    const intro = last === undefined ? '' : before.slice(last.index);
    blocks.push({ lang: m[1] as string, code: m[2] as string, label: last?.[1] ?? '', intro });
    previousEnd = m.index + m[0].length;
  }
  return blocks;
}

/** The README's ports replaced by the test broker's, in the snippet's text only. */
export function withPorts(code: string, tcp: string, ws: string): string {
  return code.replaceAll(TCP_PORT, tcp).replaceAll(WS_PORT, ws);
}

export function nonBlankLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

export interface Run {
  readonly code: number | null;
  readonly lines: string[];
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * Runs a snippet until its stdout has the line `until` (then kills it: the Node snippets stay connected) or, with
 * `untilExit`, until it exits by itself; killed after SNIPPET_MS either way.
 */
export function runSnippet(
  command: string,
  args: readonly string[],
  options: { cwd: string; until: string; untilExit?: boolean; env?: Record<string, string> },
): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: cliEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const lines = (): string[] => stdout.split('\n').map((l) => l.replace(/\r$/, ''));
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      if (options.untilExit !== true && lines().includes(options.until)) child.kill('SIGTERM');
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, SNIPPET_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, lines: lines(), stdout, stderr, timedOut });
    });
  });
}

export function describeRun(r: Run): string {
  return `${r.timedOut ? `no result within ${SNIPPET_MS} ms` : `exit ${String(r.code)}`}; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

// ---- shell commands -------------------------------------------------------------------------------------------

/** Words of a shell line as the shell would pass them (quotes removed); `#` comments dropped; `|`, `;`, `&&` kept. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'" || c === '"') {
      const close = line.indexOf(c, i + 1);
      if (close < 0) throw new Error(`unbalanced ${c} in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, close);
      i = close;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

export interface CliCommand {
  /** Where it was found (the README line or inline code). */
  readonly source: string;
  /** The arguments stompede gets. */
  readonly args: string[];
  /** From a ```sh block (runnable), or an inline code span. */
  readonly inBlock: boolean;
}

/** `npx stompede ARGS…` and `make run ARGS="…"` in a shell line, per pipeline segment. */
export function stompedeCommands(line: string, inBlock: boolean): CliCommand[] {
  const out: CliCommand[] = [];
  const segments: string[][] = [[]];
  for (const w of shellWords(line)) {
    if (['|', ';', '&&', '||'].includes(w)) segments.push([]);
    else (segments.at(-1) as string[]).push(w);
  }
  for (const s of segments) {
    if (s[0] === 'npx' && s[1] === 'stompede') out.push({ source: line, args: s.slice(2), inBlock });
    if (s[0] === 'make' && s[1] === 'run') {
      const value = s.find((w) => w.startsWith('ARGS='))?.slice('ARGS='.length);
      out.push({ source: line, args: value === undefined ? [] : shellWords(value), inBlock });
    }
  }
  return out;
}

/** The lines of a shell block, each `\` line continuation joined to the line it continues. */
export function shellLines(code: string): string[] {
  return code.replace(/\\\n\s*/g, ' ').split('\n');
}

/**
 * A fresh `npm init -y` project outside the repository (its package.json says "type": "commonjs" on current npm),
 * as a reader starts one; node_modules is the repository's, so it holds every package a snippet installs.
 */
export async function freshNpmProject(): Promise<string> {
  const cwd = mkdtempSync(join(tmpdir(), 'stompede-readme-'));
  const init = await runSnippet('npm', ['init', '-y'], { cwd, until: '', untilExit: true });
  expect(init.code, describeRun(init)).to.equal(0);
  symlinkSync(join(REPO, 'node_modules'), join(cwd, 'node_modules'), 'dir');
  return cwd;
}
