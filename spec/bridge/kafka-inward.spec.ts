import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import { RecordRouter } from '../../bridge/kafka/inward.js';
import { encodeNativeRecord, encodeRecord } from '../../bridge/kafka-codec.js';
import { silentLogger } from '../../broker/ports/logger.js';
import { effectiveRoutes, parseRoutes, RouteTable } from '../../broker/ports/routes.js';
import type { PublishInput } from '../../broker/ports/bus.js';

function router(routes: string): RecordRouter {
  return new RecordRouter(new RouteTable(effectiveRoutes(parseRoutes(routes), { redis: false, kafka: true })), silentLogger);
}

/** A consumed record as kafkajs hands it (headers as Buffers). */
function consumed(message: { key?: string | null; value: string; headers?: Record<string, string | string[]> }, offset = 0): KafkaMessage {
  const headers: Record<string, Buffer | Buffer[]> = {};
  for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = Array.isArray(v) ? v.map((x) => Buffer.from(x)) : Buffer.from(v);
  return {
    key: message.key === undefined || message.key === null ? null : Buffer.from(message.key),
    value: Buffer.from(message.value),
    headers,
    timestamp: '1000',
    attributes: 0,
    offset: String(offset),
  };
}

function fromStomp(input: Partial<PublishInput> & { destination: string }, native = true): KafkaMessage {
  const full: PublishInput = { origin: 'n1', vhost: '/', headers: [], body: Buffer.from('b'), time: 1, ...input };
  const { message } = native ? encodeNativeRecord(full) : encodeRecord(full);
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = Array.isArray(v) ? v.map(String) : String(v);
  return consumed({ key: message.key === undefined || message.key === null ? null : String(message.key), value: 'b', headers });
}

describe('bridge › inward Kafka records (RecordRouter)', () => {
  it('a one-to-one template: the topic decides the destination; key and stompede headers cannot move it', () => {
    const r = router('/topic/orders.*=kafka:orders.{1}');
    const got = r.decode(
      'orders.eu',
      0,
      consumed({ key: '/topic/orders.us', value: 'x', headers: { 'stompede-destination': '/topic/orders.us', 'stompede-vhost': 'other' } }),
    );
    expect([got?.destination, got?.vhost, got?.id]).to.deep.equal(['/topic/orders.eu', '/', 'orders.eu-0-0']);
    expect(got?.headers).to.deep.equal([['kafka-key', '/topic/orders.us']]);
  });

  it('a many-to-one route: Stompede records come back to their destination; others are dropped and counted', () => {
    const r = router('/topic/chat.**=kafka:chat,/topic/**=kafka:rest');
    expect(r.decode('chat', 0, fromStomp({ destination: '/topic/chat.room.1' }))?.destination).to.equal('/topic/chat.room.1');
    // Naming a destination of another route (or another topic) does not move the record there.
    expect(r.decode('chat', 0, fromStomp({ destination: '/topic/elsewhere' }))).to.equal(undefined);
    expect(r.decode('chat', 0, consumed({ value: 'no key, no header' }))).to.equal(undefined);
    expect(Object.fromEntries(r.dropped)).to.deep.equal({ 'foreign-destination': 1, 'no-destination': 1 });
  });

  it('destination=key opts in to key-named destinations, within the route and topic only', () => {
    const r = router('/topic/chat.**=kafka:chat;destination=key,/topic/**=kafka:rest');
    expect(r.decode('chat', 0, consumed({ key: '/topic/chat.a', value: 'x' }))?.destination).to.equal('/topic/chat.a');
    expect(r.decode('chat', 0, consumed({ key: '/topic/other', value: 'x' }))).to.equal(undefined);
  });

  it('the default private routes keep their format and vhost, and refuse a record naming a destination they do not carry there', () => {
    const r = new RecordRouter(new RouteTable(effectiveRoutes([], { redis: false, kafka: true })), silentLogger);
    const ok = r.decode('stompede.topics', 0, fromStomp({ destination: '/topic/a', vhost: 'chat', headers: [['x', '1']] }, false));
    expect([ok?.destination, ok?.vhost, ok?.headers]).to.deep.equal(['/topic/a', 'chat', [['x', '1']]]);
    expect(r.decode('stompede.topics', 0, fromStomp({ destination: '/queue/a' }, false))).to.equal(undefined);
    expect(r.isPrivate('stompede.topics')).to.equal(true);
    expect(r.isPrivate('orders')).to.equal(false);
  });

  it('direct addressing maps any other topic to /kafka/<topic>, after the routes that name it', () => {
    const r = router('/topic/orders.*=kafka:orders.{1}');
    expect(r.decode('payments', 0, consumed({ value: 'x' }))?.destination).to.equal('/kafka/payments');
    expect(r.decode('orders.eu', 0, consumed({ value: 'x' }))?.destination).to.equal('/topic/orders.eu');
    expect(r.templateTopics.map(String)).to.deep.equal(['/^orders\\.[^./]*$/']);
  });
});
