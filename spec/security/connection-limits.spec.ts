/**
 * Issue #8, limits on connections: per node (refused at accept, with a reason), per user (at CONNECTED), idle
 * sessions without heart-beats, TLS handshakes that never finish, and the warning when the open-file limit leaves
 * no room for maxConnections.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { openFilesSoftLimit } from '../../broker/broker.js';
import { FD_HEADROOM } from '../../broker/config.js';
import type { Authenticator, Logger } from '../../broker/index.js';
import { startBroker, uniqueName } from '../support/broker.js';
import { RawClient, connect } from '../support/raw.js';
import { V12, expectError, expectQuiet, nextMessage, publish, sleep, stompFrame, subscribe, useBroker } from '../broker/harness.js';
import { until } from './support.js';

/** Every login is accepted as itself: enough to count sessions per user. */
const byLogin: Authenticator = { authenticate: async (c) => ({ ok: true, user: c.login ?? 'nobody' }) };

describe('security › connection limits (issue #8 item 5)', () => {
  describe('maxConnections', () => {
    const h = useBroker({ maxConnections: 3 });

    it('answers a connection past the node limit with ERROR and closes it, before it says anything', async () => {
      const held = [await h.client(V12), await h.raw(), await h.raw()];
      const extra = await h.raw();
      await expectError(extra, {
        message: 'too many connections (limit 3 per node)',
        body: 'This node has as many open connections as it accepts; retry later or connect to another node.\n',
      });
      expect(h.broker.stats.limitHits.get('connections')).to.equal(1);
      // The refused one does not count; closing a held one makes room.
      held[2]?.close();
      await until(() => h.broker.sessions.size === 2, 2000, 'the closed session to go');
      const again = await h.client(V12);
      await expectQuiet(again);
    });
  });

  describe('maxConnectionsPerUser', () => {
    const h = useBroker({ maxConnectionsPerUser: 2 }, { authenticator: byLogin });

    it('refuses a third CONNECT of one login at CONNECTED time; other logins are not affected', async () => {
      const alice = { 'accept-version': '1.2', host: 'localhost', login: 'alice', passcode: 'x' };
      await h.client(alice);
      const second = await h.client(alice);
      const third = await h.raw();
      third.send(stompFrame('CONNECT', alice));
      await expectError(third, {
        message: 'too many connections for this user (limit 2 per user)',
        body: 'This login already has as many sessions on this node as it may; close one first.\n',
      });
      expect(h.broker.stats.limitHits.get('connections-per-user')).to.equal(1);
      await h.client({ ...alice, login: 'bob' });
      second.close();
      await until(() => [...h.broker.sessions].filter((s) => s.user === 'alice').length === 1, 2000, 'alice to have one session');
      await h.client(alice);
    });
  });

  describe('open-file limit', () => {
    it('reads the soft limit from /proc/self/limits text', () => {
      const text =
        'Limit                     Soft Limit           Hard Limit           Units\n' +
        'Max processes             63581                63581                processes\n' +
        'Max open files            1024                 524288               files\n';
      expect(openFilesSoftLimit(text)).to.equal(1024);
      expect(openFilesSoftLimit(text.replace('1024 ', 'unlimited'))).to.equal(undefined);
      expect(openFilesSoftLimit('')).to.equal(undefined);
    });

    it('warns at start when maxConnections leaves no headroom below it', async () => {
      const warnings: string[] = [];
      const logger: Logger = {
        trace() {},
        debug() {},
        info() {},
        error() {},
        warn(obj, msg) {
          warnings.push(typeof obj === 'string' ? obj : (msg ?? ''));
        },
        child: () => logger,
      };
      // Far above any soft limit this machine has.
      const b = await startBroker({ maxConnections: 2 ** 40 }, { logger });
      await b.close();
      expect(
        warnings.some((w) => w.includes(`leaves less than ${FD_HEADROOM} file descriptors of headroom below the open-file limit`)),
        warnings.join('\n'),
      ).to.equal(true);
      const quiet: string[] = [];
      const fine = await startBroker({ maxConnections: 1 }, { logger: { ...logger, warn: (o, m) => quiet.push(m ?? JSON.stringify(o)) } });
      await fine.close();
      expect(quiet.filter((w) => w.includes('open-file limit'))).to.deep.equal([]);
    });
  });

  describe('idleTimeoutMs', () => {
    // 1 s, not less: the keep-alive specs below must not fail because this process stalled (250 ms seen under load).
    const h = useBroker({ idleTimeoutMs: 1_000 });

    it('closes a CONNECTed session without heart-beats after the idle timeout (once: forever)', async () => {
      const c = await h.client(V12);
      const started = Date.now();
      await expectError(c, {
        message: 'idle timeout (limit 1000 ms without traffic)',
        body: 'Nothing was sent or received for more than 1000 ms; negotiate heart-beats to keep a quiet connection open.\n',
      });
      // The sweep runs every 75 ms; the bound is generous for a shared machine.
      expect(Date.now() - started).to.be.within(950, 4000);
      expect(h.broker.stats.limitHits.get('idle')).to.be.greaterThan(0);
    });

    it('keeps a subscriber that is receiving messages, and a client that keeps sending', async () => {
      const topic = `/topic/${uniqueName()}`;
      const sub = await h.client(V12);
      await subscribe(sub, topic, 's');
      const pub = await h.client(V12);
      // 2 s in 50 ms steps: twice the 1 s timeout overall, with 950 ms to spare at each step.
      for (let i = 0; i < 40; i++) {
        await publish(pub, topic, String(i));
        expect((await nextMessage(sub)).text).to.equal(String(i));
        await sleep(50);
      }
      expect(sub.isClosed || pub.isClosed).to.equal(false);
    });

    it('keeps a session with heart-beats', async () => {
      const c = await RawClient.tcp(h.port);
      try {
        await connect(c, { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '100,0' });
        for (let i = 0; i < 40; i++) {
          c.send('\n');
          await sleep(50);
        }
        expect(c.isClosed).to.equal(false);
      } finally {
        c.close();
      }
    });
  });

  describe('TLS handshake timeout', () => {
    let dir = '';
    let cert = '';
    let key = '';
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'stompede-tls-'));
      cert = join(dir, 'cert.pem');
      key = join(dir, 'key.pem');
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'],
        { stdio: 'ignore' },
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('drops a plain TCP connection to the TLS port that says nothing, within connectTimeoutMs (once: 200 s+)', async () => {
      const b = await startBroker({ tlsCertFile: cert, tlsKeyFile: key, tlsPort: 0, wssPort: -1, connectTimeoutMs: 300 });
      try {
        const port = b.addresses.tls?.port ?? 0;
        const started = Date.now();
        const silent = netConnect({ port, host: '127.0.0.1' });
        silent.on('error', () => {});
        silent.resume(); // flowing, so the broker's FIN is seen without reading
        await new Promise<void>((resolve) => silent.once('close', () => resolve()));
        expect(Date.now() - started, 'ms until the broker dropped it').to.be.within(200, 5000);
        expect(b.broker.stats.limitHits.get('handshake')).to.equal(1);
        // A real TLS client still gets in.
        const ok = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
        await new Promise<void>((resolve, reject) => ok.once('secureConnect', resolve).once('error', reject));
        ok.write(stompFrame('CONNECT', V12));
        const reply = await new Promise<string>((resolve) => ok.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
        expect(reply.startsWith('CONNECTED\n')).to.equal(true);
        ok.destroy();
      } finally {
        await b.close();
      }
    });

    it('drops sockets at accept past maxConnections + 32, even ones that never become sessions (TLS handshakes)', async () => {
      const b = await startBroker({ tlsCertFile: cert, tlsKeyFile: key, tlsPort: 0, wssPort: -1, maxConnections: 2 });
      const sockets: Socket[] = [];
      try {
        const port = b.addresses.tls?.port ?? 0;
        let closed = 0;
        for (let i = 0; i < 40; i++) {
          const s = netConnect({ port, host: '127.0.0.1' });
          s.on('error', () => {});
          s.resume();
          s.once('close', () => closed++);
          sockets.push(s);
          await new Promise((resolve) => s.once('connect', resolve));
        }
        // 2 + 32 silent handshakes are held (until the 10 s connect timeout); the other 6 are dropped at once.
        await until(() => closed === 6, 5000, 'six dropped sockets');
        await sleep(100);
        expect(closed).to.equal(6);
        expect(b.broker.stats.limitHits.get('connections')).to.equal(6);
      } finally {
        for (const s of sockets) s.destroy();
        await b.close();
      }
    });
  });
});
