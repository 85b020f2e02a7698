/**
 * Redis over TLS with a login (`rediss://`, `redisTlsCaFile`, `redisUsername` / `redisPassword`): this spec starts
 * its own TLS-only redis-server (the binary the test services use) with a throw-away CA made by openssl, an ACL
 * user and a password, on a free loopback port. The shared services are never touched.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { BusEnvelope } from '../../broker/ports/bus.js';
import { silentLogger } from '../../broker/ports/logger.js';
import { RedisBus } from '../../bridge/redis-bus.js';
import { connectRedis } from '../../bridge/redis-client.js';
import { freePort } from '../ops/cli.js';
import { until } from '../support/cluster.js';
import { startRedisDaemon } from '../support/redis-daemon.js';

const run = promisify(execFile);

describe('bridge › redis over TLS with a login', function () {
  this.timeout(60_000);
  let dir: string;
  let port = 0;
  let ca: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-redis-tls-'));
    const f = (name: string) => join(dir, name);
    const ssl = (...args: string[]) => run('openssl', args);
    await ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=spec-ca',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
    );
    await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr'));
    writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    await ssl(
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      f('ext.cnf'),
      '-out',
      f('server.pem'),
    );
    ca = f('ca.pem');
    port = await freePort();
    await startRedisDaemon(dir, 'redis', [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      f('server.pem'),
      '--tls-key-file',
      f('server.key'),
      '--tls-ca-cert-file',
      ca,
      '--tls-auth-clients',
      'no',
      '--requirepass',
      'default-pw',
      '--user',
      'app',
      'on',
      '>app/pw:x',
      '~*',
      '&*',
      '+@all',
    ]);
  });

  after(async () => {
    if (port > 0) {
      await run('redis-cli', [
        '--tls',
        '--cacert',
        ca,
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-a',
        'default-pw',
        '--no-auth-warning',
        'SHUTDOWN',
        'NOSAVE',
      ]).catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('pub/sub over rediss:// verified by the CA file, logged in as the ACL user of the settings', async () => {
    const got: BusEnvelope[] = [];
    const bus = new RedisBus({
      url: { url: `rediss://127.0.0.1:${port}`, tlsCaFile: ca, username: 'app', password: 'app/pw:x' },
      clusterName: 'tls-spec',
      nodeId: 'n1',
    });
    try {
      await until(
        () =>
          bus
            .start((e) => got.push(e))
            .then(
              () => true,
              () => false,
            ),
        10_000,
        'the TLS server',
      );
      await bus.watch('/', '/topic/tls');
      await bus.publish({
        origin: 'n1',
        vhost: '/',
        destination: '/topic/tls',
        headers: [],
        body: Buffer.from('secret'),
        time: Date.now(),
      });
      await until(() => got.length === 1, 5_000, 'the message over TLS');
      expect(got[0]?.body.toString()).to.equal('secret');
      const who = await bus.client?.sendCommand(['ACL', 'WHOAMI']);
      expect(who).to.equal('app');
    } finally {
      await bus.close();
    }
  });

  it('the password of the URL (percent-encoded) works too; a wrong one fails the start, masked', async () => {
    const ok = await connectRedis(
      { url: `rediss://app:${encodeURIComponent('app/pw:x')}@127.0.0.1:${port}`, tlsCaFile: ca },
      silentLogger,
      'spec',
    );
    expect(await ok.sendCommand(['ACL', 'WHOAMI'])).to.equal('app');
    await ok.close();
    const failed = await connectRedis(
      { url: `rediss://app:wrong%2Fpw@127.0.0.1:${port}`, tlsCaFile: ca },
      silentLogger,
      'spec',
      2_000,
    ).then(
      () => 'connected',
      (error: unknown) => String(error),
    );
    expect(failed).to.include(`rediss://app:***@127.0.0.1:${port}`).and.not.include('wrong');
  });

  it('without the CA file the server is not trusted', async () => {
    const failed = await connectRedis(
      { url: `rediss://127.0.0.1:${port}`, username: 'app', password: 'app/pw:x' },
      silentLogger,
      'spec',
      2_000,
    ).then(
      () => 'connected',
      (error: unknown) => String(error),
    );
    expect(failed).to.not.equal('connected');
  });
});
