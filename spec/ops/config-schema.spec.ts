import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaBus } from '../../bridge/kafka-bus.js';
import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { ConfigError, DEFAULT_CONFIG, envName, flagName, loadConfig, type ConfigSources } from '../../broker/config.js';
import { NAME_RULE } from '../../broker/ports/names.js';
import { SETTINGS } from '../../broker/settings.js';
import { startBroker, type TestBroker } from '../support/broker.js';
import { connect, connectedTcp, WsRawClient } from '../support/raw.js';
import { RunningCli, runCli } from './cli.js';

/** The problems loadConfig reports, or [] when it accepts the sources. */
function problems(sources: ConfigSources): readonly string[] {
  try {
    loadConfig(sources);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

describe('ops › one settings schema', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-schema-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  describe('validation', () => {
    it('reports every problem at once, each named as the user wrote it: file key, variable or flag', () => {
      const path = file('all.yaml', 'wsPort: "15674"\nmaxHeaders: 0\nwsPath: ws\n');
      const found = problems({
        file: path,
        env: { STOMPEDE_PORT: 'abc', STOMPEDE_LOG_LEVEL: 'loud' },
        flags: { nodeId: 'bad id!', host: 'not..a..host', maxDeliveries: '-1' },
      });
      // A type error (wsPort, port) no longer hides the value errors after it.
      expect(found).to.have.members([
        `wsPort in ${path}: expected a number, got string`,
        `maxHeaders in ${path}: must be a whole number of 1 or more, not 0`,
        `wsPath in ${path}: "ws" must start with /`,
        'STOMPEDE_PORT: "abc" is not a number',
        'STOMPEDE_LOG_LEVEL: "loud" is not one of trace, debug, info, warn, error, fatal, silent',
        '--node-id: "bad id!" may use only letters, digits, ".", "_" and "-", at most 64',
        '--host: "not..a..host" is not a host name or an IP address',
        '--max-deliveries: must be a whole number of 0 or more, not -1',
      ]);
    });

    it('names the layer that won: a flag over a variable over the file', () => {
      const path = file('layers.yaml', 'maxHeaders: 0\n');
      expect(problems({ file: path, env: { STOMPEDE_MAX_HEADERS: '-3' } })).to.deep.equal([
        'STOMPEDE_MAX_HEADERS: must be a whole number of 1 or more, not -3',
      ]);
      expect(problems({ file: path, env: { STOMPEDE_MAX_HEADERS: '-3' }, flags: { maxHeaders: '1.5' } })).to.deep.equal([
        '--max-headers: must be a whole number of 1 or more, not 1.5',
      ]);
      expect(problems({ file: path, env: { STOMPEDE_MAX_HEADERS: '-3' }, flags: { maxHeaders: '7' } })).to.deep.equal([]);
    });

    it('suggests the setting a misspelt file key or option meant', () => {
      const path = file('typos.yaml', 'wsport: 1\nws-port: 2\nmaxBodyByte: 3\ncompletelyUnrelated: 4\n');
      expect(problems({ file: path })).to.deep.equal([
        `${path}: unknown setting "wsport"; did you mean \`wsPort\`?`,
        `${path}: unknown setting "ws-port"; did you mean \`wsPort\`?`,
        `${path}: unknown setting "maxBodyByte"; did you mean \`maxBodyBytes\`?`,
        `${path}: unknown setting "completelyUnrelated"`,
      ]);
      expect(problems({ overrides: { hostt: 'x' } as never })).to.deep.equal(['unknown setting "hostt"; did you mean `host`?']);
    });

    it('accepts a host name or an IP address as host, and nothing else', () => {
      for (const host of ['0.0.0.0', '::', '127.0.0.1', 'localhost', 'node-1.example.com'])
        expect(problems({ flags: { host } }), host).to.deep.equal([]);
      for (const host of ['not..a..host', '-bad.example', 'a b', '', 'x'.repeat(64)])
        expect(problems({ flags: { host } }), host).to.deep.equal([`--host: "${host}" is not a host name or an IP address`]);
    });

    it('checks cross-setting rules with the other problems, naming both settings', () => {
      expect(problems({ env: { STOMPEDE_OPS_PORT: '15674' }, flags: { jwksFile: '/k.json', jwksUrl: 'https://k' } })).to.deep.equal([
        'STOMPEDE_OPS_PORT: 15674 is also wsPort; give each listener a port of its own',
        '--jwks-file and --jwks-url: set at most one',
      ]);
      expect(problems({ overrides: { authFailureDelayMs: 10, authFailureDelayMaxMs: 5, tlsCertFile: '/c.pem' } })).to.deep.equal([
        'tlsCertFile and tlsKeyFile: give both, or neither',
        'authFailureDelayMaxMs: must not be less than authFailureDelayMs',
      ]);
      // The TLS ports are listeners only with a certificate and a key.
      expect(problems({ overrides: { tlsPort: 15674 } })).to.deep.equal([]);
      expect(problems({ overrides: { tlsPort: 15674, tlsCertFile: '/c.pem', tlsKeyFile: '/k.pem' } })).to.deep.equal([
        'tlsPort: 15674 is also wsPort; give each listener a port of its own',
      ]);
      // A port of its own is still checked when another setting failed.
      expect(problems({ flags: { port: 'x', opsPort: '15674' } })).to.deep.equal([
        '--port: "x" is not a number',
        '--ops-port: 15674 is also wsPort; give each listener a port of its own',
      ]);
    });

    it('keeps one node-name rule in the config, the Broker and the Kafka bus', async () => {
      const longest = 'n'.repeat(NAME_RULE.maxLength);
      const tooLong = longest + 'n';
      expect(problems({ overrides: { nodeId: longest, clusterName: longest } })).to.deep.equal([]);
      expect(problems({ overrides: { nodeId: tooLong, clusterName: tooLong } })).to.deep.equal([
        `nodeId: "${tooLong}" may use only ${NAME_RULE.text}`,
        `clusterName: "${tooLong}" may use only ${NAME_RULE.text}`,
      ]);
      const bus = (nodeId: string, clusterName: string) =>
        new KafkaBus({
          brokers: ['127.0.0.1:9'],
          clusterName,
          nodeId,
          topics: ['t'],
          topicFor: () => 't',
          history: new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0 }),
        });
      expect(bus(longest, longest).groupId).to.equal(`${longest}-${longest}`);
      expect(() => bus(tooLong, 'c')).to.throw(TypeError, `nodeId "${tooLong}" may use only ${NAME_RULE.text}`);
      expect(() => bus('n', tooLong)).to.throw(TypeError, `clusterName "${tooLong}" may use only ${NAME_RULE.text}`);
    });
  });

  describe('routes in a config file', () => {
    const engines = 'redis: redis://127.0.0.1:6379\nkafka: 127.0.0.1:9092\n';

    it('accepts the flag syntax as strings, one route each or comma-separated', () => {
      const list = loadConfig({ file: file('routes-list.yaml', `${engines}routes: ["/topic/chat.**=kafka:chat", "/topic/**=redis"]\n`) });
      const one = loadConfig({ file: file('routes-one.yaml', `${engines}routes: "/topic/chat.**=kafka:chat,/topic/**=redis"\n`) });
      const expected = [
        { pattern: '/topic/chat.**', kind: 'kafka', target: 'chat' },
        { pattern: '/topic/**', kind: 'redis' },
      ];
      expect(list.routes).to.deep.equal(expected);
      expect(one.routes).to.deep.equal(expected);
      const mixed = loadConfig({
        file: file('routes-mixed.yaml', `${engines}routes: ["/queue/**=local", { pattern: /topic/**, kind: redis }]\n`),
      });
      expect(mixed.routes).to.deep.equal([
        { pattern: '/queue/**', kind: 'local' },
        { pattern: '/topic/**', kind: 'redis' },
      ]);
    });

    it('rejects malformed routes with a message naming the file, never a crash', () => {
      const path = file('routes-bad.yaml', 'routes: [42, { kind: redis }, "/topic/**=redis", "topic=local"]\n');
      expect(problems({ file: path })).to.deep.equal([
        `routes in ${path}: entry 0: a route is text pattern=kind[:target][;option=value]... ` +
          'or a mapping {pattern, kind, target, format, destination}, not number',
        `routes in ${path}: entry 1.pattern: a route needs a pattern (text starting with /)`,
      ]);
      const engineless = file('routes-engineless.yaml', 'routes: ["/topic/**=redis", "topic=local"]\n');
      expect(problems({ file: engineless })).to.deep.equal([
        `routes in ${engineless}: route "/topic/**": routes to redis, but no --redis URL is configured`,
        `routes in ${engineless}: route "topic": pattern must start with /`,
      ]);
    });
  });

  describe('the CLI', () => {
    it('help gives each flag a description with units, its variable and its default; --routes shows the syntax', async () => {
      const r = await runCli(['--help']);
      expect(r.code, r.stderr).to.equal(0);
      const help = r.stdout.replace(/\s+/g, ' ');
      expect(help).to.include('--ws-port <port> STOMP over WebSocket').and.include('(-1: off). [env STOMPEDE_WS_PORT, default 15674]');
      expect(help).to.include('--routes <routes> Which engine carries which destinations: pattern=kind[:target][;option=value]...');
      expect(help).to.include('--heartbeat-min-ms <ms> Floor of negotiated heart-beats in both directions (ms);');
      for (const [key, s] of Object.entries(SETTINGS)) {
        expect(help, key).to.include(`--${flagName(key)} ${s.arg} `);
        expect(help, key).to.include(`[env ${envName(key)}, default `);
        expect(s.help, `${key}: a description, not the key again`).to.have.length.above(15);
      }
    });

    it('an unknown flag prints one hint with the nearest flag, not the whole help', async () => {
      const r = await runCli(['--ws-prot', '1']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include("unknown option '--ws-prot'").and.include('Did you mean --ws-port?').and.include('stompede --help');
      expect(r.stderr).to.not.include('Options:');
      expect(r.stderr.trim().split('\n')).to.have.length.below(5);
    });

    it('--host not..a..host fails naming --host', async () => {
      const r = await runCli(['--host', 'not..a..host', '--port', '0', '--ws-port', '0']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('--host: "not..a..host" is not a host name or an IP address');
    });

    it('--print-config validates as a start does: a bad node id and two listeners on one port exit 2', async () => {
      const r = await runCli(['--print-config', '--node-id', 'bad id!', '--port', '61613', '--ws-port', '61613']);
      expect(r.code).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr)
        .to.include('--node-id: "bad id!" may use only')
        .and.include('--ws-port: 61613 is also --port; give each listener a port of its own');
      const ops = await runCli(['--print-config', '--ops-port', '15674']);
      expect(ops.code).to.equal(2);
      expect(ops.stderr).to.include('--ops-port: 15674 is also wsPort');
    });

    it('--print-config shows the effective routes', async () => {
      const show = async (args: string[]) => {
        const r = await runCli(['--print-config', ...args]);
        expect(r.code, r.stderr).to.equal(0);
        return (JSON.parse(r.stdout) as { routes: unknown }).routes;
      };
      // In the text grammar of --routes, every option that applies written out.
      expect(await show([])).to.deep.equal(['/**=local']);
      expect(await show(['--redis', 'redis://127.0.0.1:6379'])).to.deep.equal([
        '/redis/**=redis:{1};format=raw',
        '/topic/**=redis;format=stompede',
        '/queue/**=redis;format=stompede',
      ]);
      expect(await show(['--kafka', '127.0.0.1:9092'])).to.deep.equal([
        '/kafka/**=kafka:{1};format=native;destination=mapping',
        '/topic/**=kafka:stompede.topics;format=stompede;destination=key',
        '/queue/**=kafka:stompede.queues;format=stompede;destination=key',
      ]);
      expect(await show(['--redis', 'redis://127.0.0.1:6379', '--routes', '/topic/**=redis,/queue/**=local'])).to.deep.equal([
        '/redis/**=redis:{1};format=raw',
        '/topic/**=redis;format=stompede',
        '/queue/**=local',
      ]);
    });

    it('--print-config masks passwords holding "/" or "@", and ?password= parameters', async () => {
      const r = await runCli([
        '--print-config',
        '--redis',
        'redis://app:pa/ss@word@redis:6379/0',
        '--mongo',
        'mongodb://mongo:27017/db?authSource=admin&password=hunter2&w=1',
      ]);
      expect(r.code, r.stderr).to.equal(0);
      const shown = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(shown.redis).to.equal('redis://app:***@redis:6379/0');
      expect(shown.mongo).to.equal('mongodb://mongo:27017/db?authSource=admin&password=***&w=1');
      expect(r.stdout).to.not.include('pa/ss').and.not.include('hunter2');
    });
  });

  describe('turning listeners off', () => {
    let b: TestBroker | undefined;
    const running: RunningCli[] = [];
    afterEach(async () => {
      await b?.close();
      b = undefined;
      await Promise.all(running.splice(0).map((c) => c.stop()));
    });

    it('port -1 and wsPort -1 are each accepted; both off without TLS is refused, with TLS allowed', () => {
      expect(problems({ flags: { port: '-1' } })).to.deep.equal([]);
      expect(problems({ flags: { wsPort: '-1' } })).to.deep.equal([]);
      expect(problems({ flags: { port: '-1', wsPort: '-1' } })).to.deep.equal([
        '--port and --ws-port: both -1 (off) and no TLS certificate: keep at least one STOMP listener (TCP, WebSocket, TLS or WSS)',
      ]);
      expect(problems({ flags: { port: '-1', wsPort: '-1', tlsCertFile: '/c.pem', tlsKeyFile: '/k.pem' } })).to.deep.equal([]);
      expect(problems({ flags: { port: '-2' } })).to.deep.equal(['--port: -2 is not a port (-1..65535)']);
      expect(DEFAULT_CONFIG.port).to.equal(61613);
    });

    it('port -1 opens no TCP listener; WebSocket clients still connect', async () => {
      b = await startBroker({ port: -1 });
      expect(b.addresses.tcp).to.equal(undefined);
      const ws = await WsRawClient.open(b.wsUrl);
      try {
        expect((await connect(ws)).command).to.equal('CONNECTED');
      } finally {
        ws.close();
      }
    });

    it('wsPort -1 opens no WebSocket listener; TCP clients still connect', async () => {
      b = await startBroker({ wsPort: -1 });
      expect(b.addresses.ws).to.equal(undefined);
      const tcp = await connectedTcp(b.tcpPort);
      tcp.close();
    });

    it('from the CLI, --port -1 starts with the WebSocket listener only and says so', async () => {
      const cli = new RunningCli(['--port', '-1', '--ws-port', '0', '--log-level', 'info']);
      running.push(cli);
      const line = await cli.waitForLog((l) => String(l.msg).includes('listening'));
      expect(line.tcp).to.equal(undefined);
      expect(String(line.msg)).to.include('WebSocket ws://127.0.0.1:');
      expect(String(line.msg)).to.not.include('tcp://');
      const ws = await WsRawClient.open((line.ws as { url: string }).url);
      try {
        expect((await connect(ws)).command).to.equal('CONNECTED');
      } finally {
        ws.close();
      }
    });
  });
});
