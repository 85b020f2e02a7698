import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG, loadConfig } from '../../broker/config.js';

describe('ops › config files (YAML and JSON)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  function problems(fn: () => unknown): readonly string[] {
    try {
      fn();
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error('expected a ConfigError');
  }

  const YAML_TEXT = [
    '# a node of the chat cluster',
    'nodeId: node-1',
    'port: 61623',
    'wsPort: 15684',
    'virtualHosts: [chat, ops]',
    'redis: redis://redis:6379',
    'kafka: kafka-1:9092,kafka-2:9092',
    'routes:',
    '  - pattern: /topic/chat.**',
    '    kind: kafka',
    '    kafkaTopic: chat',
    '  - { pattern: /topic/**, kind: redis }',
    '  - pattern: /queue/**',
    '    kind: local',
    'maxBodyBytes: 1048576',
    '',
  ].join('\n');

  for (const ext of ['yaml', 'yml', 'YAML']) {
    it(`reads a .${ext} file: numbers, lists, and routes as a list of mappings`, () => {
      const c = loadConfig({ file: file(`node.${ext}`, YAML_TEXT) });
      expect(c.nodeId).to.equal('node-1');
      expect(c.port).to.equal(61623);
      expect(c.wsPort).to.equal(15684);
      expect(c.virtualHosts).to.deep.equal(['chat', 'ops']);
      expect(c.kafka).to.equal('kafka-1:9092,kafka-2:9092');
      expect(c.routes).to.deep.equal([
        { pattern: '/topic/chat.**', kind: 'kafka', target: 'chat' },
        { pattern: '/topic/**', kind: 'redis' },
        { pattern: '/queue/**', kind: 'local' },
      ]);
      expect(c.maxBodyBytes).to.equal(1048576);
      expect(c.heartbeatMinMs, 'keys the file leaves out keep their defaults').to.equal(DEFAULT_CONFIG.heartbeatMinMs);
    });
  }

  it('reads the same settings from a .json file', () => {
    const c = loadConfig({ file: file('node.json', JSON.stringify({ nodeId: 'node-2', port: 61633, virtualHosts: ['chat'] })) });
    expect(c.nodeId).to.equal('node-2');
    expect(c.port).to.equal(61633);
    expect(c.virtualHosts).to.deep.equal(['chat']);
  });

  it('layers the file under STOMPEDE_* variables, and those under flags', () => {
    const path = file('layers.yaml', 'port: 1111\nwsPort: 2222\nnodeId: from-file\n');
    const c = loadConfig({ file: path, env: { STOMPEDE_PORT: '3333', STOMPEDE_NODE_ID: 'from-env' }, overrides: { nodeId: 'from-flag' } });
    expect(c.wsPort).to.equal(2222);
    expect(c.port).to.equal(3333);
    expect(c.nodeId).to.equal('from-flag');
  });

  it('reads YAML 1.2: `no` and `off` are strings, not booleans', () => {
    const c = loadConfig({ file: file('scalars.yaml', 'nodeId: "off"\nclusterName: no\n') });
    expect(c.nodeId).to.equal('off');
    expect(c.clusterName).to.equal('no');
  });

  it('reports YAML syntax errors with the file and the line', () => {
    const found = problems(() => loadConfig({ file: file('broken.yaml', 'port: 61613\nroutes: [\n') }));
    expect(found).to.have.length(1);
    expect(found[0])
      .to.include('broken.yaml')
      .and.to.match(/line \d+/);
  });

  it('rejects duplicate keys rather than letting the last one win silently', () => {
    const found = problems(() => loadConfig({ file: file('dup.yaml', 'port: 1\nport: 2\n') }));
    expect(found[0])
      .to.include('dup.yaml')
      .and.to.match(/unique|duplicate/i);
  });

  it('rejects a file that is not a mapping of settings', () => {
    expect(problems(() => loadConfig({ file: file('list.yaml', '- port: 1\n') }))[0]).to.include('expected a YAML mapping');
    expect(problems(() => loadConfig({ file: file('list.json', '[1]') }))[0]).to.include('expected a JSON object');
  });

  it('reports unknown keys and wrong types in the file together', () => {
    const path = file('typos.yml', 'prot: 61613\nwsPort: "15674"\n');
    const found = problems(() => loadConfig({ file: path }));
    expect(found).to.include(`${path}: unknown setting "prot"; did you mean \`port\`?`);
    expect(found).to.include(`wsPort in ${path}: expected a number, got string`);
  });

  it('refuses a file whose extension does not say its format', () => {
    expect(problems(() => loadConfig({ file: file('stompede.conf', 'port: 1\n') }))[0]).to.include('*.yaml, *.yml or *.json');
  });
});
