/**
 * Issue #8, hard limits per connection and per subscription: each attack from the issue against a node with the
 * default settings (or a limit lowered only to keep the spec quick), asserting the bounded outcome: the exact
 * ERROR, the closed connection, the counter in `stompede_limit_hits_total`, and where the issue measured memory,
 * RSS growth under a stated bound.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { uniqueName } from '../support/broker.js';
import { RawClient, type TcpRawClient } from '../support/raw.js';
import { V12, expectError, expectQuiet, nextMessage, publish, stompFrame, subscribe, useBroker } from '../broker/harness.js';
import { retainedMiB, until } from './support.js';

/** Writes `frames` one after another, honouring backpressure, until all are written or the broker closes. */
async function pour(client: TcpRawClient, frames: Iterable<Buffer>): Promise<number> {
  let written = 0;
  for (const frame of frames) {
    if (client.isClosed || client.socket.destroyed) break;
    if (!client.socket.write(frame)) {
      await Promise.race([new Promise((resolve) => client.socket.once('drain', resolve)), client.closed(30_000).catch(() => undefined)]);
    }
    written++;
  }
  return written;
}

function* repeat(n: number, make: (i: number) => Buffer): Generator<Buffer> {
  for (let i = 0; i < n; i++) yield make(i);
}

describe('security › session limits (issue #8 item 5)', () => {
  describe('with the default settings', () => {
    const h = useBroker();
    const hits = (name: Parameters<typeof h.broker.stats.limitHit>[0]): number => h.broker.stats.limitHits.get(name) ?? 0;

    it('refuses the 1001st SUBSCRIBE on one connection (100k SUBSCRIBEs once retained +130 MB)', async () => {
      const before = hits('subscriptions');
      const c = await h.client(V12);
      const topic = `/topic/${uniqueName()}`;
      const grew = await retainedMiB(async () => {
        // The attack as measured: 100k SUBSCRIBEs pipelined. The ERROR comes at the 1001st; the rest is not read.
        await pour(
          c,
          repeat(100_000, (i) => stompFrame('SUBSCRIBE', { destination: `${topic}.${i}`, id: `s${i}` })),
        );
        await expectError(c, {
          message: 'too many subscriptions (limit 1000 per connection)',
          body: 'This connection already holds 1000 subscriptions; UNSUBSCRIBE some, or open another connection.\n',
        });
      });
      expect(hits('subscriptions') - before).to.equal(1);
      expect(grew, 'MiB retained (unbounded: +130 MB)').to.be.below(40);
    });

    it('accepts 1000 subscriptions on one connection', async () => {
      const c = await h.client(V12);
      const topic = `/topic/${uniqueName()}`;
      for (let i = 0; i < 999; i++) c.send(stompFrame('SUBSCRIBE', { destination: `${topic}.${i}`, id: `s${i}` }));
      await subscribe(c, `${topic}.last`, 'last');
      expect(h.broker.sessions.size).to.be.greaterThan(0);
      await expectQuiet(c);
    });

    it('refuses the 101st open transaction (100k BEGINs once retained +21 MB)', async () => {
      const before = hits('transactions');
      const c = await h.client(V12);
      await pour(
        c,
        repeat(100_000, (i) => stompFrame('BEGIN', { transaction: `tx${i}` })),
      );
      await expectError(c, {
        message: 'too many open transactions (limit 100 per connection)',
        body: 'This connection already has 100 open transactions; COMMIT or ABORT one before the next BEGIN.\n',
      });
      expect(hits('transactions') - before).to.equal(1);
    });

    it('lets a connection open a transaction again once one is committed', async () => {
      const c = await h.client(V12);
      for (let i = 0; i < 100; i++) c.send(stompFrame('BEGIN', { transaction: `tx${i}` }));
      c.send(stompFrame('COMMIT', { transaction: 'tx0' }));
      await publish(c, `/topic/${uniqueName()}`, 'in', [['transaction', 'tx1']]);
      c.send(stompFrame('BEGIN', { transaction: 'again' }));
      await publish(c, `/topic/${uniqueName()}`, 'sync');
    });

    it('refuses SENDs past 16 MiB held in open transactions (400 x 1 MiB once retained +430 MB)', async () => {
      const before = hits('transaction-bytes');
      const c = await h.client(V12);
      const body = Buffer.alloc(1024 * 1024, 0x61);
      c.send(stompFrame('BEGIN', { transaction: 'big' }));
      const grew = await retainedMiB(async () => {
        const sent = await pour(
          c,
          repeat(400, () => stompFrame('SEND', { destination: `/queue/${uniqueName()}`, transaction: 'big' }, body)),
        );
        await expectError(c, { message: 'transactions too large (limit 16777216 bytes per connection)' });
        expect(sent, 'SENDs written before the broker closed').to.be.below(400);
      });
      expect(hits('transaction-bytes') - before).to.equal(1);
      expect(grew, 'MiB retained (unbounded: +430 MB)').to.be.below(64);
    });

    it('caps what a client-individual queue consumer without prefetch-count holds unacked at 1000', async () => {
      const before = hits('unacked');
      const name = uniqueName();
      const queue = `/queue/${name}`;
      const consumer = await h.client(V12);
      await subscribe(consumer, queue, 's', [['ack', 'client-individual']]);
      const producer = await h.client(V12);
      for (let i = 0; i < 1499; i++) producer.send(stompFrame('SEND', { destination: queue }, String(i)));
      await publish(producer, queue, '1499');
      const ids: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const m = await nextMessage(consumer, 5000);
        expect(m.text).to.equal(String(i));
        ids.push(m.headers.get('ack') ?? '');
      }
      await expectQuiet(consumer);
      expect(h.broker.resolveVhost('localhost').queues.get(name)?.depth).to.equal(500);
      expect(hits('unacked') - before).to.equal(1);
      // Each ACK makes room for exactly one more.
      consumer.send(stompFrame('ACK', { id: ids[0] ?? '' }));
      expect((await nextMessage(consumer)).text).to.equal('1000');
      await expectQuiet(consumer);
    });
  });

  describe('unacknowledged topic messages', () => {
    const h = useBroker({ maxUnackedPerSubscription: 10 });

    it('disconnects a client-ack topic subscriber that lets more than the limit wait for ACK', async () => {
      const topic = `/topic/${uniqueName()}`;
      const sub = await h.client(V12);
      await subscribe(sub, topic, 's', [['ack', 'client']]);
      const pub = await h.client(V12);
      for (let i = 0; i < 11; i++) await publish(pub, topic, String(i));
      for (let i = 0; i < 10; i++) expect((await nextMessage(sub)).text).to.equal(String(i));
      await expectError(sub, {
        message: 'too many unacknowledged messages (limit 10 per subscription)',
        body: 'Subscription "s" has 10 messages waiting for ACK; acknowledge them, or use ack:auto.\n',
      });
      expect(h.broker.stats.limitHits.get('unacked')).to.equal(1);
      await expectQuiet(pub);
    });

    it('keeps a subscriber that acknowledges', async () => {
      const topic = `/topic/${uniqueName()}`;
      const sub = await h.client(V12);
      await subscribe(sub, topic, 's', [['ack', 'client-individual']]);
      const pub = await h.client(V12);
      for (let i = 0; i < 30; i++) {
        await publish(pub, topic, String(i));
        const m = await nextMessage(sub);
        sub.send(stompFrame('ACK', { id: m.headers.get('ack') ?? '' }));
      }
      await expectQuiet(sub);
    });
  });

  describe('outbound bytes of every frame kind', () => {
    // 10 KB receipts, as in the issue, just under the default maxHeaderLineBytes (10 KiB).
    const receipt = 'r'.repeat(10_000);

    describe('past maxOutboundBytes', () => {
      const h = useBroker({ maxOutboundBytes: 256 * 1024, outboundHighWaterBytes: 256 * 1024, closeTimeoutMs: 300 });

      it('fails a client that collects none of its 10 KB RECEIPTs, and destroys its socket though it never reads', async () => {
        const c = await RawClient.tcp(h.port);
        try {
          c.send(stompFrame('CONNECT', V12));
          expect((await c.nextFrame()).command).to.equal('CONNECTED');
          c.pause();
          let slow = false;
          h.broker.events.once('slow-consumer', () => {
            slow = true;
          });
          const started = Date.now();
          await pour(
            c,
            repeat(20_000, (i) => stompFrame('SEND', { destination: `/topic/${uniqueName()}`, receipt: `${i}${receipt}` })),
          );
          await until(() => slow, 10_000, 'slow-consumer');
          // Never read: the socket goes once closeTimeoutMs (300 ms) has passed. Bound: generous for a busy machine.
          await c.closed(5000);
          expect(Date.now() - started).to.be.below(15_000);
          expect(h.broker.stats.limitHits.get('outbound-bytes')).to.equal(1);
          expect(h.broker.sessions.size, 'only sessions of other tests remain').to.equal(0);
        } finally {
          c.close();
        }
      });
    });

    describe('with the default settings (flow control)', () => {
      const h = useBroker();

      it('stops reading from a client that does not collect its RECEIPTs (once +370 MB, never disconnected)', async () => {
        const c = await RawClient.tcp(h.port);
        try {
          c.send(stompFrame('CONNECT', V12));
          expect((await c.nextFrame()).command).to.equal('CONNECTED');
          c.pause();
          let written = 0;
          const grew = await retainedMiB(async () => {
            // 4000 x 10 KB RECEIPTs would be 40 MB waiting for this client; the client is only let to write until
            // the broker's buffer for it passes outboundHighWaterBytes (1 MiB) and the kernel buffers fill.
            const pouring = pour(
              c,
              repeat(4000, (i) => stompFrame('SEND', { destination: '/topic/flow', receipt: `${i}${receipt}` })),
            ).then((n) => (written = n));
            await sleep(1500);
            const buffered = Math.max(0, ...[...h.broker.sessions].map((s) => s.connection.bufferedBytes));
            expect(buffered, 'bytes the broker holds for the client').to.be.below(4 * 1024 * 1024);
            expect(written, 'SENDs the client could write').to.equal(0);
            void pouring;
          });
          expect(grew, 'MiB retained (unbounded: +370 MB)').to.be.below(40);
          // Once the client reads, the broker reads again and every RECEIPT arrives.
          c.resume();
          let receipts = 0;
          while (receipts < 4000) {
            const f = await c.nextFrame(10_000);
            expect(f.command).to.equal('RECEIPT');
            receipts++;
          }
          expect(written).to.equal(4000);
        } finally {
          c.close();
        }
      });
    });
  });
});
