/**
 * Production settings for Kafka and Redis (issue #7 item 7): secrets masked wherever a URL is shown, the
 * validation of the new settings, and the kafkajs TLS / SASL options built from them (no SASL Kafka runs here,
 * so the builder is checked as a unit, and the CLI shows that the settings reach it).
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../broker/config.js';
import { maskSecrets } from '../../broker/ports/secrets.js';
import { kafkaClientSecurity } from '../../bridge/kafka/client-config.js';
import { autoReplicationFactor } from '../../bridge/kafka-bus.js';
import { firstKeyOf, redisNodes } from '../../bridge/redis-client.js';
import { runCli } from './cli.js';

function problems(flags: Record<string, string>): string[] {
  try {
    loadConfig({ flags });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems as string[];
    throw error;
  }
  return [];
}

describe('ops › production settings (Kafka TLS/SASL, Redis Sentinel/Cluster, secrets)', () => {
  describe('maskSecrets', () => {
    const cases: [string, string][] = [
      ['redis://:s3cret@redis:6379/0', 'redis://:***@redis:6379/0'],
      ['redis://user:pa/ss@redis:6379', 'redis://user:***@redis:6379'],
      ['rediss://user:a/b@c?d#e@redis.example:6380/1', 'rediss://user:***@redis.example:6380/1'],
      ['redis://redis:6379/?password=hunter2&db=1', 'redis://redis:6379/?password=***&db=1'],
      ['mongodb://app:p%40ss@mongo:27017/?authSource=admin&token=abc', 'mongodb://app:***@mongo:27017/?authSource=admin&token=***'],
      ['redis://:a@h1:7000,redis://:b/c@h2:7001,redis://h3:7002', 'redis://:***@h1:7000,redis://:***@h2:7001,redis://h3:7002'],
      ['redis://user@redis:6379', 'redis://user@redis:6379'],
      ['redis://redis:6379', 'redis://redis:6379'],
      ['cannot reach Redis at redis://:x/y@h:1 within 5 ms', 'cannot reach Redis at redis://:***@h:1 within 5 ms'],
      ['"redis://u:secret@h" is not a URL', '"redis://u:***@h" is not a URL'],
    ];
    for (const [given, shown] of cases) {
      it(`${given} → ${shown}`, () => {
        expect(maskSecrets(given)).to.equal(shown);
      });
    }
  });

  describe('--print-config', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'stompede-prod-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('shows the new settings and never a password: URL lists, password settings, `/` and ?password= forms', async () => {
      const file = join(dir, 'prod.yaml');
      writeFileSync(
        file,
        [
          'redis: "redis://:sec/ret1@r1:7000,redis://:sec@ret2@r2:7001"',
          'redisMode: cluster',
          'redisPassword: hunter2-redis',
          'kafkaSaslMechanism: scram-sha-512',
          'kafkaSaslUsername: app',
          'mongo: "mongodb://m:27017/?password=mongo-pw"',
        ].join('\n'),
      );
      const r = await runCli(['--print-config', '--config', file, '--kafka', 'k:9092'], {
        STOMPEDE_KAFKA_SASL_PASSWORD: 'kafka-pw',
        STOMPEDE_KAFKA_SSL: 'true',
      });
      expect(r.code, r.stderr).to.equal(0);
      const shown = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(shown.redis).to.equal('redis://:***@r1:7000,redis://:***@r2:7001');
      expect(shown.redisMode).to.equal('cluster');
      expect(shown.redisPassword).to.equal('***');
      expect(shown.kafkaSaslPassword).to.equal('***');
      expect(shown.kafkaSaslMechanism).to.equal('scram-sha-512');
      expect(shown.kafkaSsl).to.equal(true);
      expect(shown.mongo).to.equal('mongodb://m:27017/?password=***');
      for (const secret of ['sec/ret1', 'ret2', 'hunter2', 'kafka-pw', 'mongo-pw']) expect(r.stdout).to.not.include(secret);
    });

    it('a start-up error shows the Redis URL masked', async () => {
      const r = await runCli(['--redis', 'redis://:top/secret@127.0.0.1:1', '--port', '0', '--ws-port', '-1', '--ops-port', '-1'], {});
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.include('redis://:***@127.0.0.1:1');
      expect(r.stderr).to.not.include('top/secret');
    });
  });

  describe('validation', () => {
    it('reports every problem of the new settings at once, each naming its flag', () => {
      const found = problems({
        redis: 'redis://a:1,redis://b:2',
        redisMode: 'galaxy',
        kafkaSaslMechanism: 'scram-sha-1',
        kafkaSsl: 'maybe',
        kafkaTopicPartitions: '0',
        kafkaReplicationFactor: '-1',
        kafkaClientId: 'bad id',
      });
      const text = found.join('\n');
      expect(text).to.include('--redis-mode: "galaxy" is not one of standalone, sentinel, cluster');
      expect(text).to.include('--kafka-sasl-mechanism: "scram-sha-1" is not one of none, plain, scram-sha-256, scram-sha-512');
      expect(text).to.include('--kafka-ssl: "maybe" is not true or false');
      expect(text).to.include('--kafka-topic-partitions');
      expect(text).to.include('--kafka-replication-factor');
      expect(text).to.include('--kafka-client-id');
    });

    it('ties settings together: several Redis URLs need a mode, SASL needs a user, TLS cert and key go together', () => {
      const text = [
        ...problems({ redis: 'redis://a:1,redis://b:2' }),
        ...problems({ redisMode: 'sentinel' }),
        ...problems({ kafkaSaslMechanism: 'plain' }),
        ...problems({ kafkaSslCertFile: '/c.pem' }),
      ].join('\n');
      // A setting left at its default is named by its key; one given as a flag by the flag.
      expect(text).to.include('--redis: several URLs need redisMode sentinel (they are the sentinels) or cluster (seed nodes)');
      expect(text).to.include('--redis-mode: sentinel needs redis (the sentinels)');
      expect(text).to.include('--kafka-sasl-mechanism: plain needs kafkaSaslUsername and kafkaSaslPassword');
      expect(text).to.include('--kafka-ssl-cert-file and kafkaSslKeyFile: give both, or neither');
      expect(problems({ redis: 'redis://a:1,redis://b:2', redisMode: 'cluster', kafkaSsl: 'on' })).to.deep.equal([]);
    });
  });

  describe('kafkaClientSecurity (the kafkajs ssl and sasl options)', () => {
    const files: Record<string, Buffer> = { '/ca.pem': Buffer.from('CA'), '/c.pem': Buffer.from('CERT'), '/k.pem': Buffer.from('KEY') };
    const read = (f: string): Buffer => {
      const b = files[f];
      if (b === undefined) throw new Error(`ENOENT ${f}`);
      return b;
    };

    it('nothing asked: neither TLS nor SASL', () => {
      expect(kafkaClientSecurity({ ssl: false, saslMechanism: 'none' }, read)).to.deep.equal({});
    });

    it('TLS with the system CAs, or with the given CA, client certificate and key', () => {
      expect(kafkaClientSecurity({ ssl: true }, read)).to.deep.equal({ ssl: true });
      expect(kafkaClientSecurity({ sslCaFile: '/ca.pem', sslCertFile: '/c.pem', sslKeyFile: '/k.pem' }, read)).to.deep.equal({
        ssl: { ca: [Buffer.from('CA')], cert: Buffer.from('CERT'), key: Buffer.from('KEY') },
      });
    });

    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
      it(`SASL ${mechanism}`, () => {
        expect(kafkaClientSecurity({ ssl: true, saslMechanism: mechanism, saslUsername: 'app', saslPassword: 'pw' }, read)).to.deep.equal({
          ssl: true,
          sasl: { mechanism, username: 'app', password: 'pw' },
        });
      });
    }

    it('a missing file fails, naming it', () => {
      expect(() => kafkaClientSecurity({ sslCaFile: '/nope.pem' }, read)).to.throw('/nope.pem');
    });

    it('replication of created topics defaults to min(3, brokers)', () => {
      expect([1, 2, 3, 5].map(autoReplicationFactor)).to.deep.equal([1, 2, 3, 3]);
    });
  });

  describe('Redis targets', () => {
    it('parses URL lists with TLS and credentials', () => {
      expect(redisNodes('rediss://u:p%2Fw@a:7000, redis://b')).to.deep.equal([
        { host: 'a', port: 7000, tls: true, username: 'u', password: 'p/w' },
        { host: 'b', port: 6379, tls: false, username: '', password: '' },
      ]);
      expect(() => redisNodes('http://u:pw@a:1')).to.throw(TypeError, 'http://u:***@a:1');
    });

    it('routes cluster commands by their first key (EVAL after the key count)', () => {
      expect(firstKeyOf(['EVAL', 'script', '2', 'k1', 'k2', 'a'])).to.equal('k1');
      expect(firstKeyOf(['EVAL', 'script', '0', 'a'])).to.equal(undefined);
      expect(firstKeyOf(['MEMORY', 'USAGE', 'k'])).to.equal('k');
      expect(firstKeyOf(['LLEN', 'k'])).to.equal('k');
    });
  });
});
