import { expect } from 'chai';
import { SERVER_VERSION } from '../../broker/version.js';
import { startBroker, uniqueName } from '../support/broker.js';
import { RawClient, stompFrame } from '../support/raw.js';
import {
  LEGACY,
  V11,
  V12,
  connect,
  expectError,
  expectQuiet,
  expectReceipt,
  expectSilence,
  header,
  nextMessage,
  subscribe,
  useBroker,
} from './harness.js';

const SUPPORTED_ERROR = {
  message: 'Supported protocol versions are 1.0, 1.1 and 1.2',
  extra: [['version', '1.0,1.1,1.2']] as const,
};

/** S21/S22: CONNECTED carries version, session, server (`name/version`), and heart-beat from 1.1 on. */
function expectConnected(raw: string, version: string, heartBeat: string | undefined, userName?: string): string {
  const m = /^CONNECTED\nversion:([^\n]*)\nsession:([^\n]*)\nserver:([^\n]*)\n((?:[^\n]+\n)*)\n\0$/.exec(raw);
  expect(m, JSON.stringify(raw)).to.not.equal(null);
  const [, v, session, server, rest] = m as RegExpExecArray;
  expect(v).to.equal(version);
  expect(session).to.match(/^[A-Za-z0-9._-]+$/);
  expect(server).to.equal(`stompede/${SERVER_VERSION}`);
  let tail = heartBeat === undefined ? '' : `heart-beat:${heartBeat}\n`;
  if (userName !== undefined) tail += `user-name:${userName}\n`;
  expect(rest).to.equal(tail);
  return session as string;
}

