import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadAllowList, unexpectedPending } from '../support/pending-guard.js';
import { REPO } from './repo.js';

/**
 * The run's own guards: `.mocharc.json` forbids `.only` and loads the pending allow-list check, and that check
 * fails a run with an undeclared pending test. Proven by running mocha, as `make test` does, on fixture specs.
 */

interface MochaRun {
  readonly code: number;
  readonly output: string;
}

/** Runs mocha with the repository's own .mocharc.json settings, but only on `spec`. */
async function mochaWithRepoConfig(dir: string, spec: string): Promise<MochaRun> {
  const config = JSON.parse(readFileSync(join(REPO, '.mocharc.json'), 'utf8')) as Record<string, unknown>;
  const file = join(dir, 'mocharc.json');
  writeFileSync(file, JSON.stringify({ ...config, spec: [spec] }));
  const mocha = join(REPO, 'node_modules', 'mocha', 'bin', 'mocha.js');
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [mocha, '--config', file], { cwd: REPO, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('ops › the test run fails on pending and exclusive tests', function () {
  this.timeout(60_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-guard-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('.mocharc.json sets forbidOnly and loads the pending guard', () => {
    const config = JSON.parse(readFileSync(join(REPO, '.mocharc.json'), 'utf8')) as { forbidOnly?: unknown; require?: unknown };
    expect(config.forbidOnly).to.equal(true);
    expect(config.require).to.include('dist/spec/support/pending-guard.js');
  });

  it('the allow-list gives every entry a reason, and matches nothing but what it names', () => {
    const allowed = loadAllowList();
    expect(allowed.length).to.be.at.least(1);
    for (const a of allowed) expect(a.reason.trim()).to.not.equal('');
    const persistence =
      'bridge › history › memory HistoryStore conformance › InMemoryHistoryStore persistence ' +
      'lets a store opened later read what an earlier, closed one wrote';
    expect(unexpectedPending([persistence], allowed)).to.deep.equal([]);
    expect(unexpectedPending([persistence.replace('InMemory', 'Mongo')], allowed)).to.have.length(1);
    expect(unexpectedPending(['KafkaBus on Kafka a test'], allowed)).to.deep.equal(['KafkaBus on Kafka a test']);
  });

  it('rejects an allow-list entry without a reason', () => {
    const file = join(dir, 'allowed.json');
    writeFileSync(file, JSON.stringify({ allowed: [{ title: '^x$', reason: '' }] }));
    expect(() => loadAllowList(file)).to.throw(TypeError, /reason/);
  });

  it('a run with an undeclared skipped test exits non-zero and lists its title', async () => {
    const spec = join(dir, 'skips.spec.mjs');
    writeFileSync(
      spec,
      `describe('guard fixture', function () {
  it('passes', function () {});
  it('skips without a declared reason', function () { this.skip(); });
  describe('a block whose before hook skips', function () {
    before(function () { this.skip(); });
    it('never runs', function () {});
  });
});
`,
    );
    const run = await mochaWithRepoConfig(dir, spec);
    expect(run.code, run.output).to.not.equal(0);
    expect(run.output).to.include('2 test(s) ended pending without a reason');
    expect(run.output).to.include('guard fixture skips without a declared reason');
    expect(run.output).to.include('guard fixture a block whose before hook skips never runs');
  });

  it('a run whose only pending test is on the allow-list passes', async () => {
    const run = await mochaWithRepoConfig(dir, join(REPO, 'dist/spec/bridge/history.spec.js'));
    expect(run.code, run.output).to.equal(0);
    expect(run.output).to.match(/\b1 pending\b/);
  });

  it('a run with an it.only fails before running anything', async () => {
    const spec = join(dir, 'only.spec.mjs');
    writeFileSync(spec, `describe('only fixture', function () { it.only('alone', function () {}); it('other', function () {}); });\n`);
    const run = await mochaWithRepoConfig(dir, spec);
    expect(run.code, run.output).to.not.equal(0);
    expect(run.output).to.match(/ERR_MOCHA_FORBIDDEN_EXCLUSIVITY|forbid/i);
  });
});
