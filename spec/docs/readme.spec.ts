import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, flagName } from '../../broker/config.js';
import { startBroker, type TestBroker } from '../support/broker.js';
import { RawClient, stompFrame, type RawFrame } from '../support/raw.js';
import { watchSessionErrors } from '../interop/harness.js';
import { ensureVenv } from '../interop/python-venv.js';
import { cliEnv } from '../ops/cli.js';
import {
  CLI,
  README,
  REPO,
  TCP_PORT,
  WS_PORT,
  describeRun,
  fencedBlocks,
  freshNpmProject,
  nonBlankLines,
  runSnippet,
  section,
  shellLines,
  shellWords,
  stompedeCommands,
  withPorts,
  type Block,
  type CliCommand,
  type Run,
} from './readme-text.js';

/**
 * README.md's snippets, run as they are written. The fenced blocks of "## Connecting" run against a broker of
 * this process: the js ones (stomp.js, stompit) with `node`, under the file name the README gives, in a fresh
 * `npm init -y` project (its node_modules linked to the repository's), the python one in a venv with the stomp.py
 * version the README names; the README's
 * ports 61613 and 15674 are replaced by the test broker's in the snippet's text, nothing else is touched. The java
 * block cannot run alone: ReadmeSnippetTest.java holds its lines verbatim (checked here) and the Spring interop
 * spec runs it. The shell blocks' CLI flags must be real, their serve commands must load, and the add-user lines
 * run for real in a temporary directory.
 */

const SPRING_TEST = join(REPO, 'interop/spring/src/test/java/dev/stompede/interop/spring/ReadmeSnippetTest.java');
const SPRING_SPEC = join(REPO, 'spec/interop/spring.spec.ts');
/** Scratch files of the CLI checks (the js snippets run in fresh projects under the system's temporary directory). */
const SCRATCH = join(REPO, '.cache', 'readme-spec');

function readmeCommands(): CliCommand[] {
  const fromBlocks = fencedBlocks(README)
    .filter((b) => b.lang === 'sh')
    .flatMap((b) => shellLines(b.code).flatMap((l) => stompedeCommands(l, true)));
  // Inline mentions: `npx stompede --help`, and lone flags such as `--ws-port` or `--routes '…'`.
  const inline = [...README.replace(/^```[\s\S]*?^```$/gm, '').matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
  const fromInline = inline.flatMap((span) =>
    span.startsWith('--') ? [{ source: span, args: shellWords(span), inBlock: false }] : stompedeCommands(span, false),
  );
  return [...fromBlocks, ...fromInline];
}

function flagsOf(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0] as string);
}

/** Runs the built CLI in `cwd` with a clean environment (no STOMPEDE_* of this process). */
function runCli(args: readonly string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, lines: stdout.split('\n'), stdout, stderr, timedOut });
    });
  });
}

// ---- the specs ------------------------------------------------------------------------------------------------

