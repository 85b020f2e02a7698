/**
 * docs/operations.md stays true to the code it describes: the settings, flags and variables it names exist,
 * the defaults it quotes are the defaults, the TTL index it suggests fits the history documents and retention,
 * the sizing figures are the ones in bench/README.md, the grace periods and probe interval it quotes are those
 * of deploy/k8s/ and docker-compose.yml, and its links lead to files.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { DEFAULT_CONFIG, envName, flagName } from '../../broker/config.js';
import { REPO } from '../ops/repo.js';

const DOC_PATH = join(REPO, 'docs/operations.md');
const DOC = readFileSync(DOC_PATH, 'utf8');
/** The prose: fenced blocks left out (they hold other programs' names and flags). */
const PROSE = DOC.replace(/^\s*```[\s\S]*?^\s*```$/gm, '');
const spans = [...PROSE.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
const KEYS = new Set(Object.keys(DEFAULT_CONFIG));

/** A `## ` section's text. */
function section(heading: string): string {
  const start = DOC.indexOf(`\n## ${heading}`);
  expect(start, `a "## ${heading}" section`).to.be.at.least(0);
  const end = DOC.indexOf('\n## ', start + 1);
  return DOC.slice(start, end < 0 ? undefined : end);
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, days: 86_400_000 };
const UNITS_BYTES: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

describe('docs › docs/operations.md', () => {
  it('covers the production topics, and and the management API and CLI', () => {
    for (const heading of ['The cluster', 'Choosing routes', 'Kafka', 'Redis', 'MongoDB', 'Sizing', 'Upgrades', 'Backup', 'Monitoring']) {
      section(heading);
    }
    expect(section('Management API and CLI')).to.include('stompede ctl list queues');
    for (const must of ['x-resume-after', 'min.insync.replicas', 'group.min.session.timeout.ms', 'appendonly yes', 'replicaSet=']) {
      expect(DOC, must).to.include(must);
    }
  });

  it('names only real settings (camelCase keys), STOMPEDE_* variables and flags', () => {
    // Inline identifiers that are not settings: client-library names the prose mentions, and fields of the
    // management API's JSON.
    const notSettings = new Set(['reconnectDelay', 'onConnect', 'preStop', 'outgoingMs', 'incomingMs', 'dlqDepth']);
    const camel = spans.filter((s) => /^[a-z]+[A-Z][A-Za-z]*$/.test(s) && !notSettings.has(s));
    expect(camel.filter((k) => !KEYS.has(k))).to.deep.equal([]);
    expect(camel.length, 'settings named').to.be.at.least(10);
    const envs = [...PROSE.matchAll(/STOMPEDE_[A-Z_]+/g)].map((m) => m[0]);
    // Besides the settings' variables, `stompede ctl` reads its own (bin/ctl.ts).
    const knownEnvs = new Set([...[...KEYS].map(envName), 'STOMPEDE_CTL_URL', 'STOMPEDE_CTL_USER', 'STOMPEDE_CTL_PASSWORD']);
    expect(envs.filter((e) => !knownEnvs.has(e))).to.deep.equal([]);
    const flags = spans.filter((s) => s.startsWith('--')).map((s) => (s.split(/[\s=]/)[0] as string).slice(2));
    // Besides the settings' flags, those of `stompede ctl` and `stompede add-user --admin`.
    const knownFlags = new Set([...[...KEYS].map(flagName), 'url', 'user', 'password', 'json', 'admin']);
    expect(flags.filter((f) => !knownFlags.has(f))).to.deep.equal([]);
  });

  it('quotes defaults as they are: every "`key` (N unit)"', () => {
    const quoted = [...PROSE.matchAll(/`([a-z][A-Za-z]*)`\s+\((\d[\d,.]*)(?: (ms|s|days|KiB|MiB|GiB))?[),\s]/g)].filter((m) =>
      KEYS.has(m[1] as string),
    );
    expect(quoted.length, 'quoted defaults').to.be.at.least(8);
    for (const [text, key, amount, unit] of quoted) {
      const scale = unit === undefined ? 1 : ((UNITS_MS[unit] ?? UNITS_BYTES[unit]) as number);
      expect(DEFAULT_CONFIG[key as keyof typeof DEFAULT_CONFIG], text).to.equal(Number((amount as string).replaceAll(',', '')) * scale);
    }
  });

  it('suggests a TTL index that fits the history documents and historyMaxAgeMs', () => {
    const m = /db\.(\w+)\.createIndex\(\{ (\w+): 1 \}, \{ expireAfterSeconds: (\d+)/.exec(DOC);
    expect(m, 'the createIndex line').to.not.equal(null);
    const [, collection, field, seconds] = m as RegExpExecArray;
    expect(collection, 'the collection of the default cluster').to.equal(`${DEFAULT_CONFIG.clusterName}_history`);
    const source = readFileSync(join(REPO, 'bridge/mongo-history.ts'), 'utf8');
    const doc = /interface HistoryDocument \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? '';
    expect(doc, `HistoryDocument has ${String(field)}: Date (TTL indexes need dates)`).to.match(
      new RegExp(`\\n\\s*${String(field)}: Date;`),
    );
    expect(source, 'the collection name the store uses').to.include('history`');
    expect(Number(seconds) * 1000).to.equal(DEFAULT_CONFIG.historyMaxAgeMs);
    expect(source, 'the index a node creates, as the doc says').to.include('createIndex({ vhost: 1, destination: 1, position: 1 })');
  });

  it('takes its sizing figures from bench/README.md', () => {
    const bench = readFileSync(join(REPO, 'bench/README.md'), 'utf8');
    const figures = [...section('Sizing').matchAll(/(\d[\d,]*(?:\.\d+)?) (msg\/s|KiB|ms|receipt\/s)/g)].map((m) => m[1] as string);
    expect(figures.length).to.be.at.least(6);
    for (const f of figures) expect(bench, `${f} in bench/README.md`).to.include(f);
  });

  it('quotes the grace periods and the readiness interval of deploy/k8s/ and docker-compose.yml', () => {
    const upgrades = section('Upgrades');
    const set = parseAllDocuments(readFileSync(join(REPO, 'deploy/k8s/statefulset.yaml'), 'utf8'))[0]?.toJS() as {
      spec: { template: { spec: { terminationGracePeriodSeconds: number; containers: { readinessProbe: { periodSeconds: number } }[] } } };
    };
    const pod = set.spec.template.spec;
    expect(upgrades).to.include(`deploy/k8s/ sets ${pod.terminationGracePeriodSeconds} s`);
    expect(upgrades).to.include(`deploy/k8s/ probes every ${pod.containers[0]?.readinessProbe.periodSeconds} s`);
    const compose = parseYaml(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, { stop_grace_period?: string }>;
    };
    const grace = compose.services.node1?.stop_grace_period ?? '';
    expect(upgrades).to.include(`the compose file ${grace.replace(/s$/, ' s')}`);
  });

  it('links only to files that exist', () => {
    const links = [...DOC.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1] as string).filter((l) => !/^https?:/.test(l));
    expect(links.length).to.be.at.least(5);
    for (const link of links) expect(existsSync(join(dirname(DOC_PATH), link)), link).to.equal(true);
  });
});
