import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { RawClient, stompFrame, type WsRawClient } from '../support/raw.js';
import { V12, connect, expectError, expectReceipt, header, nextMessage, publish, sleep, subscribe, useBroker } from './harness.js';

/** Every inbound WebSocket message is exactly one whole frame (or a heart-beat). */
function expectOneFramePerMessage(c: WsRawClient): void {
  const frames = c.messages.filter((m) => !(m.data.length === 1 && m.data[0] === 0x0a));
  expect(frames.length).to.equal(c.frames.length);
  frames.forEach((m, i) => expect(m.data.equals(c.frames[i]!.raw), `message ${i}`).to.equal(true));
}

describe('broker › wire › WebSocket transport', () => {
  const h = useBroker();

  describe('subprotocol negotiation', () => {
    const cases: ReadonlyArray<readonly [string[], string]> = [
      [['v10.stomp', 'v11.stomp', 'v12.stomp'], 'v12.stomp'],
      [['v12.stomp', 'v11.stomp', 'v10.stomp'], 'v12.stomp'],
      [['v11.stomp', 'v10.stomp'], 'v11.stomp'],
      [['v10.stomp'], 'v10.stomp'],
      [['mqtt', 'v11.stomp'], 'v11.stomp'],
      [['stomp'], 'stomp'],
    ];
    for (const [offered, chosen] of cases) {
      it(`echoes ${chosen} when offered ${offered.join(', ')}`, async () => {
        const c = await h.ws(offered);
        expect(c.protocol).to.equal(chosen);
        const reply = await connect(c, V12);
        expect(reply.command).to.equal('CONNECTED');
      });
    }

    it('accepts a client that offers no subprotocol (stomp.py, Spring)', async () => {
      const c = await h.ws();
      expect(c.protocol).to.equal('');
      const reply = await connect(c, V12);
      expect(header(reply, 'version')).to.equal('1.2');
    });

    it('selects no subprotocol when none offered is STOMP (the client then gives up, per RFC 6455)', async () => {
      let error: unknown;
      try {
        const c = await RawClient.ws(h.wsUrl, ['mqtt']);
        c.close();
      } catch (e) {
        error = e;
      }
      expect(String(error)).to.match(/no subprotocol/i);
    });

    it('answers 404 on another path', async () => {
      let error: unknown;
      try {
        const c = await RawClient.ws(h.wsUrl.replace(/\/ws$/, '/other'));
        c.close();
      } catch (e) {
        error = e;
      }
      expect(String(error)).to.match(/404/);
    });
  });

  describe('framing over messages', () => {
    it('reassembles frames split across WebSocket messages', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await h.ws(['v12.stomp']);
      const bytes = Buffer.concat([
        stompFrame('CONNECT', V12),
        stompFrame('SUBSCRIBE', { destination: q, id: 's' }),
        stompFrame('SEND', { destination: q, 'content-length': '4' }, 'a\0bc'),
      ]);
      for (const cut of [
        [0, 3],
        [3, 30],
        [30, 61],
        [61, 90],
        [90, bytes.length - 3],
        [bytes.length - 3, bytes.length],
      ]) {
        c.send(bytes.subarray(cut[0], cut[1]), cut[0]! % 2 === 0);
        await sleep(2);
      }
      expect((await c.nextFrame()).command).to.equal('CONNECTED');
      expect((await nextMessage(c)).body.equals(Buffer.from('a\0bc'))).to.equal(true);
    });

    it('reads several frames from one WebSocket message, and sends one whole frame per message back', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await h.ws(['v12.stomp']);
      c.send(
        Buffer.concat([
          stompFrame('CONNECT', V12),
          stompFrame('SUBSCRIBE', { destination: q, id: 's', receipt: 'sub' }),
          stompFrame('SEND', { destination: q }, 'one'),
          stompFrame('SEND', { destination: q }, 'two'),
          stompFrame('SEND', { destination: q, receipt: 'sent' }, 'three'),
        ]).toString(),
        false,
      );
      expect((await c.nextFrame()).command).to.equal('CONNECTED');
      await expectReceipt(c, 'sub');
      for (const text of ['one', 'two', 'three']) expect((await nextMessage(c)).text).to.equal(text);
      await expectReceipt(c, 'sent');
      expect(c.messages.length).to.equal(6);
      expectOneFramePerMessage(c);
    });

    it('sends valid UTF-8 frames as text messages and others as binary', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await h.ws(['v12.stomp']);
      await connect(c, V12);
      await subscribe(c, q, 's');
      const pub = await h.client(V12);
      await publish(pub, q, 'h\u00e9llo \u{1F600}');
      pub.send(
        Buffer.concat([Buffer.from(`SEND\ndestination:${q}\ncontent-length:3\n\n`), Buffer.from([0xff, 0x00, 0xfe]), Buffer.from([0])]),
      );
      const text = await nextMessage(c);
      const binary = await nextMessage(c);
      expect(text.text).to.equal('h\u00e9llo \u{1F600}');
      expect(binary.body.equals(Buffer.from([0xff, 0x00, 0xfe]))).to.equal(true);
      expect(c.messages.map((m) => m.binary)).to.deep.equal([false, false, false, true]);
      expectOneFramePerMessage(c);
    });

    it('accepts CONNECT sent as a binary message', async () => {
      const c = await h.ws(['v11.stomp']);
      c.send(stompFrame('CONNECT', { 'accept-version': '1.1', host: 'localhost' }), true);
      expect(header(await c.nextFrame(), 'version')).to.equal('1.1');
    });

    it('delivers between WebSocket and TCP clients', async () => {
      const topic = `/topic/${uniqueName()}`;
      const ws = await h.ws(['v12.stomp']);
      await connect(ws, V12);
      await subscribe(ws, topic, 's');
      const tcp = await h.client(V12);
      await subscribe(tcp, topic, 's');
      await publish(ws, topic, 'across');
      expect((await nextMessage(tcp)).text).to.equal('across');
      expect((await nextMessage(ws)).text).to.equal('across');
    });
  });

  describe('closing', () => {
    it('sends ERROR as a text message, then closes with 1000', async () => {
      const c = await h.ws(['v12.stomp']);
      await connect(c, V12);
      c.send('SEND\nreceipt:r\n\nx\0');
      await expectError(c, { message: 'SEND frame is missing the "destination" header', receiptId: 'r' });
      expect(c.closeCode).to.equal(1000);
      expect(c.messages.at(-1)?.binary).to.equal(false);
      expectOneFramePerMessage(c);
    });

    it('sends the DISCONNECT RECEIPT, then closes', async () => {
      const c = await h.ws(['v12.stomp']);
      await connect(c, V12);
      c.send('DISCONNECT\nreceipt:bye\n\n\0');
      await expectReceipt(c, 'bye');
      await c.closed();
      expect([c.closedByServer, c.closeCode]).to.deep.equal([true, 1000]);
    });
  });

  describe('heart-beats', () => {
    const hb = useBroker({ heartbeatMinMs: 100 });

    it('sends each heart-beat as a text message holding one LF', async () => {
      const c = await RawClient.ws(hb.wsUrl, ['v12.stomp']);
      try {
        await connect(c, { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '0,100' });
        // Two beats, however long a busy machine takes to deliver them (about 200 ms when idle).
        const deadline = Date.now() + 5_000;
        while (c.messages.length < 3 && Date.now() < deadline) await sleep(10);
        const beats = c.messages.slice(1);
        expect(beats.length).to.be.at.least(2);
        for (const m of beats) expect([m.data.toString('latin1'), m.binary]).to.deep.equal(['\n', false]);
      } finally {
        c.close();
      }
    });

    it('times out a silent WebSocket client with ERROR', async () => {
      const c = await RawClient.ws(hb.wsUrl, ['v12.stomp']);
      try {
        await connect(c, { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '100,0' });
        await expectError(c, { message: 'heart-beat timeout' });
      } finally {
        c.close();
      }
    });
  });
});
