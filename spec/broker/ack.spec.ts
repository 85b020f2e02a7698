import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { stompFrame, type TcpRawClient } from '../support/raw.js';
import {
  LEGACY,
  V11,
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
  type Harness,
} from './harness.js';

/** A queue, a consumer subscribed with `ack`, and `count` messages "m1".."mN" delivered to it. */
async function delivered(h: Harness, ack: string, count: number, headers = V12, kind: 'queue' | 'topic' = 'queue') {
  const destination = `/${kind}/${uniqueName()}`;
  const consumer = await h.client(headers);
  await subscribe(consumer, destination, 'sub', [['ack', ack]]);
  const pub = await h.client(V12);
  for (let i = 1; i <= count; i++) await publish(pub, destination, `m${i}`);
  const messages = [];
  for (let i = 1; i <= count; i++) messages.push(await nextMessage(consumer));
  return { destination, consumer, pub, messages };
}

/** The texts a fresh consumer of `queue` receives within a short while (what was left unacknowledged). */
async function leftOver(h: Harness, queue: string, expected: number): Promise<string[]> {
  const c = await h.client(V12);
  await subscribe(c, queue, 'rest');
  const texts: string[] = [];
  for (let i = 0; i < expected; i++) texts.push((await nextMessage(c)).text);
  await expectQuiet(c);
  return texts;
}

