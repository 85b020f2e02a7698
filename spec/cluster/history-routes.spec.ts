/**
 * History on every route that has a store (issue #7 item 6), over real node processes, Redis and MongoDB (FerretDB):
 * redis-route topics are stored in MongoDB by the node that accepted the SEND, once, under the message-id every
 * node delivers; a local-route topic with `--mongo` and no Kafka is stored in MongoDB and survives a restart.
 */
import { expect } from 'chai';
import { Binary, MongoClient, type Collection, type Document } from 'mongodb';
import { connectRedis } from '../../bridge/redis-client.js';
import { silentLogger } from '../../broker/ports/logger.js';
import { requireService } from '../support/services.js';
import { sleep, StompedeCluster, until, type StompedeNode } from '../support/cluster.js';
import { ClientPool, type Received, type StompClient, type Subscription } from './clients.js';
import { dest, sendAll, useCluster } from './scenarios.js';
import { waitQuiet } from '../support/timing.js';

/** The documents of one destination in a cluster's history collection, by the database the test URL names. */
function historyOf(client: MongoClient, clusterName: string): Collection<Document> {
  return client.db('stompede').collection(`${clusterName}_history`);
}

function bodyOf(document: Document): string {
  const body: unknown = document.body;
  return body instanceof Binary ? Buffer.from(body.buffer).toString() : `not binary: ${String(body)}`;
}

function offsets(messages: readonly Received[]): number[] {
  return messages.map((m) => Number(m.headers['x-stream-offset']));
}

function increasing(values: readonly number[]): boolean {
  return values.every((v, i) => Number.isInteger(v) && (i === 0 || v > (values[i - 1] as number)));
}

async function sendNumbered(client: StompClient, destination: string, prefix: string, n: number): Promise<string[]> {
  const bodies = Array.from({ length: n }, (_, i) => `${prefix} ${i}`);
  // One at a time: the order of the SENDs is the order history must give back.
  for (const body of bodies) await client.send(destination, body);
  return bodies;
}

