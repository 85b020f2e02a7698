import { expect } from 'chai';
import type { Authenticator } from '../../broker/index.js';
import { uniqueName } from '../support/broker.js';
import { RawClient, connect, stompFrame, type RawFrame } from '../support/raw.js';
import { V12, expectError, expectQuiet, expectReceipt, nextMessage, publish, sleep, subscribe, useBroker } from './harness.js';

const PARSE = (what: string): string => `The frame could not be parsed: ${what}.\n`;

/** `n` headers `h<i>:<value of length bytes>`. */
function bigHeaders(n: number, bytes: number): [string, string][] {
  return Array.from({ length: n }, (_, i) => [`h${i}`, 'v'.repeat(bytes)] as [string, string]);
}

describe('broker › wire › frame limits (S15)', () => {
  const h = useBroker({
    maxFrameBytesUnauthenticated: 512,
    maxFrameBytes: 4096,
    maxBodyBytes: 2048,
    maxHeaders: 10,
    maxHeaderLineBytes: 256,
  });

  describe('before authentication: maxFrameBytesUnauthenticated', () => {
    it('refuses a CONNECT larger than the pre-authentication limit', async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', [['accept-version', '1.2'], ['host', 'localhost'], ...bigHeaders(3, 200)]));
      await expectError(c, { message: 'frame exceeds 512 bytes', body: PARSE('frame exceeds 512 bytes') });
    });

    it('accepts a CONNECT just under it', async () => {
      const c = await h.raw();
      const reply = await connect(c, [['accept-version', '1.2'], ['host', 'localhost'], ...bigHeaders(2, 200)]);
      expect(reply.command).to.equal('CONNECTED');
    });

    it('does not apply to frames pipelined behind CONNECT when nobody needs authenticating', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await h.raw();
      c.send(
        Buffer.concat([
          stompFrame('CONNECT', V12),
          stompFrame('SEND', { destination: q }, 'b'.repeat(1000)),
          stompFrame('SUBSCRIBE', { destination: q, id: 's' }),
        ]),
      );
      expect((await c.nextFrame()).command).to.equal('CONNECTED');
      const m = await c.nextFrame();
      expect(m.command).to.equal('MESSAGE');
      expect(m.body.toString()).to.equal('b'.repeat(1000));
    });

    it('lifts to maxFrameBytes once CONNECTED: a 1500-byte SEND goes through', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, q, 's');
      await publish(c, q, 'x'.repeat(1500));
      expect((await nextMessage(c)).text).to.equal('x'.repeat(1500));
    });
  });

  describe('with an authenticator', () => {
    const authenticated = useBroker(
      { maxFrameBytesUnauthenticated: 512, maxFrameBytes: 4096 },
      {
        authenticator: { authenticate: async (c) => ({ ok: true, user: c.login ?? 'someone' }) },
      },
    );

    it('applies to frames pipelined behind CONNECT, parsed before authentication completes', async () => {
      const c = await authenticated.raw();
      c.send(Buffer.concat([stompFrame('CONNECT', V12), stompFrame('SEND', { destination: '/topic/x' }, 'b'.repeat(1000))]));
      await expectError(c, { message: 'frame exceeds 512 bytes' });
      expect(c.frames.map((f) => f.command)).to.deep.equal(['ERROR']);
    });
  });

  describe('after authentication', () => {
    it('refuses a body over maxBodyBytes', async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SEND', { destination: '/queue/x' }, 'y'.repeat(2049)));
      await expectError(c, { message: 'frame body exceeds 2048 bytes', body: PARSE('frame body exceeds 2048 bytes') });
    });

    it('accepts a body of exactly maxBodyBytes', async () => {
      const c = await h.client(V12);
      await publish(c, `/topic/${uniqueName()}`, 'y'.repeat(2048));
    });

    it('refuses a declared content-length over the limit before the body arrives', async () => {
      const c = await h.client(V12);
      c.send('SEND\ndestination:/queue/x\ncontent-length:1000000\n\n');
      await expectError(c, { message: 'frame body exceeds 2048 bytes' });
    });

    it('refuses a frame over maxFrameBytes even when each part is within its own limit', async () => {
      const c = await h.client(V12);
      // 27 + 9 × 254 header bytes (each line under 256, 10 headers) and a 2000-byte body (under 2048): 4313 > 4096.
      c.send(stompFrame('SEND', [['destination', '/queue/x'], ...bigHeaders(9, 250)], 'z'.repeat(2000)));
      await expectError(c, { message: 'frame exceeds 4096 bytes', body: PARSE('frame exceeds 4096 bytes') });
    });

    it('refuses more than maxHeaders headers', async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SEND', [['destination', '/queue/x'], ...bigHeaders(10, 1)], 'z'));
      await expectError(c, { message: 'frame has more than 10 headers', body: PARSE('frame has more than 10 headers') });
    });

    it('accepts exactly maxHeaders headers', async () => {
      const c = await h.client(V12);
      await publish(c, `/topic/${uniqueName()}`, 'z', bigHeaders(8, 1));
    });

    it('refuses a header line over maxHeaderLineBytes', async () => {
      const c = await h.client(V12);
      c.send(
        stompFrame(
          'SEND',
          [
            ['destination', '/queue/x'],
            ['long', 'l'.repeat(300)],
          ],
          'z',
        ),
      );
      await expectError(c, { message: 'header line exceeds 256 bytes', body: PARSE('header line exceeds 256 bytes') });
    });

    it('refuses a command line over maxHeaderLineBytes', async () => {
      const c = await h.client(V12);
      c.send(`${'C'.repeat(300)}\n\n\0`);
      await expectError(c, { message: 'command line exceeds 256 bytes', body: PARSE('command line exceeds 256 bytes') });
    });
  });

  describe('frames sent before CONNECTED', () => {
    /** Lets the test pipeline frames while CONNECT is still being authenticated. */
    const slowAuth: Authenticator = { authenticate: async (c) => (await sleep(150), { ok: true, user: c.login ?? 'anonymous' }) };
    const s = useBroker({}, { authenticator: slowAuth });

    it('processes up to 1000 frames that wait for CONNECTED, in order', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await s.raw();
      const frames = [stompFrame('CONNECT', V12), stompFrame('SUBSCRIBE', { destination: q, id: 's' })];
      for (let i = 0; i < 998; i++) frames.push(stompFrame('SEND', { destination: q }, String(i)));
      frames.push(stompFrame('DISCONNECT', { receipt: 'end' }));
      c.send(Buffer.concat(frames));
      expect((await c.nextFrame()).command).to.equal('CONNECTED');
      for (let i = 0; i < 998; i++) expect((await nextMessage(c)).text).to.equal(String(i));
      await expectReceipt(c, 'end');
    });

    it('refuses the 1001st with ERROR', async () => {
      const c = await s.raw();
      const frames = [stompFrame('CONNECT', V12)];
      for (let i = 0; i < 1001; i++) frames.push(stompFrame('SEND', { destination: '/topic/x' }, String(i)));
      c.send(Buffer.concat(frames));
      await expectError(c, {
        message: 'too many frames before CONNECTED',
        body: 'At most 1000 frames may be sent before the CONNECTED frame arrives.\n',
      });
    });
  });
});

