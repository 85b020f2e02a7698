import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import {
  LEGACY,
  V10,
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
} from './harness.js';

describe('broker › wire › topics', () => {
  const h = useBroker();

  describe('publish-subscribe (S47)', () => {
    it('delivers one MESSAGE to every subscription, each with its own subscription header', async () => {
      const topic = `/topic/${uniqueName()}`;
      const a = await h.client(V12);
      const b = await h.client(V12);
      await subscribe(a, topic, 'a1');
      await subscribe(a, topic, 'a2');
      await subscribe(b, topic, 'b1');
      const pub = await h.client(V12);
      await publish(pub, topic, 'hello', [['x-k', 'v']]);
      const got = [await nextMessage(a), await nextMessage(a), await nextMessage(b)];
      const id = header(got[0]!, 'message-id');
      const subs = got.map((m) => header(m, 'subscription'));
      expect(subs.slice(0, 2).sort()).to.deep.equal(['a1', 'a2']);
      expect(subs[2]).to.equal('b1');
      for (const m of got) {
        expect(m.raw.toString()).to.equal(
          messageWire({
            subscription: header(m, 'subscription'),
            destination: topic,
            messageId: id,
            headers: [['x-k', 'v']],
            body: 'hello',
          }).toString(),
        );
      }
      await expectQuiet(pub);
    });

    it('delivers to the publishing connection when it is subscribed too', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, topic, 's');
      c.send(stompFrame('SEND', { destination: topic }, 'me'));
      expect((await nextMessage(c)).text).to.equal('me');
    });

    it('drops a message nobody is subscribed to (no retention without x-history)', async () => {
      const topic = `/topic/${uniqueName()}`;
      const pub = await h.client(V12);
      await publish(pub, topic, 'lost');
      const sub = await h.client(V12);
      await subscribe(sub, topic, 's');
      await expectQuiet(sub);
    });

    it('sends the SUBSCRIBE RECEIPT only once the subscription is live (anchors §3.16)', async () => {
      for (let i = 0; i < 5; i++) {
        const topic = `/topic/${uniqueName()}`;
        const sub = await h.client(V12);
        const pub = await h.client(V12);
        sub.send(stompFrame('SUBSCRIBE', { destination: topic, id: 's', receipt: 'live' }));
        await expectReceipt(sub, 'live');
        // Sent the moment the RECEIPT arrives, from another connection: it must be delivered.
        pub.send(stompFrame('SEND', { destination: topic }, `n${i}`));
        expect((await nextMessage(sub)).text).to.equal(`n${i}`);
        sub.close();
        pub.close();
      }
    });

    it('delivers a SEND pipelined right after SUBSCRIBE in the same packet', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(V12);
      c.send(Buffer.concat([stompFrame('SUBSCRIBE', { destination: topic, id: 's' }), stompFrame('SEND', { destination: topic }, 'x')]));
      expect((await nextMessage(c)).text).to.equal('x');
    });

    it('lets the same subscription id be used on different connections', async () => {
      const topic = `/topic/${uniqueName()}`;
      const a = await h.client(V12);
      const b = await h.client(V12);
      await subscribe(a, topic, 'same');
      await subscribe(b, topic, 'same');
      a.send(stompFrame('SEND', { destination: topic }, 'x'));
      expect(header(await nextMessage(a), 'subscription')).to.equal('same');
      expect(header(await nextMessage(b), 'subscription')).to.equal('same');
    });
  });

  describe('wildcards: * one segment, # zero or more', () => {
    const cases: ReadonlyArray<readonly [string, readonly string[], readonly string[]]> = [
      ['P.*', ['P.a', 'P.b'], ['P', 'P.a.b', 'Q.a']],
      ['P.#', ['P', 'P.a', 'P.a.b.c'], ['Q', 'Q.P', 'Pa']],
      ['P.*.end', ['P.a.end', 'P.b.end'], ['P.end', 'P.a.b.end', 'P.a.end.x']],
      ['P.#.end', ['P.end', 'P.a.end', 'P.a.b.end'], ['P.a.endx', 'P.a']],
      ['*.P', ['x.P', 'y.P'], ['P', 'x.y.P']],
    ];
    for (const [pattern, hits, misses] of cases) {
      it(`/topic/${pattern} receives ${hits.join(', ')} and not ${misses.join(', ')}`, async () => {
        const u = uniqueName('w');
        const name = (s: string): string => s.replaceAll('P', u);
        const sub = await h.client(V12);
        await subscribe(sub, `/topic/${name(pattern)}`, 'w');
        const pub = await h.client(V12);
        for (const t of [...misses, ...hits]) await publish(pub, `/topic/${name(t)}`, t);
        for (const t of hits) {
          const m = await nextMessage(sub);
          expect(m.text).to.equal(t);
          // The MESSAGE names the destination it was sent to, not the pattern.
          expect(header(m, 'destination')).to.equal(`/topic/${name(t)}`);
          expect(header(m, 'subscription')).to.equal('w');
        }
        await expectQuiet(sub);
      });
    }

    it('delivers once per matching subscription when an exact and a wildcard subscription both match', async () => {
      const u = uniqueName('w');
      const c = await h.client(V12);
      await subscribe(c, `/topic/${u}.a`, 'exact');
      await subscribe(c, `/topic/${u}.*`, 'star');
      await subscribe(c, `/topic/${u}.#`, 'hash');
      c.send(stompFrame('SEND', { destination: `/topic/${u}.a` }, 'one'));
      const subs = [
        header(await nextMessage(c), 'subscription'),
        header(await nextMessage(c), 'subscription'),
        header(await nextMessage(c), 'subscription'),
      ];
      expect(subs.sort()).to.deep.equal(['exact', 'hash', 'star']);
      await expectQuiet(c);
    });
  });

  describe('UNSUBSCRIBE (S40)', () => {
    it('stops delivery, with a RECEIPT', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, topic, 's');
      await withReceipt(c, 'UNSUBSCRIBE', [['id', 's']]);
      const pub = await h.client(V12);
      await publish(pub, topic, 'x');
      await expectQuiet(c);
    });

    it('lets an id be used again after UNSUBSCRIBE', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(V12);
      await subscribe(c, topic, 's');
      await withReceipt(c, 'UNSUBSCRIBE', [['id', 's']]);
      await subscribe(c, topic, 's');
      c.send(stompFrame('SEND', { destination: topic }, 'again'));
      expect((await nextMessage(c)).text).to.equal('again');
    });

    for (const [label, headers] of [
      ['1.2', V12],
      ['1.1', V11],
    ] as const) {
      it(`${label}: refuses UNSUBSCRIBE of an unknown id with ERROR and receipt-id`, async () => {
        const c = await h.client(headers);
        c.send('UNSUBSCRIBE\nid:nope\nreceipt:u-1\n\n\0');
        await expectError(c, {
          message: 'no subscription with id "nope"',
          receiptId: 'u-1',
          body: 'UNSUBSCRIBE must name the id of an existing subscription.\n',
        });
      });

      it(`${label}: refuses UNSUBSCRIBE without id, even with a destination`, async () => {
        const topic = `/topic/${uniqueName()}`;
        const c = await h.client(headers);
        await subscribe(c, topic, 's');
        c.send(stompFrame('UNSUBSCRIBE', { destination: topic, receipt: 'u-2' }));
        await expectError(c, {
          message: 'UNSUBSCRIBE frame is missing the "id" header',
          receiptId: 'u-2',
          body: 'The id header is required on UNSUBSCRIBE.\n',
        });
      });
    }

    it('refuses a second UNSUBSCRIBE of the same id', async () => {
      const c = await h.client(V12);
      await subscribe(c, `/topic/${uniqueName()}`, 's');
      await withReceipt(c, 'UNSUBSCRIBE', [['id', 's']]);
      c.send('UNSUBSCRIBE\nid:s\n\n\0');
      await expectError(c, { message: 'no subscription with id "s"' });
    });
  });

  describe('SUBSCRIBE errors (S35, S36)', () => {
    it('refuses a duplicate subscription id on one connection', async () => {
      const c = await h.client(V12);
      await subscribe(c, `/topic/${uniqueName()}`, 's1');
      c.send(stompFrame('SUBSCRIBE', { destination: `/topic/${uniqueName()}`, id: 's1', receipt: 'dup' }));
      await expectError(c, {
        message: 'subscription id "s1" is already in use',
        receiptId: 'dup',
        body: 'Each subscription on a connection needs a different id (STOMP 1.2 §SUBSCRIBE).\n',
      });
    });

    for (const [label, headers] of [
      ['1.2', V12],
      ['1.1', V11],
    ] as const) {
      it(`${label}: refuses SUBSCRIBE without id`, async () => {
        const c = await h.client(headers);
        c.send(stompFrame('SUBSCRIBE', { destination: '/topic/x', receipt: 'noid' }));
        await expectError(c, {
          message: 'SUBSCRIBE frame is missing the "id" header',
          receiptId: 'noid',
          body: 'The id header is required on SUBSCRIBE.\n',
        });
      });
    }

    it('refuses SUBSCRIBE without destination', async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SUBSCRIBE', { id: '1', receipt: 'nodest' }));
      await expectError(c, { message: 'SUBSCRIBE frame is missing the "destination" header', receiptId: 'nodest' });
    });

    for (const ack of ['Auto', 'client ', 'individual', '']) {
      it(`refuses ack:${JSON.stringify(ack)}`, async () => {
        const c = await h.client(V12);
        c.send(stompFrame('SUBSCRIBE', { destination: '/topic/x', id: '1', ack, receipt: 'ack' }));
        await expectError(c, {
          message: `invalid ack mode "${ack}"`,
          receiptId: 'ack',
          body: 'ack must be auto, client or client-individual.\n',
        });
      });
    }
  });

  describe('STOMP 1.0 (V1)', () => {
    it('accepts SUBSCRIBE without id, names the subscription by its destination, and UNSUBSCRIBEs by destination', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(LEGACY);
      c.send(stompFrame('SUBSCRIBE', { destination: topic, receipt: 'sub' }));
      await expectReceipt(c, 'sub');
      c.send(stompFrame('SEND', { destination: topic }, 'old'));
      const m = await nextMessage(c);
      expect(m.raw.toString()).to.equal(
        messageWire({ subscription: topic, destination: topic, messageId: header(m, 'message-id'), body: 'old' }).toString(),
      );
      c.send(stompFrame('UNSUBSCRIBE', { destination: topic, receipt: 'unsub' }));
      await expectReceipt(c, 'unsub');
      await publish(c, topic, 'gone');
      await expectQuiet(c);
    });

    it('uses the id of a 1.0 SUBSCRIBE when one is given, and UNSUBSCRIBEs by that id', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(V10);
      await subscribe(c, topic, 'mine');
      c.send(stompFrame('SEND', { destination: topic }, 'x'));
      expect(header(await nextMessage(c), 'subscription')).to.equal('mine');
      await withReceipt(c, 'UNSUBSCRIBE', [['id', 'mine']]);
      await publish(c, topic, 'y');
      await expectQuiet(c);
    });

    it('UNSUBSCRIBEs by destination a 1.0 subscription that was given an id', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(LEGACY);
      await subscribe(c, topic, 'named');
      await withReceipt(c, 'UNSUBSCRIBE', [['destination', topic]]);
      await publish(c, topic, 'y');
      await expectQuiet(c);
    });

    it('refuses a second id-less SUBSCRIBE to the same destination', async () => {
      const topic = `/topic/${uniqueName()}`;
      const c = await h.client(LEGACY);
      c.send(stompFrame('SUBSCRIBE', { destination: topic }));
      c.send(stompFrame('SUBSCRIBE', { destination: topic, receipt: 'again' }));
      await expectError(c, { message: `subscription id "${topic}" is already in use`, receiptId: 'again' });
    });

    it('refuses a 1.0 UNSUBSCRIBE with neither id nor destination', async () => {
      const c = await h.client(LEGACY);
      c.send('UNSUBSCRIBE\nreceipt:r\n\n\0');
      await expectError(c, { message: 'UNSUBSCRIBE frame is missing the "id" header', receiptId: 'r' });
    });

    it('refuses a 1.0 UNSUBSCRIBE of a destination it is not subscribed to', async () => {
      const c = await h.client(LEGACY);
      c.send('UNSUBSCRIBE\ndestination:/topic/none\n\n\0');
      await expectError(c, { message: 'no subscription with id "/topic/none"' });
    });
  });
});