describe('cluster › history on every route with a store', function () {
  this.timeout(60_000);
  let mongo: MongoClient;

  before(async function () {
    mongo = new MongoClient(requireService('mongo'), { serverSelectionTimeoutMS: 5_000 });
    await mongo.connect();
  });

  after(async () => {
    await mongo?.close();
  });

  describe('redis route with --mongo (3 node processes)', () => {
    const ctx = useCluster('redis', ['redis', 'mongo'], { name: 'spec-hist-redis' });

    it('x-history: N on another node than the sender, nobody subscribed when it was sent', async () => {
      const topic = dest('topic', 'hist.last');
      const sender = await ctx.pool.stompit(ctx.node(0));
      const sent = await sendNumbered(sender, topic, 'm', 12);
      const reader = await ctx.pool.stompit(ctx.node(1));
      const sub = await reader.subscribe(topic, { 'x-history': '5' });
      await sub.inbox.count(5, 10_000, 'five replayed');
      await waitQuiet(200);
      expect(sub.inbox.bodies()).to.deep.equal(sent.slice(-5));
      const positions = offsets(sub.inbox.messages);
      expect(increasing(positions), `x-stream-offset ${positions.join(',')}`).to.equal(true);
      // Live messages go on after the replay, with the same numbering.
      await sender.send(topic, 'after');
      await sub.inbox.count(6, 10_000, 'the live message');
      expect(sub.inbox.messages[5]?.body).to.equal('after');
      expect(Number(sub.inbox.messages[5]?.headers['x-stream-offset'])).to.be.greaterThan(positions.at(-1) as number);
    });

    it('x-stream-offset: first, offset=N and x-resume-after read the whole stream, once, in order', async () => {
      const topic = dest('topic', 'hist.first');
      const sender = await ctx.pool.stompit(ctx.node(2));
      const sent = await sendNumbered(sender, topic, 'f', 8);
      const reader = await ctx.pool.stompjs(ctx.node(0));
      const all = await reader.subscribe(topic, { 'x-stream-offset': 'first' });
      await all.inbox.count(8, 10_000, 'the whole stream');
      await waitQuiet(200);
      expect(all.inbox.bodies()).to.deep.equal(sent);
      const positions = offsets(all.inbox.messages);
      expect(increasing(positions), `x-stream-offset ${positions.join(',')}`).to.equal(true);

      const third = all.inbox.messages[2] as Received;
      const fromOffset = await reader.subscribe(topic, { 'x-stream-offset': `offset=${third.headers['x-stream-offset']}` });
      const resumed = await reader.subscribe(topic, { 'x-resume-after': third.headers['message-id'] as string });
      await fromOffset.inbox.count(6, 10_000, 'from the third offset');
      await resumed.inbox.count(5, 10_000, 'after the third id');
      await waitQuiet(200);
      expect(fromOffset.inbox.bodies()).to.deep.equal(sent.slice(2));
      expect(resumed.inbox.bodies()).to.deep.equal(sent.slice(3));
    });

    it('message ids are equal on every node and in history, and MongoDB holds each message exactly once', async () => {
      const topic = dest('topic', 'hist.ids');
      const subs: Subscription[] = [];
      for (const n of ctx.cluster().nodes) subs.push(await (await ctx.pool.stompit(n)).subscribe(topic));
      const senders = [await ctx.pool.stompit(ctx.node(0)), await ctx.pool.stompjs(ctx.node(1))];
      // Two nodes send concurrently: positions come from one cluster-wide counter, so they never collide.
      const items = senders.map((_, s) => Array.from({ length: 20 }, (__, i) => ({ destination: topic, body: `s${s} ${i}` })));
      await Promise.all(senders.map((c, s) => sendAll(c, items[s] as { destination: string; body: string }[], 5)));
      for (const s of subs) await s.inbox.count(40, 10_000, 'every message live');
      await waitQuiet(200);
      const idsBy = (messages: readonly Received[]): Map<string, string> =>
        new Map(messages.map((m) => [m.body, `${m.headers['message-id']}@${m.headers['x-stream-offset']}`]));
      const first = idsBy(subs[0]?.inbox.messages ?? []);
      expect(first.size).to.equal(40);
      for (const s of subs.slice(1)) expect(idsBy(s.inbox.messages), 'same id and offset on every node').to.deep.equal(first);

      const documents = await historyOf(mongo, ctx.cluster().name).find({ destination: topic }).toArray();
      expect(documents.length, 'one document per message, whatever number of nodes received it').to.equal(40);
      const stored = new Map(documents.map((d) => [bodyOf(d), `${String(d._id)}@${String(d.position)}`]));
      expect(stored).to.deep.equal(first);
      expect(new Set(documents.map((d) => d.position as number)).size, 'distinct positions').to.equal(40);

      const reader = await ctx.pool.stompit(ctx.node(2));
      const replay = await reader.subscribe(topic, { 'x-stream-offset': 'first' });
      await replay.inbox.count(40, 10_000, 'the replay');
      await waitQuiet(200);
      expect(idsBy(replay.inbox.messages), 'replayed ids and offsets').to.deep.equal(first);
      expect(increasing(offsets(replay.inbox.messages))).to.equal(true);
      // Each sender's messages keep their order in the stream.
      for (const s of [0, 1]) {
        const mine = replay.inbox.bodies().filter((b) => b.startsWith(`s${s} `));
        expect(mine).to.deep.equal(items[s]?.map((i) => i.body));
      }
    });

    it('positions go on above the stored ones when Redis lost the counter', async () => {
      const topic = dest('topic', 'hist.counter');
      const first = await ctx.pool.stompit(ctx.node(0));
      const before = await sendNumbered(first, topic, 'c', 3);
      const redis = await connectRedis(requireService('redis'), silentLogger, 'spec');
      try {
        // As after a Redis restart without persistence: the destination's counter is gone.
        expect(await redis.sendCommand(['DEL', `${ctx.cluster().name}:seq:/:${topic}`])).to.equal(1);
      } finally {
        await redis.close();
      }
      // A node that never numbered this destination takes the floor from MongoDB; the first one from its own.
      await (await ctx.pool.stompjs(ctx.node(1))).send(topic, 'c from n2');
      await first.send(topic, 'c from n1');
      const reader = await ctx.pool.stompit(ctx.node(2));
      const all = await reader.subscribe(topic, { 'x-stream-offset': 'first' });
      await all.inbox.count(5, 10_000, 'the whole stream');
      await waitQuiet(200);
      expect(all.inbox.bodies()).to.deep.equal([...before, 'c from n2', 'c from n1']);
      const positions = offsets(all.inbox.messages);
      expect(increasing(positions), `x-stream-offset ${positions.join(',')}`).to.equal(true);
    });

    it('a replay joins the live stream under load with no gap and no duplicate', async () => {
      const topic = dest('topic', 'hist.join');
      const sender = await ctx.pool.stompit(ctx.node(0));
      const bodies = Array.from({ length: 300 }, (_, i) => `j ${i}`);
      const sending = sendAll(
        sender,
        bodies.map((body) => ({ destination: topic, body })),
        10,
      );
      const readers: { label: string; inbox: Received[] }[] = [];
      const joins = [];
      // Subscribers join while messages are stored and fanned out on another node.
      for (let i = 0; i < 3; i++) {
        await sleep(30);
        const client = await ctx.pool.stompit(ctx.node(1 + (i % 2)));
        joins.push(
          client
            .subscribe(topic, { 'x-stream-offset': 'first' })
            .then((s) => readers.push({ label: client.label, inbox: s.inbox.messages })),
        );
      }
      await Promise.all(joins);
      await sending;
      await until(() => readers.every((r) => r.inbox.length >= bodies.length), 20_000, 'every message on every joiner');
      await waitQuiet(300);
      for (const r of readers)
        expect(
          r.inbox.map((m) => m.body),
          `${r.label}: all, once, in order`,
        ).to.deep.equal(bodies);
    });
  });

  describe('local route with --mongo and no Kafka (1 node process)', () => {
    let cluster: StompedeCluster | undefined;
    const pool = new ClientPool();
    const node = (): StompedeNode => (cluster as StompedeCluster).node(0);

    before(async function () {
      this.timeout(120_000);
      cluster = await StompedeCluster.start({ name: 'spec-hist-local', size: 1, engines: ['mongo'], routes: 'local' });
    });

    afterEach(async function () {
      cluster?.printLogsOnFailure(this.currentTest);
      await pool.closeAll();
    });

    after(async function () {
      this.timeout(60_000);
      await pool.closeAll();
      await cluster?.close();
    });

    it('stores topic history in MongoDB, and reads it back after the node restarted', async function () {
      this.timeout(120_000);
      const topic = dest('topic', 'hist.local');
      const before = await sendNumbered(await pool.stompit(node()), topic, 'l', 6);
      const documents = await historyOf(mongo, (cluster as StompedeCluster).name)
        .find({ destination: topic })
        .toArray();
      expect(documents.length, 'stored in MongoDB once its RECEIPT came').to.equal(6);
      await pool.closeAll();

      await node().restart();
      const client = await pool.stompit(node());
      const replay = await client.subscribe(topic, { 'x-history': '100' });
      await replay.inbox.count(6, 10_000, 'the history from before the restart');
      // Numbering goes on where it stopped: a message sent now comes after the old ones.
      await client.send(topic, 'l after');
      await replay.inbox.count(7, 10_000, 'the live message');
      const all = await client.subscribe(topic, { 'x-stream-offset': 'first' });
      await all.inbox.count(7, 10_000, 'the whole stream').catch((error: unknown) => {
        throw new Error(`${String(error)}: ${all.inbox.messages.map((m) => `${m.body}@${m.headers['x-stream-offset']}`).join(', ')}`);
      });
      await waitQuiet(200);
      expect(replay.inbox.bodies()).to.deep.equal([...before, 'l after']);
      expect(all.inbox.bodies()).to.deep.equal([...before, 'l after']);
      expect(increasing(offsets(all.inbox.messages))).to.equal(true);
    });
  });
});
