/**
 * Authentication under attack (issue #8 item 4): odd logins are just unknown users; unknown and known logins cost
 * the same; failures are delayed per address and per login BEFORE the password check, logged at warn without the
 * passcode, and counted; a flood of wrong passwords from one address does not starve a real user elsewhere.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Authenticator, Credentials } from '../../broker/index.js';
import { stompFrame } from '../support/raw.js';
import { expectError, useBroker } from '../broker/harness.js';
import { as, captureLogger, writeUsers } from './support-auth.js';

const REFUSED = { message: 'Access refused', body: 'Authentication failed: login or passcode is wrong.\n' };

/** One CONNECT over a fresh socket from `localAddress`; resolves with the reply's command line and the time it took. */
function attempt(port: number, headers: Record<string, string>, localAddress = '127.0.0.1'): Promise<{ command: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress });
    let got = '';
    socket.on('connect', () => socket.write(stompFrame('CONNECT', headers)));
    socket.on('data', (chunk) => {
      got += chunk.toString('latin1');
      if (got.includes('\0')) {
        resolve({ command: got.slice(0, got.indexOf('\n')), ms: performance.now() - started });
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () =>
      resolve({ command: got === '' ? 'CLOSED' : got.slice(0, got.indexOf('\n')), ms: performance.now() - started }),
    );
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

describe('security › authentication hardening', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stompede-authh-'));
  const usersFile = join(dir, 'users.json');
  before(async () => {
    await writeUsers(usersFile, { alice: 'alice-pw', bob: 'bob-pw' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('odd logins and timing', () => {
    const logger = captureLogger();
    const h = useBroker({ usersFile, authFailureDelayMs: 0, authFailureDelayMaxMs: 0 }, { logger });

    for (const login of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      it(`treats the login ${login} as an unknown user (no internal error)`, async () => {
        const c = await h.raw();
        c.send(stompFrame('CONNECT', as(login, 'x')));
        await expectError(c, REFUSED);
        expect(logger.lines.filter((l) => l.level === 'error')).to.deep.equal([]);
      });
    }

    it('answers an unknown login as slowly as a known one with a wrong password (was 1 ms vs 71 ms)', async () => {
      const unknown: number[] = [];
      const known: number[] = [];
      for (let i = 0; i < 5; i++) {
        known.push((await attempt(h.port, as('alice', `wrong${i}`))).ms);
        unknown.push((await attempt(h.port, as(`nobody${i}`, 'wrong'))).ms);
      }
      // Both pay one scrypt check; the bound is loose for a shared machine, far above the old 1/71 ratio.
      expect(median(unknown)).to.be.above(median(known) / 3);
    });
  });

  describe('failure delay', () => {
    const calls: number[] = [];
    const refuseAll: Authenticator = {
      authenticate: async (_c: Credentials) => {
        calls.push(performance.now());
        return { ok: false, reason: 'login or passcode is wrong' };
      },
    };
    const logger = captureLogger();
    const h = useBroker(
      { authFailureDelayMs: 100, authFailureDelayMaxMs: 400, authFailureForgetMs: 1500 },
      { logger, authenticator: refuseAll },
    );
    const warnings = () => logger.lines.filter((l) => l.level === 'warn' && l.msg === 'authentication failed');

    it('doubles per failure up to the cap, per address and per login, and logs each at warn without the passcode', async () => {
      const hitsBefore = h.broker.stats.limitHits.get('auth-failures') ?? 0;
      for (let i = 0; i < 5; i++) await attempt(h.port, as('mallory', `secret-guess-${i}`));
      expect(warnings().map((l) => l.fields.delayMs)).to.deep.equal([0, 100, 200, 400, 400]);
      // Per login: the same login from another address owes the same delay ...
      await attempt(h.port, as('mallory', 'secret-guess-x'), '127.0.0.2');
      // ... and another login from that address owes the address's (one failure so far).
      await attempt(h.port, as('trudy', 'secret-guess-y'), '127.0.0.2');
      expect(
        warnings()
          .slice(5)
          .map((l) => l.fields.delayMs),
      ).to.deep.equal([400, 100]);
      for (const l of warnings()) {
        expect(l.fields.login).to.be.oneOf(['mallory', 'trudy']);
        expect(String(l.fields.remote)).to.include('127.0.0.');
        expect(JSON.stringify(l)).to.not.include('secret-guess');
      }
      expect((h.broker.stats.limitHits.get('auth-failures') ?? 0) - hitsBefore).to.equal(7);
    });

    it('makes the client wait before the check is even started', async () => {
      const sent = performance.now();
      calls.length = 0;
      await attempt(h.port, as('mallory', 'again'));
      // The owed delay is 400 ms (the cap); the authenticator is called only after it.
      expect((calls[0] as number) - sent).to.be.at.least(380);
    });

    it('forgives failures after a quiet window', async () => {
      await sleep(1600);
      await attempt(h.port, as('mallory', 'later'));
      expect(warnings().at(-1)?.fields.delayMs).to.equal(0);
    });
  });

  describe('a flood of wrong passwords', () => {
    const h = useBroker({ usersFile });

    /** A connected socket from `localAddress`; the flood's sockets are opened first, in waves, so the TCP accept queue
     *  does not overflow (a dropped SYN costs a 1 s retransmit: a test artifact, not the broker's doing). */
    const open = (localAddress: string): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const socket = netConnect({ port: h.port, host: '127.0.0.1', localAddress });
        socket.on('connect', () => resolve(socket));
        socket.on('error', reject);
      });
    const reply = (socket: Socket): Promise<string> =>
      new Promise((resolve) => {
        let got = '';
        socket.on('data', (chunk) => {
          got += chunk.toString('latin1');
          if (got.includes('\0')) {
            resolve(got.slice(0, got.indexOf('\n')));
            socket.destroy();
          }
        });
        socket.on('close', () => resolve(got === '' ? 'CLOSED' : got.slice(0, got.indexOf('\n'))));
      });
    const realUser = async (): Promise<{ command: string; ms: number }> => {
      const socket = await open('127.0.0.2');
      const started = performance.now();
      const answer = reply(socket);
      socket.write(stompFrame('CONNECT', as('bob', 'bob-pw')));
      const command = await answer;
      return { command, ms: performance.now() - started };
    };

    it('lets a real user from another address connect promptly (< 4 × idle + 2 s; unguarded: > 10 s)', async function () {
      this.timeout(120_000);
      const quiet = await realUser();
      const sockets: Socket[] = [];
      for (let i = 0; i < 1000; i += 100) sockets.push(...(await Promise.all(Array.from({ length: 100 }, () => open('127.0.0.1')))));
      const replies = sockets.map((socket, i) => {
        const answer = reply(socket);
        socket.write(stompFrame('CONNECT', as('alice', `guess-${i}`)));
        return answer;
      });
      await sleep(20); // the 1,000 wrong passwords are in
      const real = await realUser();
      console.log(
        `      real user CONNECTED in ${real.ms.toFixed(0)} ms during a 1,000-password flood (${quiet.ms.toFixed(0)} ms when idle)`,
      );
      expect([quiet.command, real.command]).to.deep.equal(['CONNECTED', 'CONNECTED']);
      // One scrypt check takes ~30 ms on an idle core and several hundred on a loaded shared one, and this process
      // also runs the 1,000 attacking sockets: the bound is stated over the idle figure and generously (measured
      // 0.8-1.3 s at load average 12 on 2 cores; without the guard the same flood kept this user out past the
      // 10 s connect timeout), so it measures starvation by the flood, not the machine's speed. With CPU hogs on
      // top (issue #10) the idle figure itself was 840 ms and the flood one 4.1 s: the bound grows with the idle
      // figure measured just before, and stays under 9 s, below what the unguarded broker takes.
      expect(real.ms).to.be.below(Math.min(9_000, 4 * quiet.ms + 2_000));
      const answers = await Promise.all(replies);
      expect(answers.filter((a) => a !== 'ERROR')).to.deep.equal([]);
    });
  });
});