describe('broker › wire › ACK and NACK', () => {
  const h = useBroker();

  describe('the ack header (S48)', () => {
    for (const mode of ['client', 'client-individual']) {
      it(`puts an ack header on every ${mode} MESSAGE, right after subscription, unique and safe to echo`, async () => {
        const { destination, messages } = await delivered(h, mode, 5);
        const acks = new Set<string>();
        for (const m of messages) {
          const ack = header(m, 'ack');
          expect(ack).to.match(/^[^:\\\s]+$/);
          acks.add(ack);
          expect(m.raw.toString()).to.equal(
            messageWire({ subscription: 'sub', ack, destination, messageId: header(m, 'message-id'), body: m.text }).toString(),
          );
        }
        expect(acks.size).to.equal(5);
      });
    }

    it('puts no ack header on auto MESSAGEs', async () => {
      const { messages } = await delivered(h, 'auto', 1);
      expect(messages[0]!.headers.has('ack')).to.equal(false);
    });

    it('puts an ack header on client-mode topic MESSAGEs too', async () => {
      const { messages } = await delivered(h, 'client', 1, V12, 'topic');
      expect(header(messages[0]!, 'ack')).to.match(/^[^:\\\s]+$/);
    });
  });

  describe('naming the message per version (S41, V4)', () => {
    it('1.2: ACK id = the MESSAGE ack header', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 1);
      await withReceipt(consumer, 'ACK', [['id', header(messages[0]!, 'ack')]]);
      consumer.close();
      expect(await leftOver(h, destination, 0)).to.deep.equal([]);
    });

    it('1.2: also accepts the message-id in id (clients that confuse the two)', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 1);
      await withReceipt(consumer, 'ACK', [['id', header(messages[0]!, 'message-id')]]);
      consumer.close();
      expect(await leftOver(h, destination, 0)).to.deep.equal([]);
    });

    it('1.1: ACK message-id + subscription', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 2, V11);
      await withReceipt(consumer, 'ACK', [
        ['message-id', header(messages[1]!, 'message-id')],
        ['subscription', 'sub'],
      ]);
      consumer.close();
      expect(await leftOver(h, destination, 1)).to.deep.equal(['m1']);
    });

    it('1.1 as Spring sends it: message-id alone', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 2, V11);
      await withReceipt(consumer, 'ACK', [['message-id', header(messages[0]!, 'message-id')]]);
      consumer.close();
      expect(await leftOver(h, destination, 1)).to.deep.equal(['m2']);
    });

    it('1.0: ACK message-id alone', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client', 1, LEGACY);
      await withReceipt(consumer, 'ACK', [['message-id', header(messages[0]!, 'message-id')]]);
      consumer.close();
      expect(await leftOver(h, destination, 0)).to.deep.equal([]);
    });

    it('as stompit sends it: id, message-id and subscription together', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 1);
      const m = messages[0]!;
      await withReceipt(consumer, 'ACK', [
        ['subscription', 'sub'],
        ['message-id', header(m, 'message-id')],
        ['id', header(m, 'ack')],
      ]);
      consumer.close();
      expect(await leftOver(h, destination, 0)).to.deep.equal([]);
    });
  });

  describe('refused ACK and NACK frames', () => {
    for (const kind of ['ACK', 'NACK']) {
      it(`1.2: refuses ${kind} of an unknown id, with receipt-id`, async () => {
        const c = await h.client(V12);
        c.send(stompFrame(kind, { id: 'zzz', receipt: 'k' }));
        await expectError(c, {
          message: `${kind} for an unknown or already acknowledged message`,
          receiptId: 'k',
          body: 'No unacknowledged message matches id "zzz".\n',
        });
      });

      it(`1.2: refuses ${kind} without id`, async () => {
        const c = await h.client(V12);
        c.send(stompFrame(kind, { subscription: 'sub', receipt: 'k' }));
        await expectError(c, {
          message: `${kind} frame is missing the "id" header`,
          receiptId: 'k',
          body: `The id header is required on ${kind}.\n`,
        });
      });

      it(`1.1: refuses ${kind} without message-id`, async () => {
        const c = await h.client(V11);
        c.send(stompFrame(kind, { subscription: 'sub' }));
        await expectError(c, { message: `${kind} frame is missing the "message-id" header` });
      });
    }

    it('refuses a second ACK of the same message', async () => {
      const { consumer, messages } = await delivered(h, 'client-individual', 1);
      const ack = header(messages[0]!, 'ack');
      await withReceipt(consumer, 'ACK', [['id', ack]]);
      consumer.send(stompFrame('ACK', { id: ack, receipt: 'twice' }));
      await expectError(consumer, {
        message: 'ACK for an unknown or already acknowledged message',
        receiptId: 'twice',
        body: `No unacknowledged message matches id "${ack}".\n`,
      });
    });

    it('refuses an ACK whose subscription header names another subscription (1.1)', async () => {
      const { consumer, messages } = await delivered(h, 'client-individual', 1, V11);
      const id = header(messages[0]!, 'message-id');
      consumer.send(stompFrame('ACK', { 'message-id': id, subscription: 'other' }));
      await expectError(consumer, {
        message: 'ACK for an unknown or already acknowledged message',
        body: `No unacknowledged message matches message-id "${id}".\n`,
      });
    });

    it('refuses an ACK of an auto-mode message (nothing is pending)', async () => {
      const { consumer, messages } = await delivered(h, 'auto', 1, V11);
      consumer.send(stompFrame('ACK', { 'message-id': header(messages[0]!, 'message-id'), subscription: 'sub' }));
      await expectError(consumer, { message: 'ACK for an unknown or already acknowledged message' });
    });
  });

  describe('client mode: cumulative (S38)', () => {
    it('ACK of a message covers every earlier one of the subscription, not later ones', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client', 4);
      await withReceipt(consumer, 'ACK', [['id', header(messages[2]!, 'ack')]]);
      consumer.close();
      expect(await leftOver(h, destination, 1)).to.deep.equal(['m4']);
    });

    it('refuses an ACK of an earlier message already covered by a later ACK', async () => {
      const { consumer, messages } = await delivered(h, 'client', 3, V12, 'topic');
      await withReceipt(consumer, 'ACK', [['id', header(messages[1]!, 'ack')]]);
      consumer.send(stompFrame('ACK', { id: header(messages[0]!, 'ack'), receipt: 'old' }));
      await expectError(consumer, { message: 'ACK for an unknown or already acknowledged message', receiptId: 'old' });
    });

    it('does not cover messages of another subscription on the same connection', async () => {
      const q1 = `/queue/${uniqueName()}`;
      const q2 = `/queue/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, q1, 's1', [['ack', 'client']]);
      await subscribe(c, q2, 's2', [['ack', 'client']]);
      const pub = await h.client(V12);
      await publish(pub, q1, 'a');
      await publish(pub, q2, 'b');
      await nextMessage(c);
      const b = await nextMessage(c);
      await withReceipt(c, 'ACK', [['id', header(b, 'ack')]]);
      c.close();
      expect(await leftOver(h, q1, 1)).to.deep.equal(['a']);
      expect(await leftOver(h, q2, 0)).to.deep.equal([]);
    });

    it('NACK of a message returns it and every earlier unacknowledged one, in order; later ones stay pending', async () => {
      const { consumer, messages } = await delivered(h, 'client', 3);
      consumer.send(stompFrame('NACK', { id: header(messages[1]!, 'ack') }));
      const r1 = await nextMessage(consumer);
      const r2 = await nextMessage(consumer);
      expect([r1.text, r2.text]).to.deep.equal(['m1', 'm2']);
      expect([header(r1, 'redelivered'), header(r2, 'redelivered')]).to.deep.equal(['true', 'true']);
      // m3 is still unacknowledged under its first ack id.
      await withReceipt(consumer, 'ACK', [['id', header(messages[2]!, 'ack')]]);
    });
  });

  describe('client-individual mode (S39)', () => {
    it('ACK of a later message leaves earlier ones unacknowledged', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 3);
      await withReceipt(consumer, 'ACK', [['id', header(messages[2]!, 'ack')]]);
      // The earlier ones can still be ACKed one by one.
      await withReceipt(consumer, 'ACK', [['id', header(messages[0]!, 'ack')]]);
      consumer.close();
      expect(await leftOver(h, destination, 1)).to.deep.equal(['m2']);
    });

    it('NACK redelivers exactly that message: same message-id, new ack id, redelivered:true, x-delivery-count:1', async () => {
      const { destination, consumer, messages } = await delivered(h, 'client-individual', 2);
      const m2 = messages[1]!;
      consumer.send(stompFrame('NACK', { id: header(m2, 'ack') }));
      const again = await nextMessage(consumer);
      expect(header(again, 'ack')).to.not.equal(header(m2, 'ack'));
      expect(again.raw.toString()).to.equal(
        messageWire({
          subscription: 'sub',
          ack: header(again, 'ack'),
          destination,
          messageId: header(m2, 'message-id'),
          headers: [
            ['redelivered', 'true'],
            ['x-delivery-count', '1'],
          ],
          body: 'm2',
        }).toString(),
      );
      await expectQuiet(consumer);
      // The old ack id is spent; m1 is untouched.
      consumer.send(stompFrame('ACK', { id: header(messages[0]!, 'ack'), receipt: 'm1' }));
      await expectReceipt(consumer, 'm1');
    });

    it('NACK of a topic message settles it without redelivery', async () => {
      const { consumer, messages } = await delivered(h, 'client-individual', 1, V12, 'topic');
      await withReceipt(consumer, 'NACK', [['id', header(messages[0]!, 'ack')]]);
      await expectQuiet(consumer);
    });
  });

  it('1.1: NACK by message-id + subscription redelivers', async () => {
    const { consumer, messages }: { consumer: TcpRawClient; messages: Awaited<ReturnType<typeof nextMessage>>[] } = await delivered(
      h,
      'client-individual',
      1,
      V11,
    );
    consumer.send(stompFrame('NACK', { 'message-id': header(messages[0]!, 'message-id'), subscription: 'sub' }));
    const again = await nextMessage(consumer);
    expect([again.text, header(again, 'redelivered')]).to.deep.equal(['m1', 'true']);
  });
});
