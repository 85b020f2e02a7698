import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import {
  V12,
  expectError,
  expectQuiet,
  expectReceipt,
  header,
  messageWire,
  nextMessage,
  publish,
  subscribe,
  useBroker,
  withReceipt,
} from './harness.js';

const INDIVIDUAL = [['ack', 'client-individual']] as const;

describe('broker › wire › queues', () => {
  const h = useBroker({ maxDeliveries: 3 });

  it('keeps a message until a consumer subscribes, then delivers it once', async () => {
    const q = `/queue/${uniqueName()}`;
    const pub = await h.client(V12);
    await publish(pub, q, 'stored', [['x-k', 'v']]);
    const a = await h.client(V12);
    await subscribe(a, q, 's');
    const m = await nextMessage(a);
    expect(m.raw.toString()).to.equal(
      messageWire({
        subscription: 's',
        destination: q,
        messageId: header(m, 'message-id'),
        headers: [['x-k', 'v']],
        body: 'stored',
      }).toString(),
    );
    const b = await h.client(V12);
    await subscribe(b, q, 's');
    await expectQuiet(b);
    await expectQuiet(a);
  });

  it('gives each message to one consumer, round-robin', async () => {
    const q = `/queue/${uniqueName()}`;
    const a = await h.client(V12);
    const b = await h.client(V12);
    await subscribe(a, q, 'a');
    await subscribe(b, q, 'b');
    const pub = await h.client(V12);
    for (const n of ['1', '2', '3', '4', '5', '6']) await publish(pub, q, n);
    expect([(await nextMessage(a)).text, (await nextMessage(a)).text, (await nextMessage(a)).text]).to.deep.equal(['1', '3', '5']);
    expect([(await nextMessage(b)).text, (await nextMessage(b)).text, (await nextMessage(b)).text]).to.deep.equal(['2', '4', '6']);
    await expectQuiet(a);
    await expectQuiet(b);
  });

  it('respects prefetch-count: no more unacknowledged messages than asked, and serves other consumers meanwhile', async () => {
    const q = `/queue/${uniqueName()}`;
    const a = await h.client(V12);
    await subscribe(a, q, 'a', [...INDIVIDUAL, ['prefetch-count', '2']]);
    const pub = await h.client(V12);
    for (const n of ['1', '2', '3', '4', '5']) await publish(pub, q, n);
    const first = await nextMessage(a);
    expect(first.text).to.equal('1');
    expect((await nextMessage(a)).text).to.equal('2');
    await expectQuiet(a);
    // The ACK frees a slot, so the next MESSAGE goes out while the ACK is processed, before its RECEIPT.
    a.send(stompFrame('ACK', { id: header(first, 'ack'), receipt: 'acked' }));
    expect((await nextMessage(a)).text).to.equal('3');
    await expectReceipt(a, 'acked');
    await expectQuiet(a);
    const b = await h.client(V12);
    await subscribe(b, q, 'b');
    expect((await nextMessage(b)).text).to.equal('4');
    expect((await nextMessage(b)).text).to.equal('5');
  });

  it('counts prefetch in client mode too, where one ACK frees every earlier slot', async () => {
    const q = `/queue/${uniqueName()}`;
    const a = await h.client(V12);
    await subscribe(a, q, 'a', [
      ['ack', 'client'],
      ['prefetch-count', '2'],
    ]);
    const pub = await h.client(V12);
    for (const n of ['1', '2', '3', '4', '5']) await publish(pub, q, n);
    await nextMessage(a);
    const second = await nextMessage(a);
    await expectQuiet(a);
    a.send(stompFrame('ACK', { id: header(second, 'ack') }));
    expect((await nextMessage(a)).text).to.equal('3');
    expect((await nextMessage(a)).text).to.equal('4');
    await expectQuiet(a);
  });

  it('ignores prefetch-count in auto mode, and treats 0 as no limit', async () => {
    const q = `/queue/${uniqueName()}`;
    const a = await h.client(V12);
    await subscribe(a, q, 'a', [['prefetch-count', '1']]);
    const b = await h.client(V12);
    await subscribe(b, `${q}x`, 'b', [...INDIVIDUAL, ['prefetch-count', '0']]);
    const pub = await h.client(V12);
    for (const n of ['1', '2', '3']) {
      await publish(pub, q, n);
      await publish(pub, `${q}x`, n);
    }
    for (const n of ['1', '2', '3']) {
      expect((await nextMessage(a)).text).to.equal(n);
      expect((await nextMessage(b)).text).to.equal(n);
    }
  });

  for (const value of ['-1', 'ten', '1.5', '']) {
    it(`refuses prefetch-count:${JSON.stringify(value)}`, async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SUBSCRIBE', { destination: `/queue/${uniqueName()}`, id: 's', 'prefetch-count': value, receipt: 'p' }));
      await expectError(c, {
        message: `invalid prefetch-count "${value}"`,
        receiptId: 'p',
        body: 'prefetch-count must be a non-negative integer (0 means unlimited).\n',
      });
    });
  }

  describe('redelivery of unacknowledged messages', () => {
    it('redelivers after UNSUBSCRIBE, with redelivered:true and x-delivery-count:1, same message-id', async () => {
      const q = `/queue/${uniqueName()}`;
      const a = await h.client(V12);
      await subscribe(a, q, 'a', INDIVIDUAL);
      const pub = await h.client(V12);
      await publish(pub, q, 'again', [['x-k', 'v']]);
      const first = await nextMessage(a);
      await withReceipt(a, 'UNSUBSCRIBE', [['id', 'a']]);
      const b = await h.client(V12);
      await subscribe(b, q, 'b');
      const m = await nextMessage(b);
      expect(m.raw.toString()).to.equal(
        messageWire({
          subscription: 'b',
          destination: q,
          messageId: header(first, 'message-id'),
          headers: [
            ['x-k', 'v'],
            ['redelivered', 'true'],
            ['x-delivery-count', '1'],
          ],
          body: 'again',
        }).toString(),
      );
    });

    it("redelivers after the consumer's connection drops", async () => {
      const q = `/queue/${uniqueName()}`;
      const a = await h.client(V12);
      await subscribe(a, q, 'a', [['ack', 'client']]);
      const pub = await h.client(V12);
      await publish(pub, q, 'm1');
      await publish(pub, q, 'm2');
      await nextMessage(a);
      await nextMessage(a);
      a.close();
      const b = await h.client(V12);
      await subscribe(b, q, 'b', INDIVIDUAL);
      for (const text of ['m1', 'm2']) {
        const m = await nextMessage(b);
        expect(m.text).to.equal(text);
        expect(header(m, 'redelivered')).to.equal('true');
        expect(header(m, 'x-delivery-count')).to.equal('1');
      }
    });

    it('redelivers after DISCONNECT', async () => {
      const q = `/queue/${uniqueName()}`;
      const a = await h.client(V12);
      await subscribe(a, q, 'a', INDIVIDUAL);
      const pub = await h.client(V12);
      await publish(pub, q, 'm1');
      await nextMessage(a);
      a.send('DISCONNECT\nreceipt:bye\n\n\0');
      await expectReceipt(a, 'bye');
      const b = await h.client(V12);
      await subscribe(b, q, 'b');
      expect(header(await nextMessage(b), 'redelivered')).to.equal('true');
    });

    it('puts a returned message back ahead of later ones', async () => {
      const q = `/queue/${uniqueName()}`;
      const a = await h.client(V12);
      await subscribe(a, q, 'a', [...INDIVIDUAL, ['prefetch-count', '1']]);
      const pub = await h.client(V12);
      for (const n of ['1', '2', '3']) await publish(pub, q, n);
      const one = await nextMessage(a);
      a.send(stompFrame('NACK', { id: header(one, 'ack') }));
      const again = await nextMessage(a);
      expect([again.text, header(again, 'redelivered')]).to.deep.equal(['1', 'true']);
      a.send(stompFrame('ACK', { id: header(again, 'ack') }));
      const two = await nextMessage(a);
      expect(two.text).to.equal('2');
      expect(two.headers.has('redelivered')).to.equal(false);
    });

    it('counts deliveries and dead-letters to <queue>.dlq after maxDeliveries', async () => {
      const name = uniqueName();
      const q = `/queue/${name}`;
      const a = await h.client(V12);
      await subscribe(a, q, 'a', INDIVIDUAL);
      const pub = await h.client(V12);
      await publish(pub, q, 'poison', [['x-k', 'v']]);
      const counts: (string | undefined)[] = [];
      let id = '';
      for (let i = 0; i < 3; i++) {
        const m = await nextMessage(a);
        id = header(m, 'message-id');
        counts.push(m.headers.get('x-delivery-count'));
        a.send(stompFrame('NACK', { id: header(m, 'ack') }));
      }
      expect(counts).to.deep.equal([undefined, '1', '2']);
      await expectQuiet(a);
      const dlq = await h.client(V12);
      await subscribe(dlq, `${q}.dlq`, 'd', INDIVIDUAL);
      const dead = await nextMessage(dlq);
      expect(dead.raw.toString()).to.equal(
        messageWire({
          subscription: 'd',
          ack: header(dead, 'ack'),
          destination: `${q}.dlq`,
          messageId: id,
          headers: [
            ['x-k', 'v'],
            ['x-original-destination', q],
            ['x-death-reason', 'delivery-limit'],
            ['x-delivery-count', '3'],
          ],
          body: 'poison',
        }).toString(),
      );
    });

    it('never dead-letters from a dead-letter queue', async () => {
      const q = `/queue/${uniqueName()}.dlq`;
      const a = await h.client(V12);
      await subscribe(a, q, 'a', INDIVIDUAL);
      const pub = await h.client(V12);
      await publish(pub, q, 'kept');
      for (let i = 0; i < 5; i++) {
        const m = await nextMessage(a);
        expect(m.text).to.equal('kept');
        a.send(stompFrame('NACK', { id: header(m, 'ack') }));
      }
      expect(header(await nextMessage(a), 'x-delivery-count')).to.equal('5');
      const dlq = await h.client(V12);
      await subscribe(dlq, `${q}.dlq`, 'd');
      await expectQuiet(dlq);
    });
  });

  describe('bounded queues', () => {
    const small = useBroker({ maxQueueMessages: 3, maxQueueBytes: 3000 });

    it('refuses a SEND to a queue holding maxQueueMessages, with ERROR and receipt-id, and keeps what it holds', async () => {
      const q = `/queue/${uniqueName()}`;
      const pub = await small.client(V12);
      for (const n of ['1', '2', '3']) await publish(pub, q, n);
      pub.send(stompFrame('SEND', { destination: q, receipt: 'full' }, '4'));
      await expectError(pub, {
        message: `queue ${q} is full`,
        receiptId: 'full',
        body: 'The queue holds 3 messages (771 bytes); the limits are 3 messages and 3000 bytes. Consume from it or raise maxQueueMessages / maxQueueBytes.\n',
      });
      const c = await small.client(V12);
      await subscribe(c, q, 's');
      for (const n of ['1', '2', '3']) expect((await nextMessage(c)).text).to.equal(n);
      await expectQuiet(c);
    });

    it('refuses a SEND that would pass maxQueueBytes', async () => {
      const q = `/queue/${uniqueName()}`;
      const pub = await small.client(V12);
      await publish(pub, q, 'x'.repeat(2000));
      pub.send(stompFrame('SEND', { destination: q }, 'y'.repeat(2000)));
      await expectError(pub, {
        message: `queue ${q} is full`,
        body: /^The queue holds 1 messages \(2256 bytes\); the limits are 3 messages and 3000 bytes\./,
      });
    });

    it('accepts SENDs again once a consumer has drained the queue', async () => {
      const q = `/queue/${uniqueName()}`;
      const pub = await small.client(V12);
      for (const n of ['1', '2', '3']) await publish(pub, q, n);
      const c = await small.client(V12);
      await subscribe(c, q, 's');
      for (let i = 0; i < 3; i++) await nextMessage(c);
      await publish(pub, q, '4');
      expect((await nextMessage(c)).text).to.equal('4');
    });
  });
});
