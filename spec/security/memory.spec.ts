/**
 * Attacks on memory (issue #8, item 5): history by bytes, destinations per virtual host, the memory watermark.
 * Each states the figure an unbounded broker reached next to the bound asserted here.
 */
import { expect } from 'chai';
import type { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import {
  V12,
  expectError,
  expectQuiet,
  expectReceipt,
  nextMessage,
  publish,
  subscribe,
  useBroker,
  withReceipt,
} from '../broker/harness.js';
import { retainedMiB } from './support.js';

const MiB = 1024 * 1024;

describe('security › memory › history retention by bytes', function () {
  this.timeout(120_000);
  const h = useBroker({
    historyMaxBytesPerDestination: 8 * MiB,
    historyMaxBytes: 24 * MiB,
    maxBodyBytes: 10 * MiB,
    maxFrameBytes: 10 * MiB + 65536,
  });

  it('300 × 1 MiB SENDs to a topic nobody reads retain under 96 MiB (unbounded: +430 MB)', async () => {
    const topic = `/topic/${uniqueName('hist')}`;
    const body = 'x'.repeat(MiB);
    const c = await h.client(V12);
    const grew = await retainedMiB(async () => {
      for (let i = 0; i < 300; i += 10) {
        // Ten at a time, then a RECEIPT: the client does not outrun the broker's parser by hundreds of MiB.
        for (let k = 0; k < 9; k++) c.send(stompFrame('SEND', { destination: topic }, body));
        await publish(c, topic, body);
      }
    });
    const store = h.broker.history as InMemoryHistoryStore;
    expect(store.bytes, 'node-wide history bytes').to.be.at.most(24 * MiB);
    expect(grew, `retained ${grew.toFixed(1)} MiB`).to.be.below(96);
    const kept = await store.read('/', topic, { all: true }, 10_000);
    expect(kept.length, 'the newest that fit in 8 MiB').to.equal(7);
  });

  it('a message larger than the per-destination cap is delivered live but not kept', async () => {
    const topic = `/topic/${uniqueName('big')}`;
    const c = await h.client(V12);
    await subscribe(c, topic, 'live');
    await publish(c, topic, 'small-1');
    await publish(c, topic, 'y'.repeat(8 * MiB + 1));
    await publish(c, topic, 'small-2');
    expect((await nextMessage(c)).text).to.equal('small-1');
    expect((await nextMessage(c, 10_000)).body.length).to.equal(8 * MiB + 1);
    expect((await nextMessage(c)).text).to.equal('small-2');
    const late = await h.client(V12);
    await subscribe(late, topic, 'replay', [['x-history', '10']]);
    expect((await nextMessage(late)).text).to.equal('small-1');
    expect((await nextMessage(late)).text).to.equal('small-2');
    await expectQuiet(late);
  });
});

describe('security › memory › destinations per virtual host', function () {
  this.timeout(120_000);

  describe('with maxDestinationsPerVhost 5', () => {
    const h = useBroker({ maxDestinationsPerVhost: 5, historyMaxBytes: 4096 });
    const LIMIT_MESSAGE = (d: string): string => `too many destinations: ${d} would exceed maxDestinationsPerVhost (5)`;

    it('refuses a SEND that creates one destination too many, names the limit, counts it; existing ones still work', async () => {
      const prefix = uniqueName('q');
      const c = await h.client(V12);
      for (let i = 0; i < 5; i++) await publish(c, `/queue/${prefix}-${i}`, 'held');
      await publish(c, `/queue/${prefix}-0`, 'to an existing queue');
      const before = h.broker.stats.limitHits.get('destinations') ?? 0;
      const extra = `/queue/${prefix}-5`;
      c.send(stompFrame('SEND', { destination: extra, receipt: 'r6' }, 'one too many'));
      await expectError(c, { message: LIMIT_MESSAGE(extra), receiptId: 'r6', body: /maxDestinationsPerVhost = 5/ });
      expect(h.broker.stats.limitHits.get('destinations')).to.equal(before + 1);
      // Drain and leave every queue: each is forgotten, and the count with it.
      const d = await h.client(V12);
      for (let i = 0; i < 5; i++) {
        await subscribe(d, `/queue/${prefix}-${i}`, `s${i}`);
        expect((await nextMessage(d)).text).to.equal('held');
        if (i === 0) expect((await nextMessage(d)).text).to.equal('to an existing queue');
        await withReceipt(d, 'UNSUBSCRIBE', [['id', `s${i}`]]);
      }
      await publish(d, extra, 'fits now');
      const e = await h.client(V12);
      await subscribe(e, extra, 'x');
      expect((await nextMessage(e)).text).to.equal('fits now');
    });

    it('refuses a SUBSCRIBE to a new exact topic past the limit; wildcard subscriptions hold no name', async () => {
      const prefix = uniqueName('t');
      const c = await h.client(V12);
      for (let i = 0; i < 5; i++) await subscribe(c, `/topic/${prefix}-${i}`, `s${i}`);
      await subscribe(c, `/topic/${prefix}.*`, 'wild');
      const extra = `/topic/${prefix}-5`;
      c.send(stompFrame('SUBSCRIBE', { destination: extra, id: 's5' }));
      await expectError(c, { message: LIMIT_MESSAGE(extra), body: /maxDestinationsPerVhost = 5/ });
      // The session closed and released its five names.
      const d = await h.client(V12);
      await subscribe(d, extra, 's5');
    });

    it('frees a topic once its history is evicted (node-wide history cap)', async () => {
      const prefix = uniqueName('h');
      const c = await h.client(V12);
      // 4096 history bytes hold two or three of these: older topics are evicted, so ten distinct topics fit.
      for (let i = 0; i < 10; i++) await publish(c, `/topic/${prefix}-${i}`, 'z'.repeat(1200));
      expect((h.broker.history as InMemoryHistoryStore).destinations).to.be.at.most(4);
    });
  });

  describe('with the default limit (10,000)', () => {
    const h = useBroker();

    it('12,000 distinct queues from one client: the 10,001st is refused, retained under 64 MiB (unbounded: +137 MB for 100k, and growing)', async () => {
      const prefix = uniqueName('many');
      const c = await h.client(V12);
      let refused = '';
      const grew = await retainedMiB(async () => {
        for (let i = 0; i < 12_000; i += 500) {
          const frames: Buffer[] = [];
          for (let k = i; k < i + 500; k++) frames.push(stompFrame('SEND', { destination: `/queue/${prefix}-${k}` }, 'm'));
          frames.push(stompFrame('SEND', { destination: `/queue/${prefix}-0`, receipt: `r${i}` }, 'm'));
          c.send(Buffer.concat(frames));
          const reply = await c.nextFrame(10_000);
          if (reply.command === 'ERROR') {
            refused = reply.headers.get('message') ?? '';
            break;
          }
          expect(reply.command).to.equal('RECEIPT');
        }
      });
      expect(refused).to.equal(`too many destinations: /queue/${prefix}-10000 would exceed maxDestinationsPerVhost (10000)`);
      expect(grew, `retained ${grew.toFixed(1)} MiB`).to.be.below(64);
    });
  });
});

describe('security › memory › high watermark', () => {
  describe('above the watermark', () => {
    const h = useBroker({ memoryHighWatermarkBytes: 1 });

    it('refuses SEND with ERROR "broker low on memory" naming RSS and the watermark, counts it, then closes', async () => {
      const before = h.broker.stats.limitHits.get('memory') ?? 0;
      const c = await h.client(V12);
      // Reading still works: only publishing is blocked.
      await subscribe(c, `/topic/${uniqueName('w')}`, 's');
      c.send(stompFrame('SEND', { destination: '/queue/anything', receipt: 'r1' }, 'x'));
      await expectError(c, {
        message: 'broker low on memory',
        receiptId: 'r1',
        body: /^The node's resident memory \(RSS \d+ bytes\) is above its high watermark \(memoryHighWatermarkBytes: 1 bytes\)/,
      });
      expect(h.broker.stats.limitHits.get('memory')).to.equal(before + 1);
      expect(h.broker.memoryStatus()).to.include({ watermarkBytes: 1, alarm: true });
    });

    it('refuses a SEND inside a transaction too, before buffering it', async () => {
      const c = await h.client(V12);
      await withReceipt(c, 'BEGIN', [['transaction', 'tx']]);
      c.send(stompFrame('SEND', { destination: '/queue/q', transaction: 'tx' }, 'x'));
      await expectError(c, { message: 'broker low on memory', body: /memoryHighWatermarkBytes: 1 bytes/ });
    });
  });

  describe('below the watermark (the default: 40% of memory)', () => {
    const h = useBroker();

    it('accepts SENDs and reports the sample', async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SEND', { destination: `/queue/${uniqueName('ok')}`, receipt: 'r' }, 'x'));
      await expectReceipt(c, 'r');
      const status = h.broker.memoryStatus();
      expect(status.alarm).to.equal(false);
      expect(status.rssBytes).to.be.above(0).and.below(status.watermarkBytes);
    });
  });
});
