/**
 * `stompede add-user` (issue #8 item 4): reads the password from standard input when it is not a terminal, prompts
 * without echo on a terminal (a pseudo-terminal from `script`), refuses an empty password, keeps permissions.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsersFileAuthenticator } from '../../broker/auth.js';
import { cliEnv } from '../ops/cli.js';
import { CLI } from '../ops/repo.js';

interface Run {
  readonly code: number | null;
  readonly output: string;
}

/**
 * Runs a command, answering each `[prompt, reply]` once the prompt has appeared in its output (stdout and stderr);
 * `stdin` is written at once and closed. Killed after 30 s.
 */
function run(
  command: string,
  args: readonly string[],
  options: { stdin?: string; answers?: ReadonlyArray<readonly [string, string]> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const answers = [...(options.answers ?? [])];
    let from = 0; // each prompt is looked for after the previous one, so a repeated prompt is answered once each
    const seen = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const next = answers[0];
      const at = next === undefined ? -1 : output.indexOf(next[0], from);
      if (next !== undefined && at >= 0) {
        answers.shift();
        from = at + next[0].length;
        child.stdin.write(next[1]);
      }
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    if (options.stdin !== undefined) child.stdin.end(options.stdin);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

describe('security › stompede add-user', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stompede-adduser-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const fresh = (): string => join(dir, `users-${++n}.json`);
  const check = async (file: string, login: string, password: string): Promise<boolean> => {
    const users = await UsersFileAuthenticator.open(file);
    return (await users.authenticate({ login, passcode: password, host: '/', remoteAddress: '127.0.0.1:1' })).ok;
  };

  it('reads the password from standard input when it is not a terminal', async () => {
    const file = fresh();
    const r = await run(process.execPath, [CLI, 'add-user', '--users-file', file, 'alice'], { stdin: 's3cret\n' });
    expect([r.code, r.output]).to.deep.equal([0, `user "alice" saved in ${file}\n`]);
    expect(await check(file, 'alice', 's3cret')).to.equal(true);
  });

  for (const [label, args, stdin] of [
    ['an empty line on standard input', [], '\n'],
    ['an empty --password', ['--password', ''], undefined],
  ] as const) {
    it(`refuses ${label} and writes nothing`, async () => {
      const file = fresh();
      const r = await run(
        process.execPath,
        [CLI, 'add-user', '--users-file', file, ...args, 'alice'],
        stdin === undefined ? {} : { stdin },
      );
      expect([r.code, r.output]).to.deep.equal([1, 'stompede: the password must not be empty; nothing was saved\n']);
      expect(existsSync(file)).to.equal(false);
    });
  }

  it('keeps the permissions of a user in object form when replacing its password', async () => {
    const file = fresh();
    const rights = { admin: false, vhosts: { '/': { read: ['/topic/**'], write: [] } } };
    writeFileSync(file, JSON.stringify({ users: { bob: { password: 'scrypt$old', ...rights } } }));
    const r = await run(process.execPath, [CLI, 'add-user', '--users-file', file, 'bob'], { stdin: 'new-pw\n' });
    expect(r.code).to.equal(0);
    const saved = (JSON.parse(readFileSync(file, 'utf8')) as { users: { bob: Record<string, unknown> } }).users.bob;
    expect({ ...saved, password: 'x' }).to.deep.equal({ ...rights, password: 'x' });
    expect(await check(file, 'bob', 'new-pw')).to.equal(true);
  });

  describe('on a terminal (a pseudo-terminal made by `script`)', () => {
    const onTty = (file: string, answers: ReadonlyArray<readonly [string, string]>): Promise<Run> =>
      run(
        'script',
        ['-qfec', `${shellQuote(process.execPath)} ${shellQuote(CLI)} add-user --users-file ${shellQuote(file)} tess`, '/dev/null'],
        { answers },
      );

    it('prompts twice without echoing the password, then saves it', async () => {
      const file = fresh();
      const r = await onTty(file, [
        ['Password: ', 'hunter2\r'],
        ['(again): ', 'hunter2\r'],
      ]);
      expect(r.code).to.equal(0);
      expect(r.output.replace(/\r/g, '')).to.equal(`Password: \nPassword (again): \nuser "tess" saved in ${file}\n`);
      expect(await check(file, 'tess', 'hunter2')).to.equal(true);
    });

    it('refuses two different passwords and an empty one', async () => {
      const file = fresh();
      const differ = await onTty(file, [
        ['Password: ', 'one\r'],
        ['(again): ', 'two\r'],
      ]);
      expect([differ.code, differ.output.replace(/\r/g, '').split('\n').at(-2)]).to.deep.equal([
        1,
        'stompede: the two passwords differ; nothing was saved',
      ]);
      const empty = await onTty(file, [
        ['Password: ', '\r'],
        ['(again): ', '\r'],
      ]);
      expect([empty.code, empty.output.replace(/\r/g, '').split('\n').at(-2)]).to.deep.equal([
        1,
        'stompede: the password must not be empty; nothing was saved',
      ]);
      expect(existsSync(file)).to.equal(false);
    });
  });
});
