import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { withSettingsTables } from '../../broker/config-docs.js';
import { DEFAULT_CONFIG, envName, flagName, loadConfig } from '../../broker/config.js';
import { REPO } from './repo.js';

const DOC = readFileSync(join(REPO, 'docs/configuration.md'), 'utf8');

/** Table rows of the doc whose first cell is a `code` key: key → the row's cells. */
function keyRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of markdown.split('\n')) {
    const m = /^\| `([A-Za-z]+)` \|(.*)\|$/.exec(line);
    if (m !== null)
      rows.set(
        m[1] as string,
        (m[2] as string).split(' | ').map((c) => c.trim()),
      );
  }
  return rows;
}

/** The fenced ```yaml blocks of the doc. */
function yamlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1] as string);
}

describe('ops › docs/configuration.md', () => {
  const section = DOC.slice(DOC.indexOf('## Every setting'), DOC.indexOf('## Routes'));
  const rows = keyRows(section);

  for (const [key, value] of Object.entries(DEFAULT_CONFIG)) {
    it(`documents ${key}: meaning, default, environment variable, flag and example`, () => {
      const cells = rows.get(key);
      expect(cells, `docs/configuration.md has no row for DEFAULT_CONFIG.${key}`).to.not.equal(undefined);
      const [meaning, shownDefault, env, flag, example] = cells as string[];
      expect(meaning, 'meaning').to.have.length.above(10);
      expect(shownDefault, 'default').to.equal('`' + JSON.stringify(value) + '`');
      expect(env, 'environment variable').to.equal('`' + envName(key) + '`');
      expect(flag, 'flag').to.equal('`--' + flagName(key) + '`');
      expect(example, 'example').to.match(/^`.+`$/);
    });
  }

  it('has the settings tables the schema generates (run `npm run docs:config` after changing a setting)', () => {
    const generated = withSettingsTables(DOC);
    const stale = DOC.split('\n').filter((line, i) => line !== generated.split('\n')[i]);
    expect(stale, 'docs/configuration.md is out of date: run `npm run docs:config`').to.deep.equal([]);
    expect(generated).to.equal(DOC);
  });

  it('documents no setting that DEFAULT_CONFIG does not have', () => {
    expect([...rows.keys()].filter((k) => !(k in DEFAULT_CONFIG))).to.deep.equal([]);
  });

  it('gives a full example YAML that names every key and loads as it is', () => {
    const full = yamlBlocks(DOC).find((b) => b.startsWith('# node.yaml'));
    expect(full, 'the full example').to.not.equal(undefined);
    const parsed = parseYaml(full as string) as Record<string, unknown>;
    expect(Object.keys(parsed)).to.have.members(Object.keys(DEFAULT_CONFIG));
    const dir = mkdtempSync(join(tmpdir(), 'stompede-doc-'));
    try {
      const file = join(dir, 'node.yaml');
      writeFileSync(file, full as string);
      const config = loadConfig({ file });
      expect(config.nodeId).to.equal('node-1');
      expect(config.routes).to.have.length(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows the same routes in the flag form and the file form', () => {
    const flag = /^--routes '([^']+)'$/m.exec(DOC)?.[1];
    const env = /^STOMPEDE_ROUTES=(\S+)$/m.exec(DOC)?.[1];
    const file = yamlBlocks(DOC).find((b) => b.startsWith('routes:'));
    expect(flag).to.be.a('string');
    expect(env).to.equal(flag);
    const fromFlag = loadConfig({
      env: { STOMPEDE_ROUTES: flag, STOMPEDE_REDIS: 'redis://127.0.0.1:6379', STOMPEDE_KAFKA: '127.0.0.1:9092' },
    }).routes;
    const dir = mkdtempSync(join(tmpdir(), 'stompede-doc-'));
    try {
      const path = join(dir, 'routes.yaml');
      writeFileSync(path, `redis: redis://127.0.0.1:6379\nkafka: 127.0.0.1:9092\n${file as string}\n`);
      expect(fromFlag).to.deep.equal(loadConfig({ file: path }).routes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
