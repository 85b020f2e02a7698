/**
 * Attack: freeze the node through topic matching or the subscription registry (issue #8, "Critical" and
 * "Quadratic subscribe/unsubscribe"). Before the fix, SUBSCRIBE `/topic/#.#.#.#.#.#.#.#.#.#.z` and one SEND to
 * a 30-segment topic held the event loop 6.8 s (12 `#` against 40 segments: ~30 min), and 40,000 SUBSCRIBEs to
 * one topic held it 11.5 s, closing that connection > 5 s more. Now every phase must leave the loop free.
 */
import { expect } from 'chai';
import { useBroker } from '../broker/harness.js';
import { stompFrame, type RawFrame, type TcpRawClient } from '../support/raw.js';
import { longestStallMs, until } from './support.js';

/** The longest the loop may stand still in any phase (issue #8's bound for every attack spec). */
const STALL_BOUND_MS = 50;

/** `count` distinct segments: nothing in them matches a literal part of the hostile patterns. */
function segments(count: number, tag: string): string {
  return Array.from({ length: count }, (_, i) => `${tag}${i}`).join('.');
}

/** SUBSCRIBE frames with `receipt` on the last only, so one write carries them all. */
function subscribeFrames(destination: string, count: number, tag: string): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const headers: [string, string][] = [
      ['destination', destination],
      ['id', `${tag}-${i}`],
    ];
    if (i === count - 1) headers.push(['receipt', `${tag}-done`]);
    frames.push(stompFrame('SUBSCRIBE', headers));
  }
  return Buffer.concat(frames);
}

async function expectReceiptFor(client: TcpRawClient, id: string, timeoutMs = 10_000): Promise<void> {
  const frame = await client.nextFrame(timeoutMs);
  expect(frame.command, frame.raw.toString('latin1')).to.equal('RECEIPT');
  expect(frame.headers.get('receipt-id')).to.equal(id);
}