describe('docs › README.md', function () {
  this.timeout(60_000);
  const connecting = fencedBlocks(section(README, 'Connecting'));
  let scratch = '';

  before(() => {
    mkdirSync(SCRATCH, { recursive: true });
    scratch = mkdtempSync(join(SCRATCH, `${process.pid}-`));
  });
  after(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  describe('## Connecting', () => {
    /** Every client the issue names, the language of its snippet, and the line the snippet prints. */
    const CLIENTS = [
      { label: 'stomp.js', lang: 'js', prints: 'hello' },
      { label: 'Spring', lang: 'java', prints: 'hello' },
      { label: 'stompit', lang: 'js', prints: 'job 1' },
      { label: 'stomp.py', lang: 'python', prints: 'hello' },
    ] as const;

    it('shows one short snippet for each of stomp.js, Spring, stompit and stomp.py, and nothing else', () => {
      expect(connecting.map((b) => [b.label, b.lang])).to.deep.equal(CLIENTS.map((c) => [c.label, c.lang]));
      for (const b of connecting) {
        expect(nonBlankLines(b.code).length, `${b.label} snippet lines`).to.be.within(3, 16);
        expect(b.code.includes(TCP_PORT) || b.code.includes(WS_PORT), `${b.label} talks to the node of \`make run\``).to.equal(true);
      }
    });

    for (const client of CLIENTS) {
      if (client.lang === 'java') continue;
      it(`runs the ${client.label} snippet as the README says: it prints "${client.prints}", the message it sent`, async function () {
        const block = connecting.find((b) => b.label === client.label) as Block;
        expect(block, `the ${client.label} snippet`).to.not.equal(undefined);
        let python = '';
        let cwd = scratch;
        let name = `${client.label.replace(/\W/g, '-')}.py`;
        if (client.lang === 'python') {
          this.timeout(600_000); // the first run builds the venv
          // The version the README names (`**stomp.py** (9.0, …`), installed in a venv of its own.
          const version = /^\*\*stomp\.py\*\* \((\d+\.\d+)\b/.exec(block.intro)?.[1];
          expect(version, `the stomp.py version in: ${block.intro}`).to.not.equal(undefined);
          python = await ensureVenv([`stomp.py==${String(version)}.*`], `venv-readme-stomp.py-${String(version)}`);
        } else {
          // A fresh `npm init -y` project outside the repository (its package.json says "type": "commonjs" on
          // current npm), with the packages the README's `npm install` names: node_modules is the repository's.
          name = /saved as `([\w.-]+)`/.exec(block.intro)?.[1] ?? '';
          expect(name, `a file name in: ${block.intro}`).to.match(/\.mjs$/);
          const installed = /`npm install ([^`]+)`/.exec(block.intro)?.[1]?.split(/\s+/) ?? [];
          const imported = [...block.code.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1] as string);
          expect(installed, 'npm install names every package the snippet imports').to.include.members(imported);
          cwd = await freshNpmProject();
        }
        // A broker of its own: no snippet can see another one's message (stomp.js asks for topic history).
        const t: TestBroker = await startBroker();
        const errors = watchSessionErrors(t.broker);
        try {
          const code = withPorts(block.code, String(t.tcpPort), new URL(t.wsUrl).port);
          writeFileSync(join(cwd, name), code);
          const r =
            client.lang === 'python'
              ? await runSnippet(python, [name], { cwd, until: client.prints, untilExit: true, env: { PYTHONUNBUFFERED: '1' } })
              : await runSnippet(process.execPath, [name], { cwd, until: client.prints });
          expect(r.lines, describeRun(r)).to.include(client.prints);
          if (client.lang === 'python') expect(r.code, `the script ends by itself; ${describeRun(r)}`).to.equal(0);
          expect(errors.errors, 'ERROR frames the broker sent').to.deep.equal([]);
        } finally {
          errors.stop();
          await t.close();
          if (cwd !== scratch) rmSync(cwd, { recursive: true, force: true });
        }
      });
    }

    it('has the Spring snippet line for line in ReadmeSnippetTest.java, which the Spring interop spec runs', () => {
      const block = connecting.find((b) => b.label === 'Spring');
      expect(block, 'the Spring snippet').to.not.equal(undefined);
      // Java cannot take the port as text at run time: the test file builds the URL with its `wsPort` variable.
      const wanted = nonBlankLines(withPorts((block as Block).code, `" + tcpPort + "`, `" + wsPort + "`));
      const have = nonBlankLines(readFileSync(SPRING_TEST, 'utf8'));
      let at = 0;
      for (const line of wanted) {
        const found = have.indexOf(line, at);
        expect(found, `README line ${JSON.stringify(line)} in ReadmeSnippetTest.java (after line ${at})`).to.be.at.least(0);
        at = found + 1;
      }
      expect(readFileSync(SPRING_SPEC, 'utf8'), 'spec/interop/spring.spec.ts expects ReadmeSnippetTest to run').to.match(
        /^\s*ReadmeSnippetTest: \['springSnippetPrintsTheMessageItSent'\],$/m,
      );
    });
  });

  describe('CLI commands', () => {
    const commands = readmeCommands();
    const serveFlags = new Set([...Object.keys(DEFAULT_CONFIG).map(flagName), 'config', 'print-config', 'help', 'version']);

    it("finds the README's commands (make run ARGS=…, npx stompede …, add-user)", () => {
      const blocks = commands.filter((c) => c.inBlock);
      expect(blocks.length, 'stompede commands in ```sh blocks').to.be.at.least(6);
      expect(blocks.filter((c) => c.args[0] === 'add-user')).to.have.length(1);
      expect(commands.filter((c) => !c.inBlock).length, 'inline flags and commands').to.be.at.least(4);
    });

    it("uses only real flags: config keys (flagName), --config, --print-config, --help, and add-user's own", async () => {
      const help = await runCli(['add-user', '--help'], scratch);
      expect(help.code, help.stderr).to.equal(0);
      const addUserFlags = new Set([...help.stdout.matchAll(/^\s+(?:-\w, )?--([a-z][a-z-]*)/gm)].map((m) => m[1] as string));
      expect([...addUserFlags]).to.include.members(['users-file', 'password', 'help']);
      const unknown = commands.flatMap((c) => {
        const allowed = c.args[0] === 'add-user' ? addUserFlags : serveFlags;
        return flagsOf(c.args)
          .filter((f) => !allowed.has(f))
          .map((f) => `--${f} in: ${c.source}`);
      });
      expect(unknown).to.deep.equal([]);
    });

    it('loads the configuration of every serve command of the shell blocks (with --print-config), values included', async () => {
      writeFileSync(join(scratch, 'stompede.json'), '{}\n'); // `--config stompede.json`
      const serve = commands.filter((c) => c.inBlock && c.args[0] !== 'add-user');
      const runs = await Promise.all(serve.map((c) => runCli([...c.args, '--print-config'], scratch)));
      serve.forEach((c, i) => {
        const r = runs[i] as Run;
        expect(r.code, `${c.source}: ${r.stderr}`).to.equal(0);
        const printed = JSON.parse(r.stdout) as Record<string, unknown>;
        for (const [key, sample] of Object.entries(DEFAULT_CONFIG)) {
          const at = c.args.indexOf(`--${flagName(key)}`);
          if (at < 0 || (typeof sample !== 'string' && typeof sample !== 'number')) continue;
          const text = c.args[at + 1] as string;
          expect(printed[key], `${key} from: ${c.source}`).to.equal(typeof sample === 'number' ? Number(text) : text);
        }
      });
    });

    it('runs the Authentication lines for real: add-user writes users.json, and a node started on it lets alice in', async () => {
      const block = fencedBlocks(section(README, 'Configuration')).find((b) => b.code.includes(' add-user '));
      expect(block, 'the add-user block').to.not.equal(undefined);
      const [addLine, serveLine, ...rest] = nonBlankLines((block as Block).code);
      expect(rest).to.deep.equal([]);
      const dir = mkdtempSync(join(scratch, 'auth-'));
      // `npx stompede` in the repository runs this package's bin; in a bare directory this shim stands in for it.
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(
        join(bin, 'npx'),
        `#!/bin/sh\n[ "$1" = stompede ] || { echo "npx shim: stompede only" >&2; exit 127; }\nshift\nexec '${process.execPath}' '${CLI}' "$@"\n`,
      );
      chmodSync(join(bin, 'npx'), 0o755);

      const added = await runSnippet('bash', ['-o', 'pipefail', '-c', addLine as string], {
        cwd: dir,
        until: '',
        untilExit: true,
        env: { PATH: `${bin}:${process.env.PATH ?? ''}` },
      });
      expect(added.code, `${addLine}: ${describeRun(added)}`).to.equal(0);
      const usersFile = /--users-file (\S+)/.exec(addLine as string)?.[1] as string;
      expect(existsSync(join(dir, usersFile)), `${usersFile} written`).to.equal(true);
      const login = /add-user (\S+)/.exec(addLine as string)?.[1] as string;
      const password = /^echo '([^']*)'/.exec(addLine as string)?.[1] as string;

      // The second line, as it is, on free ports (STOMPEDE_* set what the line leaves to the defaults).
      const [serve] = stompedeCommands(serveLine as string, true);
      expect(serve, serveLine).to.not.equal(undefined);
      const node = spawn(process.execPath, [CLI, ...(serve as CliCommand).args], {
        cwd: dir,
        env: cliEnv({ STOMPEDE_PORT: '0', STOMPEDE_WS_PORT: '0' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      node.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      node.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      const exited = new Promise<void>((done) => node.on('close', () => done()));
      try {
        const port = await new Promise<number>((done, fail) => {
          const started = Date.now();
          const poll = setInterval(() => {
            const listening = out
              .split('\n')
              .filter((l) => l.startsWith('{'))
              .map((l) => JSON.parse(l) as { tcp?: { port?: number } })
              .find((l) => l.tcp?.port !== undefined);
            if (listening !== undefined) {
              clearInterval(poll);
              done(listening.tcp?.port as number);
            } else if (node.exitCode !== null || Date.now() - started > 10_000) {
              clearInterval(poll);
              fail(new Error(`${serveLine} did not start (exit ${String(node.exitCode)}):\n${out}\n${err}`));
            }
          }, 25);
        });
        const connect = async (passcode: string): Promise<RawFrame> => {
          const c = await RawClient.tcp(port);
          try {
            c.send(stompFrame('CONNECT', { 'accept-version': '1.2', host: '127.0.0.1', login, passcode }));
            return await c.nextFrame(5000);
          } finally {
            c.close();
          }
        };
        const good = await connect(password);
        expect([good.command, good.headers.get('user-name')], good.raw.toString()).to.deep.equal(['CONNECTED', login]);
        const bad = await connect(`${password}x`);
        expect(bad.command, 'a wrong password is refused').to.equal('ERROR');
      } finally {
        node.kill('SIGTERM');
        await exited;
      }
    });
  });
});
