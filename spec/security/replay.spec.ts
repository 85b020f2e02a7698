/**
 * History replay paced by socket backpressure (issue #8, item 6): an `x-history` replay larger than
 * maxOutboundBytes reaches a client that reads, in order and without duplicates, while a client that does not
 * read is still cut off as a slow consumer.
 */
import { expect } from 'chai';
import { startBroker, uniqueName } from '../support/broker.js';
import { RawClient, stompFrame, type RawFrame } from '../support/raw.js';
import { V12, connect, expectQuiet, publish, useBroker } from '../broker/harness.js';
import { until } from './support.js';

const KiB = 1024;
const MAX_OUTBOUND = 32 * KiB;

/** Body `n` padded to `size` bytes, so order can be read back from it. */
function numbered(n: number, size: number): string {
  return `${n}:`.padEnd(size, '.');
}

/** Frames until `messages` MESSAGEs and the RECEIPT `receipt` arrived; fails on anything else. */
async function collect(client: RawClient, messages: number, receipt: string): Promise<RawFrame[]> {
  const got: RawFrame[] = [];
  let receipted = false;
  while (got.length < messages || !receipted) {
    const frame = await client.nextFrame(10_000);
    if (frame.command === 'RECEIPT') {
      expect(frame.headers.get('receipt-id')).to.equal(receipt);
      receipted = true;
    } else {
      expect(frame.command, frame.raw.subarray(0, 300).toString('latin1')).to.equal('MESSAGE');
      got.push(frame);
    }
  }
  return got;
}

describe('security › replay paced by backpressure', function () {
  this.timeout(60_000);
  const h = useBroker({ maxOutboundBytes: MAX_OUTBOUND });

  // TCP corks a turn's writes, so 3 × maxOutboundBytes written at once is over the limit; a WebSocket writes
  // through to the kernel, so its replay must outgrow the loopback socket buffers (8 MiB) to be over it.
  const cases = [
    { transport: 'tcp', history: 47, size: 2 * KiB, what: '3 × maxOutboundBytes' },
    { transport: 'ws', history: 999, size: 8 * KiB, what: '8 MiB (256 × maxOutboundBytes)' },
  ] as const;
  for (const { transport, history, size, what } of cases) {
    it(`replays ${what} of history to a reading ${transport} client: in order, no duplicate, no ERROR, then live`, async () => {
      const topic = `/topic/${uniqueName('replay')}`;
      const publisher = await h.client(V12);
      for (let i = 0; i < history; i++) publisher.send(stompFrame('SEND', { destination: topic }, numbered(i, size)));
      await publish(publisher, topic, numbered(history, size));
      const slowBefore = h.broker.stats.slowConsumerDisconnects;

      const reader = transport === 'tcp' ? await h.client(V12) : await h.ws();
      if (transport === 'ws') await connect(reader, V12);
      reader.send(stompFrame('SUBSCRIBE', { destination: topic, id: 's', 'x-history': '1000', receipt: 'sub' }));
      // Live messages while the replay runs wait their turn, after the history; 10 × 2 KiB stay under the
      // maxOutboundBytes bound on what a replaying subscriber may have held back.
      const live = 10;
      for (let i = history + 1; i <= history + live; i++) publisher.send(stompFrame('SEND', { destination: topic }, numbered(i, 2 * KiB)));

      const frames = await collect(reader, history + 1 + live, 'sub');
      const order = frames.map((f) => Number(f.body.toString('latin1').split(':')[0]));
      expect(order).to.deep.equal(Array.from({ length: history + 1 + live }, (_, i) => i));
      expect(new Set(frames.map((f) => f.headers.get('message-id'))).size, 'no duplicate').to.equal(frames.length);
      await expectQuiet(reader);
      expect(h.broker.stats.slowConsumerDisconnects).to.equal(slowBefore);
    });
  }

  it('still cuts off a client that does not read: live messages held back during its stalled replay pass maxOutboundBytes', async () => {
    const topic = `/topic/${uniqueName('stall')}`;
    const publisher = await h.client(V12);
    // 8 MiB of history: more than the loopback socket buffers take from a client that does not read.
    for (let i = 0; i < 999; i++) publisher.send(stompFrame('SEND', { destination: topic }, numbered(i, 8 * KiB)));
    await publish(publisher, topic, numbered(999, 8 * KiB));
    const before = h.broker.stats.slowConsumerDisconnects;

    const reader = await h.client(V12);
    reader.pause();
    reader.send(stompFrame('SUBSCRIBE', { destination: topic, id: 's', 'x-history': '1000' }));
    const sessionsBefore = h.broker.sessions.size;
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 10; i++) publisher.send(stompFrame('SEND', { destination: topic }, numbered(1000 + i, 8 * KiB)));
    await until(() => h.broker.stats.slowConsumerDisconnects > before, 10_000, 'the slow-consumer disconnect');
    expect(h.broker.sessions.size).to.equal(sessionsBefore - 1);
    reader.resume();
    await reader.closed(10_000);
    expect(reader.closedByServer).to.equal(true);
    // The replay was paused mid-way (not pushed out whole), and the last word was the slow-consumer ERROR.
    const messages = reader.frames.filter((f) => f.command === 'MESSAGE').length;
    expect(messages, 'history records sent before the cut-off').to.be.below(1000);
    const last = reader.frames[reader.frames.length - 1];
    expect(last?.command).to.equal('ERROR');
    expect(last?.headers.get('message')).to.match(/^slow consumer \(limit \d+ unsent bytes\)$/);
  });

  it('a replay stalled on a client that does not read does not hold up broker shutdown, nor leave the client open', async () => {
    const b = await startBroker({ maxOutboundBytes: MAX_OUTBOUND, closeTimeoutMs: 200 });
    const topic = `/topic/${uniqueName('shutdown')}`;
    const publisher = await RawClient.tcp(b.tcpPort);
    const reader = await RawClient.tcp(b.tcpPort);
    try {
      await connect(publisher, V12);
      for (let i = 0; i < 999; i++) publisher.send(stompFrame('SEND', { destination: topic }, numbered(i, 8 * KiB)));
      await publish(publisher, topic, numbered(999, 8 * KiB));
      await connect(reader, V12);
      reader.pause();
      reader.send(stompFrame('SUBSCRIBE', { destination: topic, id: 's', 'x-history': '1000', receipt: 'sub' }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await b.close();
      reader.resume();
      await reader.closed(5_000);
    } finally {
      publisher.close();
      reader.close();
      await b.close();
    }
  });
});