describe('broker › wire › CONNECT', () => {
  // No client here offers heart-beats, so every CONNECTED says 0,0 (negotiation: heartbeat.spec.ts).
  const h = useBroker();

  describe('version negotiation (S23–S25, V1)', () => {
    it('treats a CONNECT without accept-version as 1.0: no heart-beat header in CONNECTED', async () => {
      const c = await h.raw();
      const reply = await connect(c, LEGACY);
      expectConnected(reply.raw.toString(), '1.0', undefined);
    });

    it('ignores a heart-beat header from a 1.0 client', async () => {
      const c = await h.raw();
      const reply = await connect(c, { 'heart-beat': '100,100' });
      expectConnected(reply.raw.toString(), '1.0', undefined);
    });

    it('answers accept-version:1.1 with version 1.1 and heart-beat 0,0 when the client offers none', async () => {
      const c = await h.raw();
      const reply = await connect(c, V11);
      expectConnected(reply.raw.toString(), '1.1', '0,0');
    });

    it('answers accept-version:1.0 with version 1.0', async () => {
      const c = await h.raw();
      const reply = await connect(c, { 'accept-version': '1.0' });
      expectConnected(reply.raw.toString(), '1.0', undefined);
    });

    for (const [offered, chosen] of [
      ['1.0,1.1,1.2', '1.2'],
      ['1.2,1.1,1.0', '1.2'],
      ['1.1,1.2', '1.2'],
      ['1.0,1.1', '1.1'],
      ['1.1,2.0', '1.1'],
      ['1.2', '1.2'],
    ] as const) {
      it(`picks ${chosen} from accept-version:${offered}`, async () => {
        const c = await h.raw();
        const reply = await connect(c, { 'accept-version': offered, host: 'localhost' });
        expectConnected(reply.raw.toString(), chosen, (chosen as string) === '1.0' ? undefined : '0,0');
      });
    }

    for (const offered of ['2.0', '1.3,2.1', '']) {
      it(`refuses accept-version:${JSON.stringify(offered)} with ERROR version:1.0,1.1,1.2, then closes`, async () => {
        const c = await h.raw();
        c.send(stompFrame('CONNECT', { 'accept-version': offered, host: 'localhost' }));
        await expectError(c, {
          ...SUPPORTED_ERROR,
          body: `The client offered accept-version "${offered}"; this server speaks 1.0,1.1,1.2.\n`,
        });
      });
    }

    it('puts the version header between message and content-type in exactly these bytes', async () => {
      const c = await h.raw();
      c.send('CONNECT\naccept-version:3.0\n\n\0');
      const detail = 'The client offered accept-version "3.0"; this server speaks 1.0,1.1,1.2.\n';
      const frame = await c.nextFrame();
      expect(frame.raw.toString()).to.equal(
        'ERROR\nmessage:Supported protocol versions are 1.0, 1.1 and 1.2\nversion:1.0,1.1,1.2\ncontent-type:text/plain;charset=utf-8\n' +
          `content-length:${Buffer.byteLength(detail)}\n\n${detail}\0`,
      );
      await c.closed();
    });
  });

  describe('CONNECTED (S17, S21, S22)', () => {
    it('treats STOMP exactly like CONNECT', async () => {
      const c = await h.raw();
      const reply = await connect(c, V12);
      const viaConnect = expectConnected(reply.raw.toString(), '1.2', '0,0');
      const s = await h.raw();
      s.send(stompFrame('STOMP', V12));
      const viaStomp = await s.nextFrame();
      expect(viaStomp.command).to.equal('CONNECTED');
      expect(expectConnected(viaStomp.raw.toString(), '1.2', '0,0')).to.not.equal(viaConnect);
    });

    it('gives every connection a different session id', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) ids.add(header(await connect(await h.raw(), V12), 'session'));
      expect(ids.size).to.equal(5);
    });

    it('adds user-name when the client logged in (allow-all authenticator)', async () => {
      const c = await h.raw();
      const reply = await connect(c, { 'accept-version': '1.2', host: 'localhost', login: 'carol', passcode: 'x' });
      expectConnected(reply.raw.toString(), '1.2', '0,0', 'carol');
    });

    it('does not unescape CONNECT headers nor escape CONNECTED ones (S6)', async () => {
      const c = await h.raw();
      // `\c` and `\t` are an escape and an undefined escape elsewhere; in CONNECT they are plain text.
      c.send('CONNECT\naccept-version:1.2\nhost:localhost\nlogin:a\\cb\\t\npasscode:p\\\\w\n\n\0');
      const reply = await c.nextFrame();
      expectConnected(reply.raw.toString(), '1.2', '0,0', 'a\\cb\\t');
    });

    it('accepts a 1.1 CONNECT with CRLF line ends', async () => {
      const c = await h.raw();
      c.send('CONNECT\r\naccept-version:1.1\r\nhost:localhost\r\n\r\n\0');
      const reply = await c.nextFrame();
      expectConnected(reply.raw.toString(), '1.1', '0,0');
    });

    it('refuses an invalid heart-beat header', async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '10, 10' }));
      await expectError(c, {
        message: 'invalid heart-beat header "10, 10"',
        body: 'heart-beat must be two non-negative integers separated by a comma, e.g. 10000,10000.\n',
      });
    });
  });

  describe('connection state', () => {
    it('refuses a second CONNECT with ERROR and closes', async () => {
      const c = await h.client(V12);
      c.send(stompFrame('CONNECT', V12));
      await expectError(c, { message: 'already connected', body: 'CONNECT may be sent only once per connection.\n' });
    });

    it('refuses a STOMP frame after CONNECT as well', async () => {
      const c = await h.client(V11);
      c.send(stompFrame('STOMP', V11));
      await expectError(c, { message: 'already connected' });
    });

    it('refuses a second CONNECT pipelined in the same packet as the first', async () => {
      const c = await h.raw();
      c.send(Buffer.concat([stompFrame('CONNECT', V12), stompFrame('CONNECT', V12)]));
      expect((await c.nextFrame()).command).to.equal('CONNECTED');
      await expectError(c, { message: 'already connected' });
    });

    for (const command of ['SEND', 'SUBSCRIBE', 'DISCONNECT', 'ACK', 'BEGIN']) {
      it(`refuses ${command} before CONNECT, with the receipt-id it asked for`, async () => {
        const c = await h.raw();
        c.send(stompFrame(command, { destination: '/queue/x', receipt: 'early-1' }));
        await expectError(c, {
          message: `${command} before CONNECT`,
          receiptId: 'early-1',
          body: 'The first frame on a connection must be CONNECT or STOMP.\n',
        });
      });
    }

    it('refuses a frame before CONNECT without receipt-id when none was asked', async () => {
      const c = await h.raw();
      c.send('SEND\ndestination:/queue/x\n\nhi\0');
      await expectError(c, { message: 'SEND before CONNECT' });
    });

    it('treats heart-beat EOLs before CONNECT as nothing', async () => {
      const c = await h.raw();
      c.send('\n\r\n\n');
      // Not CONNECTed yet, so no RECEIPT can order this: silence it is.
      await expectSilence(c);
      const reply = await connect(c, V12);
      expect(reply.command).to.equal('CONNECTED');
    });
  });

  describe('DISCONNECT (S45, S46, S51)', () => {
    it('sends the RECEIPT, then closes, and nothing else', async () => {
      const c = await h.client(V12);
      const before = c.rawBytes.length;
      c.send('DISCONNECT\nreceipt:bye-1\n\n\0');
      await expectReceipt(c, 'bye-1');
      await c.closed();
      expect(c.closedByServer).to.equal(true);
      expect(c.rawBytes.subarray(before).toString()).to.equal('RECEIPT\nreceipt-id:bye-1\n\n\0');
    });

    it('closes without a frame when DISCONNECT has no receipt', async () => {
      const c = await h.client(V12);
      const before = c.rawBytes.length;
      c.send('DISCONNECT\n\n\0');
      await c.closed();
      expect(c.closedByServer).to.equal(true);
      expect(c.rawBytes.length).to.equal(before);
    });

    it('processes frames sent before DISCONNECT and ignores frames after it', async () => {
      const topic = `/topic/${uniqueName()}`;
      const sub = await h.client(V12);
      await subscribe(sub, topic, 's1');
      const c = await h.client(V12);
      c.send(
        Buffer.concat([
          stompFrame('SEND', { destination: topic }, 'before'),
          stompFrame('DISCONNECT', { receipt: 'bye-2' }),
          stompFrame('SEND', { destination: topic }, 'after'),
        ]),
      );
      await expectReceipt(c, 'bye-2');
      await c.closed();
      expect((await nextMessage(sub)).text).to.equal('before');
      await expectQuiet(sub);
    });

    it('escapes the receipt-id of the DISCONNECT RECEIPT per 1.2 rules', async () => {
      const c = await h.client(V12);
      c.send('DISCONNECT\nreceipt:a\\cb\\\\c\n\n\0');
      const frame = await c.nextFrame();
      expect(frame.raw.toString()).to.equal('RECEIPT\nreceipt-id:a\\cb\\\\c\n\n\0');
      expect(frame.headers.get('receipt-id')).to.equal('a:b\\c');
      await c.closed();
    });
  });

  describe('broker shutdown', () => {
    it('sends every connected client ERROR, after the RECEIPTs already due, then closes', async () => {
      const own = await startBroker();
      const a = await RawClient.tcp(own.tcpPort);
      const b = await RawClient.tcp(own.tcpPort);
      try {
        await connect(a, V12);
        await connect(b, LEGACY);
        a.send('SUBSCRIBE\ndestination:/topic/x\nid:1\nreceipt:before\n\n\0');
        await expectReceipt(a, 'before');
        const closing = own.close();
        const shutdown = { message: 'server shutting down', body: 'The broker is stopping; reconnect to another node.\n' };
        await expectError(a, shutdown);
        await expectError(b, shutdown);
        await closing;
      } finally {
        a.close();
        b.close();
        await own.close();
      }
    });
  });

  describe('connect timeout', () => {
    const slow = useBroker({ connectTimeoutMs: 150 });

    it('closes a connection that sends no CONNECT in time, with ERROR', async () => {
      const c = await slow.raw();
      const started = Date.now();
      await expectError(c, { message: 'no CONNECT frame received in time', body: 'A connection must send CONNECT within 150 ms.\n' });
      expect(Date.now() - started).to.be.within(100, 1000);
    });

    it('leaves a connected session alone after the timeout', async () => {
      const c = await slow.client(V12);
      // A timer must not fire: silent from well past the 150 ms timeout, and still open to a probe.
      await expectSilence(c, 250);
      await expectQuiet(c);
    });
  });
});
