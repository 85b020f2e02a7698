/**
 * Native Kafka records both ways (issue #7 items 1-4), against the real Kafka of the test services. The other
 * side is an outside application: a plain kafkajs producer and consumer that know nothing of Stompede (no
 * stompede-* headers, keys that are business keys or none). The STOMP side is a raw STOMP 1.2 client over TCP.
 */
import { expect } from 'chai';
import { pino } from 'pino';
import { Kafka, logLevel, type Admin, type KafkaMessage, type Producer } from 'kafkajs';
import type { KafkaBus } from '../../bridge/kafka-bus.js';
import { brokerMetrics } from '../../broker/metrics.js';
import { parseRoutes } from '../../broker/ports/routes.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { connectedTcp, stompFrame, type RawFrame, type TcpRawClient } from '../support/raw.js';
import { requireService } from '../support/services.js';

describe('bridge › native Kafka records (outside producers and consumers)', function () {
  this.timeout(60_000);
  const brokers = requireService('kafka').split(',');
  const run = uniqueName('nat');
  const kafka = new Kafka({ clientId: `outside-${run}`, brokers, logLevel: logLevel.NOTHING });
  let admin: Admin;
  let producer: Producer;
  let node: TestBroker;
  const clients: TcpRawClient[] = [];
  /** Records the outside application wrote before the node ever ran. */
  const earlier = `${run}-orders.eu`;
  let producedAt = 0;

  before(async () => {
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: earlier, numPartitions: 1 }] });
    // Idempotent, as a producer that must not write a record twice is: kafkajs resends a whole request when one
    // partition of it failed (a topic created a moment ago has partitions whose leader it does not know yet), and
    // without sequence numbers the partitions that had succeeded get every record a second time.
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    producedAt = Date.now();
    await producer.send({
      topic: earlier,
      messages: [
        { value: 'no key' },
        { key: 'order-123', value: 'business key', headers: { 'content-type': 'application/json', traceparent: '00-abc-01' } },
        // Names another destination and vhost: must stay on the destination its topic maps to.
        {
          key: `/topic/${run}.chat.secret`,
          value: 'jumper',
          headers: { 'stompede-destination': `/topic/${run}.chat.secret`, 'stompede-vhost': 'other' },
        },
        { value: 'binary header', headers: { ok: 'yes', bin: Buffer.from([0xff, 0xfe, 0x00]) } },
      ],
    });
    node = await startBroker(
      { kafka: brokers.join(','), nodeId: `n-${run}` },
      {
        ...(process.env.NATIVE_DEBUG !== undefined ? { logger: pino({ level: 'debug' }, pino.destination(2)) } : {}),
        routes: parseRoutes(`/topic/${run}.orders.*=kafka:${run}-orders.{1},/topic/${run}.chat.**=kafka:${run}-chat,/queue/**=local`),
      },
    );
  });

  after(async () => {
    for (const c of clients) c.close();
    await node?.close();
    await producer?.disconnect();
    await admin?.disconnect();
  });

  async function stomp(): Promise<TcpRawClient> {
    const c = await connectedTcp(node.tcpPort);
    clients.push(c);
    return c;
  }

  /** MESSAGEs that arrived while a test waited for a RECEIPT (a replay may come before it). */
  const early = new Map<TcpRawClient, RawFrame[]>();

  async function receipt(c: TcpRawClient): Promise<void> {
    for (;;) {
      const f = await c.nextFrame(20_000);
      if (f.command === 'RECEIPT') return;
      expect(f.command, f.body.toString()).to.equal('MESSAGE');
      early.set(c, [...(early.get(c) ?? []), f]);
    }
  }

  async function subscribe(c: TcpRawClient, destination: string, headers: Record<string, string> = {}): Promise<void> {
    c.send(stompFrame('SUBSCRIBE', { id: destination, destination, receipt: `r-${destination}`, ...headers }));
    await receipt(c);
  }

  async function messages(c: TcpRawClient, n: number): Promise<RawFrame[]> {
    const got: RawFrame[] = early.get(c) ?? [];
    early.delete(c);
    while (got.length < n) {
      const f = await c.nextFrame(20_000);
      expect(f.command, f.body.toString()).to.equal('MESSAGE');
      got.push(f);
    }
    return got;
  }

  const bus = (): KafkaBus => node.broker.engines.log as KafkaBus;

  it('x-stream-offset: first reads records written before the node started, each where its topic maps', async () => {
    // The node reads a native topic from its start; wait until it has consumed the four records.
    const t0 = Date.now();
    while (bus().stats.consumed < 3 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 100));
    const c = await stomp();
    const destination = `/topic/${run}.orders.eu`;
    await subscribe(c, destination, { 'x-stream-offset': 'first' });
    const got = await messages(c, 4);
    expect(got.map((m) => m.body.toString())).to.deep.equal(['no key', 'business key', 'jumper', 'binary header']);
    for (const m of got) expect(m.headers.get('destination')).to.equal(destination);
    const [noKey, business, jumper, binary] = got as [RawFrame, RawFrame, RawFrame, RawFrame];
    expect(noKey.headers.get('kafka-key')).to.equal(undefined);
    expect(noKey.headers.get('message-id')).to.equal(`${earlier}-0-0`);
    expect(noKey.headers.get('x-stream-offset')).to.equal('0');
    expect(business.headers.get('kafka-key')).to.equal('order-123');
    expect(business.headers.get('content-type')).to.equal('application/json');
    expect(business.headers.get('traceparent')).to.equal('00-abc-01');
    expect(business.headers.get('message-id')).to.equal(`${earlier}-0-1`);
    expect(jumper.headers.get('kafka-key')).to.equal(`/topic/${run}.chat.secret`);
    expect(jumper.headers.get('stompede-vhost')).to.equal(undefined);
    expect(binary.headers.get('ok')).to.equal('yes');
    expect(binary.headers.has('bin')).to.equal(false);
    expect(bus().droppedRecords.get('header-not-utf8')).to.equal(1);
    const metrics = await brokerMetrics(node.broker).scrape();
    expect(metrics).to.match(/stompede_bridge_records_dropped_total\{reason="header-not-utf8"\} 1/);
  });

  it('x-stream-offset: offset=N | timestamp=T and x-history: N read the same records from their place', async () => {
    const destination = `/topic/${run}.orders.eu`;
    const fromOffset = await stomp();
    await subscribe(fromOffset, destination, { 'x-stream-offset': 'offset=2' });
    expect((await messages(fromOffset, 2)).map((m) => m.body.toString())).to.deep.equal(['jumper', 'binary header']);
    const lastTwo = await stomp();
    await subscribe(lastTwo, destination, { 'x-history': '2' });
    expect((await messages(lastTwo, 2)).map((m) => m.headers.get('x-stream-offset'))).to.deep.equal(['2', '3']);
    const fromTime = await stomp();
    await subscribe(fromTime, destination, { 'x-stream-offset': `timestamp=${Math.floor(producedAt / 1000) - 1}` });
    expect((await messages(fromTime, 4)).map((m) => m.headers.get('x-stream-offset'))).to.deep.equal(['0', '1', '2', '3']);
    const future = await stomp();
    await subscribe(future, destination, { 'x-stream-offset': `timestamp=${Math.floor(Date.now() / 1000) + 3600}` });
    await expectNothing(future, 500);
  });

  it('SUBSCRIBE /kafka/<topic> with x-stream-offset: first reads a topic filled while the node ran but did not read it', async () => {
    const topic = `${run}-late`;
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] });
    await producer.send({ topic, messages: [{ value: 'old 1' }, { key: 'b', value: 'old 2' }] });
    const live = await stomp();
    await subscribe(live, `/kafka/${topic}`);
    const replay = await stomp();
    await subscribe(replay, `/kafka/${topic}`, { 'x-stream-offset': 'first' });
    expect((await messages(replay, 2)).map((m) => m.body.toString())).to.deep.equal(['old 1', 'old 2']);
    // Live subscribers did not ask for the past: they get what comes next only.
    await producer.send({ topic, messages: [{ value: 'new' }] });
    expect((await messages(live, 1)).map((m) => m.body.toString())).to.deep.equal(['new']);
    expect((await messages(replay, 1)).map((m) => m.body.toString())).to.deep.equal(['new']);
  });

  it('a topic an outside producer creates while the node runs reaches a wildcard subscriber (topic discovery, own group)', async () => {
    const c = await stomp();
    await subscribe(c, `/topic/${run}.orders.*`);
    const topic = `${run}-orders.apac`;
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] });
    // Written before the node can have found the topic (it looks every 5 s): newer than its last look, so live.
    await producer.send({ topic, messages: [{ value: 'apac 1' }, { key: 'order-9', value: 'apac 2' }] });
    const got = await messages(c, 2);
    expect(got.map((m) => m.body.toString()).sort()).to.deep.equal(['apac 1', 'apac 2']);
    for (const m of got) expect(m.headers.get('destination')).to.equal(`/topic/${run}.orders.apac`);
  });

  it('delivers live records from any producer (no key, business key); one keyed with another destination does not jump', async () => {
    const c = await stomp();
    const secret = await stomp();
    await subscribe(c, `/topic/${run}.orders.eu`);
    await subscribe(secret, `/topic/${run}.chat.secret`);
    await producer.send({
      topic: earlier,
      messages: [
        { value: 'live no key' },
        { key: 'order-7', value: 'live business' },
        { key: `/topic/${run}.chat.secret`, value: 'live jumper' },
      ],
    });
    const got = await messages(c, 3);
    expect(got.map((m) => [m.body.toString(), m.headers.get('kafka-key')])).to.deep.equal([
      ['live no key', undefined],
      ['live business', 'order-7'],
      ['live jumper', `/topic/${run}.chat.secret`],
    ]);
    await expectNothing(secret, 1_000);
  });

  it('SEND becomes a native record: body bytes, each header by name, content-type, key from kafka-key', async () => {
    const destination = `/topic/${run}.orders.us`;
    const topic = `${run}-orders.us`;
    const c = await stomp();
    // The topic does not exist yet: the SEND creates it.
    c.send(
      stompFrame(
        'SEND',
        [
          ['destination', destination],
          ['content-type', 'text/plain'],
          ['kafka-key', 'order-9'],
          ['tag', 'a'],
          ['receipt', 'sent'],
        ],
        'hello kafka',
      ),
    );
    await receipt(c);
    const record = await readOne(topic);
    expect(record.value?.toString()).to.equal('hello kafka');
    expect(record.key?.toString()).to.equal('order-9');
    const h = record.headers ?? {};
    expect(String(h['content-type'])).to.equal('text/plain');
    expect(String(h.tag)).to.equal('a');
    expect(h['kafka-key']).to.equal(undefined);
    expect(String(h['stompede-destination'])).to.equal(destination);
  });

  it('native headers round-trip: a SEND comes back with its headers and kafka-key; a repeated record header stays repeated', async () => {
    const destination = `/topic/${run}.orders.jp`;
    const c = await stomp();
    await subscribe(c, destination);
    c.send(
      stompFrame(
        'SEND',
        [
          ['destination', destination],
          ['kafka-key', 'k-1'],
          ['tag', 'x'],
          ['content-type', 'text/x-a'],
        ],
        'round trip',
      ),
    );
    const [m] = (await messages(c, 1)) as [RawFrame];
    expect(m.body.toString()).to.equal('round trip');
    expect([m.headers.get('kafka-key'), m.headers.get('tag'), m.headers.get('content-type')]).to.deep.equal(['k-1', 'x', 'text/x-a']);
    // STOMP keeps the first of repeated headers; a record can carry several values of one name, and they all arrive.
    await producer.send({ topic: `${run}-orders.jp`, messages: [{ value: 'repeated', headers: { tag: ['x', 'y'] } }] });
    const [r] = (await messages(c, 1)) as [RawFrame];
    expect(r.raw.toString()).to.include('tag:x\ntag:y\n');
  });

  it('/kafka/<topic> addresses a topic directly, both ways', async () => {
    const topic = `${run}-direct`;
    const c = await stomp();
    await subscribe(c, `/kafka/${topic}`);
    await producer.send({ topic, messages: [{ key: 'k', value: 'from outside' }] });
    const [m] = (await messages(c, 1)) as [RawFrame];
    expect(m.body.toString()).to.equal('from outside');
    expect(m.headers.get('kafka-key')).to.equal('k');
    expect(m.headers.get('message-id')).to.match(new RegExp(`^${topic.replace(/\./g, '\\.')}-\\d+-0$`));
  });

  it("a destination whose filled-in topic breaks Kafka's rule is an ERROR to that SEND, and the node goes on", async () => {
    const c = await stomp();
    c.send(stompFrame('SEND', { destination: `/topic/${run}.orders.a@b`, receipt: 'bad' }, 'x'));
    const error = await c.nextFrame(20_000);
    expect(error.command).to.equal('ERROR');
    expect(error.body.toString()).to.include(`maps to Kafka topic "${run}-orders.a@b"`);
    const other = await stomp();
    await subscribe(other, `/topic/${run}.orders.ok`);
  });

  async function expectNothing(c: TcpRawClient, ms: number): Promise<void> {
    const f = await c.nextFrame(ms).catch(() => undefined);
    expect(f?.command, f?.body.toString()).to.equal(undefined);
  }

  /** The first record of a topic, as a plain consumer of its own group reads it. */
  async function readOne(topic: string): Promise<KafkaMessage> {
    const consumer = kafka.consumer({ groupId: `outside-${uniqueName('g')}` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      return await new Promise<KafkaMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no record on ${topic} within 30 s`)), 30_000);
        void consumer.run({
          eachMessage: ({ message }) => {
            clearTimeout(timer);
            resolve(message);
            return Promise.resolve();
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
  }
});
