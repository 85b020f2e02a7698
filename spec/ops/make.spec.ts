/**
 * `make run` rebuilds only what changed. Proved with `make -n` (print, never run) against stamps of this spec's
 * own, just touched: the real build in dist/ is never touched, whichever way it was made (make or npm run build).
 * `-W FILE` makes make treat FILE as just edited, so each case names an edit and the steps it must (not) cause.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './repo.js';

const TSC = 'node_modules/.bin/tsc -p .';
const WEB = 'npm run --silent build:web';

/** The commands `make -n` would run, one per line. */
function dryRun(args: readonly string[]): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    // --no-print-directory: under `make test` this make is a sub-make, which would otherwise announce its directory.
    const child = spawn('make', ['-n', '--no-print-directory', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines: stdout.split('\n').filter((l) => l !== ''), stderr }));
  });
}

describe('ops › make run is incremental', function () {
  this.timeout(30_000);
  let dir = '';
  let stamps: string[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-make-'));
    // Written now, so newer than every source: as after a completed build.
    const tsc = join(dir, 'tsc.stamp');
    const web = join(dir, 'web.stamp');
    writeFileSync(tsc, '');
    writeFileSync(web, '');
    stamps = [`TSC_STAMP=${tsc}`, `WEB_STAMP=${web}`];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const cases = [
    { edited: undefined, runs: [] },
    { edited: 'broker/config.ts', runs: [TSC] },
    { edited: 'frames/parser.ts', runs: [TSC] },
    { edited: 'spec/ops/make.spec.ts', runs: [TSC] },
    { edited: 'tsconfig.json', runs: [TSC] },
    { edited: 'web/chat.ts', runs: [WEB] },
    { edited: 'web/index.html', runs: [WEB] },
    { edited: 'package-lock.json', runs: ['npm ci --no-audit --no-fund', TSC, WEB] },
  ] as const;

  for (const c of cases) {
    it(`${c.edited === undefined ? 'nothing edited' : `after an edit of ${c.edited}`}: make run runs ${
      c.runs.length === 0 ? 'no build step' : c.runs.join(', ')
    }, then the node`, async () => {
      const r = await dryRun([...(c.edited === undefined ? [] : ['-W', c.edited]), 'run', ...stamps]);
      expect(r.code, r.stderr).to.equal(0);
      const steps = r.lines.filter((l) => !l.startsWith('touch ') && !l.startsWith('node dist/bin/stompede.js'));
      expect(steps).to.deep.equal([...c.runs]);
      expect(r.lines.at(-1)).to.match(/^node dist\/bin\/stompede\.js\b/);
    });
  }
});
