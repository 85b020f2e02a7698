import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import {
  V11,
  V12,
  closeAtBroker,
  expectError,
  expectQuiet,
  expectReceipt,
  header,
  nextMessage,
  publish,
  subscribe,
  useBroker,
  withReceipt,
  type Harness,
} from './harness.js';

/** A topic subscriber, and a publisher connection. */
async function pair(h: Harness) {
  const topic = `/topic/${uniqueName()}`;
  const sub = await h.client(V12);
  await subscribe(sub, topic, 's');
  const pub = await h.client(V12);
  return { topic, sub, pub };
}

describe('broker › wire › transactions (S43, S44)', () => {
  const h = useBroker();

  describe('SEND', () => {
    it('delivers nothing before COMMIT, then everything in order; user headers kept, transaction dropped', async () => {
      const { topic, sub, pub } = await pair(h);
      await withReceipt(pub, 'BEGIN', [['transaction', 'tx1']]);
      await withReceipt(
        pub,
        'SEND',
        [
          ['destination', topic],
          ['transaction', 'tx1'],
          ['x-n', '1'],
        ],
        'one',
      );
      await withReceipt(
        pub,
        'SEND',
        [
          ['destination', topic],
          ['transaction', 'tx1'],
          ['x-n', '2'],
        ],
        'two',
      );
      await expectQuiet(sub);
      await withReceipt(pub, 'COMMIT', [['transaction', 'tx1']]);
      const one = await nextMessage(sub);
      const two = await nextMessage(sub);
      expect([one.text, two.text]).to.deep.equal(['one', 'two']);
      expect([...one.headers.keys()]).to.deep.equal(['subscription', 'destination', 'message-id', 'x-n', 'content-length']);
    });

    it('discards the SENDs of an aborted transaction', async () => {
      const { topic, sub, pub } = await pair(h);
      await withReceipt(pub, 'BEGIN', [['transaction', 'tx']]);
      await withReceipt(
        pub,
        'SEND',
        [
          ['destination', topic],
          ['transaction', 'tx'],
        ],
        'dropped',
      );
      await withReceipt(pub, 'ABORT', [['transaction', 'tx']]);
      await publish(pub, topic, 'plain');
      expect((await nextMessage(sub)).text).to.equal('plain');
      await expectQuiet(sub);
    });

    it('keeps transactional and plain SENDs apart, and transactions apart from each other', async () => {
      const { topic, sub, pub } = await pair(h);
      pub.send(
        Buffer.concat([
          stompFrame('BEGIN', { transaction: 'a' }),
          stompFrame('BEGIN', { transaction: 'b' }),
          stompFrame('SEND', { destination: topic, transaction: 'a' }, 'a1'),
          stompFrame('SEND', { destination: topic, transaction: 'b' }, 'b1'),
          stompFrame('SEND', { destination: topic }, 'now'),
          stompFrame('COMMIT', { transaction: 'b' }),
          stompFrame('SEND', { destination: topic, transaction: 'a' }, 'a2'),
          stompFrame('COMMIT', { transaction: 'a', receipt: 'done' }),
        ]),
      );
      await expectReceipt(pub, 'done');
      const texts = [];
      for (let i = 0; i < 4; i++) texts.push((await nextMessage(sub)).text);
      expect(texts).to.deep.equal(['now', 'b1', 'a1', 'a2']);
    });

    it('aborts an open transaction on DISCONNECT', async () => {
      const { topic, sub, pub } = await pair(h);
      pub.send(
        Buffer.concat([
          stompFrame('BEGIN', { transaction: 'tx' }),
          stompFrame('SEND', { destination: topic, transaction: 'tx' }, 'never'),
          stompFrame('DISCONNECT', { receipt: 'bye' }),
        ]),
      );
      await expectReceipt(pub, 'bye');
      await pub.closed();
      await expectQuiet(sub);
    });

    it('aborts an open transaction when the connection drops', async () => {
      const { topic, sub, pub } = await pair(h);
      await withReceipt(pub, 'BEGIN', [['transaction', 'tx']]);
      await withReceipt(
        pub,
        'SEND',
        [
          ['destination', topic],
          ['transaction', 'tx'],
        ],
        'never',
      );
      await closeAtBroker(h.broker, pub);
      await expectQuiet(sub);
    });

    it('checks the destination of a transactional SEND when it is sent, not at COMMIT', async () => {
      const pub = await h.client(V12);
      await withReceipt(pub, 'BEGIN', [['transaction', 'tx']]);
      pub.send(stompFrame('SEND', { destination: '/nowhere', transaction: 'tx', receipt: 'bad' }, 'x'));
      await expectError(pub, { message: 'invalid destination "/nowhere"', receiptId: 'bad' });
    });
  });

  describe('ACK and NACK', () => {
    async function pending(ack: string) {
      const q = `/queue/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, q, 's', [['ack', ack]]);
      const pub = await h.client(V12);
      await publish(pub, q, 'm1');
      await publish(pub, q, 'm2');
      return { q, c, m1: await nextMessage(c), m2: await nextMessage(c) };
    }

    async function redeliveredTexts(q: string, count: number): Promise<string[]> {
      const other = await h.client(V12);
      await subscribe(other, q, 'o');
      const texts = [];
      for (let i = 0; i < count; i++) texts.push((await nextMessage(other)).text);
      await expectQuiet(other);
      return texts;
    }

    it('an ACK takes effect at COMMIT', async () => {
      const { q, c, m1, m2 } = await pending('client-individual');
      await withReceipt(c, 'BEGIN', [['transaction', 't']]);
      await withReceipt(c, 'ACK', [
        ['id', header(m1, 'ack')],
        ['transaction', 't'],
      ]);
      await withReceipt(c, 'COMMIT', [['transaction', 't']]);
      // m1 is settled: a plain ACK of it now is refused, so use m2 to prove the session is still fine.
      await withReceipt(c, 'ACK', [['id', header(m2, 'ack')]]);
      c.close();
      expect(await redeliveredTexts(q, 0)).to.deep.equal([]);
    });

    it('an ACK in an aborted transaction does not settle the message', async () => {
      const { q, c, m1 } = await pending('client-individual');
      await withReceipt(c, 'BEGIN', [['transaction', 't']]);
      await withReceipt(c, 'ACK', [
        ['id', header(m1, 'ack')],
        ['transaction', 't'],
      ]);
      await withReceipt(c, 'ABORT', [['transaction', 't']]);
      c.close();
      expect(await redeliveredTexts(q, 2)).to.deep.equal(['m1', 'm2']);
    });

    it('a transactional ACK is still pending until COMMIT (the connection dropping first returns the message)', async () => {
      const { q, c, m1, m2 } = await pending('client');
      await withReceipt(c, 'BEGIN', [['transaction', 't']]);
      await withReceipt(c, 'ACK', [
        ['id', header(m2, 'ack')],
        ['transaction', 't'],
      ]);
      expect(header(m1, 'ack')).to.not.equal(header(m2, 'ack'));
      c.close();
      expect(await redeliveredTexts(q, 2)).to.deep.equal(['m1', 'm2']);
    });

    it('a NACK takes effect at COMMIT', async () => {
      const { c, m1 } = await pending('client-individual');
      await withReceipt(c, 'BEGIN', [['transaction', 't']]);
      await withReceipt(c, 'NACK', [
        ['id', header(m1, 'ack')],
        ['transaction', 't'],
      ]);
      await expectQuiet(c);
      c.send(stompFrame('COMMIT', { transaction: 't' }));
      const again = await nextMessage(c);
      expect([again.text, header(again, 'redelivered')]).to.deep.equal(['m1', 'true']);
    });

    it('refuses a transactional ACK of an unknown message when it is sent', async () => {
      const c = await h.client(V12);
      await withReceipt(c, 'BEGIN', [['transaction', 't']]);
      c.send(stompFrame('ACK', { id: 'nope', transaction: 't', receipt: 'a' }));
      await expectError(c, { message: 'ACK for an unknown or already acknowledged message', receiptId: 'a' });
    });
  });

  describe('errors', () => {
    for (const command of ['COMMIT', 'ABORT']) {
      it(`refuses ${command} of a transaction that was never begun`, async () => {
        const c = await h.client(V12);
        c.send(stompFrame(command, { transaction: 'ghost', receipt: 'g' }));
        await expectError(c, {
          message: 'unknown transaction "ghost"',
          receiptId: 'g',
          body: 'The transaction was never begun, or was already committed or aborted.\n',
        });
      });
    }

    it('refuses a SEND in a transaction that was never begun', async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SEND', { destination: '/topic/x', transaction: 'ghost', receipt: 'g' }, 'x'));
      await expectError(c, { message: 'unknown transaction "ghost"', receiptId: 'g' });
    });

    it('refuses an ACK in a transaction that was never begun', async () => {
      const q = `/queue/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, q, 's', [['ack', 'client']]);
      await publish(c, q, 'x');
      const m = await nextMessage(c);
      c.send(stompFrame('ACK', { id: header(m, 'ack'), transaction: 'ghost' }));
      await expectError(c, { message: 'unknown transaction "ghost"' });
    });

    it('refuses BEGIN of a transaction that is already open', async () => {
      const c = await h.client(V12);
      await withReceipt(c, 'BEGIN', [['transaction', 't1']]);
      c.send(stompFrame('BEGIN', { transaction: 't1', receipt: 'again' }));
      await expectError(c, {
        message: 'transaction "t1" is already open',
        receiptId: 'again',
        body: 'BEGIN must name a transaction that is not open.\n',
      });
    });

    for (const command of ['COMMIT', 'ABORT']) {
      it(`refuses a second ${command} of the same transaction`, async () => {
        const c = await h.client(V12);
        await withReceipt(c, 'BEGIN', [['transaction', 't1']]);
        await withReceipt(c, command, [['transaction', 't1']]);
        c.send(stompFrame(command, { transaction: 't1' }));
        await expectError(c, { message: 'unknown transaction "t1"' });
      });
    }

    it('lets a committed transaction id be begun again', async () => {
      const c = await h.client(V12);
      await withReceipt(c, 'BEGIN', [['transaction', 't1']]);
      await withReceipt(c, 'COMMIT', [['transaction', 't1']]);
      await withReceipt(c, 'BEGIN', [['transaction', 't1']]);
    });

    it('keeps transaction ids per connection', async () => {
      const a = await h.client(V12);
      const b = await h.client(V11);
      await withReceipt(a, 'BEGIN', [['transaction', 'shared']]);
      await withReceipt(b, 'BEGIN', [['transaction', 'shared']]);
      await withReceipt(a, 'COMMIT', [['transaction', 'shared']]);
      await withReceipt(b, 'ABORT', [['transaction', 'shared']]);
    });

    for (const command of ['BEGIN', 'COMMIT', 'ABORT']) {
      it(`refuses ${command} without a transaction header`, async () => {
        const c = await h.client(V12);
        c.send(stompFrame(command, { receipt: 'nt' }));
        await expectError(c, {
          message: `${command} frame is missing the "transaction" header`,
          receiptId: 'nt',
          body: `The transaction header is required on ${command}.\n`,
        });
      });
    }
  });
});