describe('security › topic matching and subscription registry', () => {
  const node = useBroker();

  describe('hostile wildcard patterns match in linear time', () => {
    const cases = [
      // Fails on the old matcher in 6.8 s; the next one would hang it for half an hour.
      { hashes: 10, length: 30 },
      { hashes: 12, length: 40 },
    ];
    for (const { hashes, length } of cases) {
      it(`${hashes} # then z, against ${length}-segment names: loop stall < ${STALL_BOUND_MS} ms, exactly the matching messages`, async () => {
        const tag = `m${hashes}x${length}`;
        const pattern = `${Array.from({ length: hashes }, () => '#').join('.')}.z`;
        const subscriber = await node.client();
        const publisher = await node.client();
        // Names that make a backtracking matcher try every split, and names the pattern does match.
        const names = [
          segments(length, tag),
          `${segments(length - 1, tag)}.z`,
          `${segments(length, tag)}.zz`,
          'z',
          `${segments(length, tag)}.z.${tag}`,
          `z.${segments(length, tag)}`,
          `${tag}.z`,
        ];
        const matching = names.filter((name) => name.endsWith('.z') || name === 'z');
        const { stallMs, result } = await longestStallMs(async () => {
          subscriber.send(
            stompFrame('SUBSCRIBE', [
              ['destination', `/topic/${pattern}`],
              ['id', 'hostile'],
              ['receipt', 'sub'],
            ]),
          );
          await expectReceiptFor(subscriber, 'sub');
          names.forEach((name, i) =>
            publisher.send(
              stompFrame(
                'SEND',
                [
                  ['destination', `/topic/${name}`],
                  ['receipt', `s${i}`],
                ],
                name,
              ),
            ),
          );
          for (let i = 0; i < names.length; i++) await expectReceiptFor(publisher, `s${i}`);
          // One publisher, one subscriber: messages arrive in the order sent, so anything unwanted shows up
          // before the last matching one.
          const got: RawFrame[] = [];
          while (got.length < matching.length) got.push(await subscriber.nextFrame(5000));
          return got;
        });
        expect(result.map((f) => f.command)).to.deep.equal(matching.map(() => 'MESSAGE'));
        expect(result.map((f) => f.body.toString())).to.deep.equal(matching);
        expect(result.map((f) => f.headers.get('subscription'))).to.deep.equal(matching.map(() => 'hostile'));
        expect(stallMs, 'longest event-loop stall, ms').to.be.below(STALL_BOUND_MS);
      });
    }
  });

  describe('many subscriptions to one topic', () => {
    // 40 × 1,000 = the 40,000 SUBSCRIBEs of issue #8, spread so that a per-connection cap of about 1,000 allows it.
    const CONNECTIONS = 40;
    const PER_CONNECTION = 1_000;
    /**
     * One connection's 1,000 SUBSCRIBEs (60 KB) arrive in one read and are handled in one turn of the loop. That
     * turn is dominated by frame parsing and by building each Subscription (its encoded MESSAGE prefix), ~10-20 µs
     * a frame on a loaded 2-core machine and independent of how many subscriptions exist: measured 10-50 ms
     * typical, up to ~140 ms under load. The old registry copied the whole subscriber array per SUBSCRIBE, so
     * the same turn took 350-1,300 ms once 15,000+ subscriptions existed, and grew with every connection.
     */
    const SUBSCRIBE_TURN_BOUND_MS = 250;

    /** Connects, sends `PER_CONNECTION` SUBSCRIBEs to `topic` in one write, waits for the last one's RECEIPT. */
    async function crowd(topic: string, tag: string): Promise<TcpRawClient> {
      const client = await node.client();
      client.send(subscribeFrames(topic, PER_CONNECTION, tag));
      await expectReceiptFor(client, `${tag}-done`, 30_000);
      return client;
    }

    /** Closes `client` from its side and waits until the broker has torn its session down. */
    async function leave(client: TcpRawClient): Promise<void> {
      const sessions = node.broker.sessions.size;
      client.close();
      await until(() => node.broker.sessions.size < sessions, 10_000, 'the broker to drop the session');
    }

    it(`${CONNECTIONS} connections × ${PER_CONNECTION} SUBSCRIBEs, a publish, then all close: no turn of the loop grows with the crowd`, async function () {
      this.timeout(120_000);
      const topic = '/topic/crowded.room';
      // Warm the code paths first, so a cold JIT is not counted as a stall of the registry.
      await leave(await crowd('/topic/crowded.warmup', 'warm'));

      const clients: TcpRawClient[] = [];
      const subscribing = await longestStallMs(async () => {
        for (let c = 0; c < CONNECTIONS; c++) clients.push(await crowd(topic, `c${c}`));
      });

      // Every subscription is live: one SEND reaches each of them once. (Not timed: 40,000 MESSAGEs written in
      // one turn is fan-out work, not registry work.)
      const publisher = await node.client();
      publisher.send(
        stompFrame(
          'SEND',
          [
            ['destination', topic],
            ['receipt', 'sent'],
          ],
          'hello',
        ),
      );
      await expectReceiptFor(publisher, 'sent');
      await Promise.all(
        clients.map(async (client) => {
          const ids = new Set<string>();
          for (let i = 0; i < PER_CONNECTION; i++) {
            const frame = await client.nextFrame(30_000);
            expect(frame.command).to.equal('MESSAGE');
            ids.add(frame.headers.get('subscription') ?? '');
          }
          expect(ids.size, 'one MESSAGE per subscription').to.equal(PER_CONNECTION);
          // The raw clients keep every frame: drop the 40,000 MESSAGEs, or collecting them is measured as a stall.
          client.frames.length = 0;
        }),
      );
      await leave(publisher);

      // Each close removes 1,000 subscriptions in one turn: no parsing involved, so the 50 ms applies.
      // The old registry filtered the whole array per removal: 1.4-6.2 s per close.
      const closing = await longestStallMs(async () => {
        for (const client of clients) await leave(client);
      });
      expect(node.broker.resolveVhost('localhost').topics.empty, 'every subscription left the registry').to.equal(true);

      expect(subscribing.stallMs, 'longest stall while subscribing, ms').to.be.below(SUBSCRIBE_TURN_BOUND_MS);
      expect(closing.stallMs, 'longest stall while closing, ms').to.be.below(STALL_BOUND_MS);
    });
  });
});