describe('broker › wire › slow consumers', () => {
  const h = useBroker({ maxOutboundBytes: 256 * 1024, outboundHighWaterBytes: 64 * 1024, closeTimeoutMs: 10_000 });
  const chunk = 'p'.repeat(32 * 1024);

  it('disconnects a topic subscriber that does not read, with ERROR after what was already queued', async () => {
    const topic = `/topic/${uniqueName()}`;
    const sub = await RawClient.tcp(h.port);
    try {
      await connect(sub, V12);
      await subscribe(sub, topic, 's');
      sub.pause();
      let slow = false;
      h.broker.events.once('slow-consumer', () => {
        slow = true;
      });
      const pub = await h.client(V12);
      for (let batch = 0; batch < 100 && !slow; batch++) {
        for (let i = 0; i < 31; i++) pub.send(stompFrame('SEND', { destination: topic }, chunk));
        await publish(pub, topic, chunk);
      }
      expect(slow, 'slow-consumer event').to.equal(true);
      sub.resume();
      let frame: RawFrame;
      let messages = 0;
      while ((frame = await sub.nextFrame(5000)).command === 'MESSAGE') messages++;
      sub.unread(frame);
      expect(messages).to.be.greaterThan(0);
      await expectError(sub, {
        message: 'slow consumer (limit 262144 unsent bytes)',
        body: 'More than 262144 bytes waited to be sent to this client; it reads too slowly and was disconnected.\n',
      });
      // The publisher is unaffected.
      await expectQuiet(pub);
    } finally {
      sub.close();
    }
  });

  it('holds queue messages in the queue instead, and delivers them all once the consumer reads', async () => {
    const name = uniqueName();
    const q = `/queue/${name}`;
    const sub = await RawClient.tcp(h.port);
    try {
      await connect(sub, V12);
      await subscribe(sub, q, 's');
      sub.pause();
      const pub = await h.client(V12);
      const total = 384; // 12 MiB: more than loopback kernel buffers hold for a reader that never reads
      for (let i = 0; i < total; i++) pub.send(stompFrame('SEND', { destination: q }, `${i}:${chunk}`));
      await publish(pub, `/topic/${uniqueName()}`, 'sync');
      const queue = h.broker.resolveVhost('localhost').queues.get(name);
      expect(queue?.depth ?? 0, 'messages waiting in the queue').to.be.greaterThan(0);
      sub.resume();
      for (let i = 0; i < total; i++) {
        const m = await nextMessage(sub, 5000);
        expect(m.text.slice(0, m.text.indexOf(':'))).to.equal(String(i));
      }
      await expectQuiet(sub);
    } finally {
      sub.close();
    }
  });
});
