/**
 * The Redis bus on named channels against the real Redis, with a plain node-redis client playing an application
 * that knows nothing of Stompede. The channel map is written here by hand (`/topic/<prefix>.<x>` ↔ `<prefix>.<x>`),
 * so this checks the bus's own contract; spec/cluster/redis-native.spec.ts checks the same through routes and nodes.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createClient } from 'redis';
import type { BusEnvelope } from '../../broker/ports/bus.js';
import { RedisBus, type RedisChannels, type RedisFormat } from '../../bridge/redis-bus.js';
import { requireService } from '../support/services.js';
import { waitQuiet } from '../support/timing.js';

type Plain = ReturnType<typeof createClient>;

/** `/topic/<prefix>.<one segment>` ↔ channel `<prefix>.<segment>`, in the vhost `/` only. */
function channelsFor(prefix: string, format: RedisFormat): RedisChannels {
  const destination = new RegExp(`^/topic/${prefix.replace(/\./g, '\\.')}\\.([^./*#]+)$`);
  const channel = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.([^./]+)$`);
  return {
    outward: (vhost, d) => {
      const m = vhost === '/' ? destination.exec(d) : null;
      return m === null ? undefined : { channel: `${prefix}.${m[1]}`, format };
    },
    pattern: (vhost, d) => (vhost === '/' && d === `/topic/${prefix}.*` ? `${prefix}.*` : undefined),
    inward: (c) => {
      const m = channel.exec(c);
      return m === null ? [] : [{ vhost: '/', destination: `/topic/${prefix}.${m[1]}`, format }];
    },
  };
}

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const giveUpAt = Date.now() + ms;
  while (!check()) {
    if (Date.now() > giveUpAt) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('redis bus › named channels (real Redis, plain client)', function () {
  this.timeout(20_000);
  let url: string;
  let prefix: string;
  const buses: RedisBus[] = [];
  const plains: Plain[] = [];
  const got: BusEnvelope[][] = [];
  /** Each bus's dropped-message counts, as `stompede_bridge_records_dropped_total` reads them. */
  const dropped = (): Record<string, number>[] => buses.map((b) => Object.fromEntries(b.droppedRecords));

  async function nodes(format: RedisFormat, n = 3): Promise<RedisBus[]> {
    const made = [];
    for (let i = 0; i < n; i++) {
      const bus = new RedisBus({ url, clusterName: `spec-native-${prefix}`, nodeId: `n${i + 1}`, channels: channelsFor(prefix, format) });
      const inbox: BusEnvelope[] = [];
      await bus.start((e) => inbox.push(e));
      buses.push(bus);
      got.push(inbox);
      made.push(bus);
    }
    return made;
  }

  async function plain(): Promise<Plain> {
    const client = createClient({ url });
    await client.connect();
    plains.push(client);
    return client;
  }

  beforeEach(() => {
    url = requireService('redis');
    prefix = `native${randomBytes(4).toString('hex')}`;
  });

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
    await Promise.all(plains.splice(0).map((c) => c.close()));
    got.length = 0;
  });

  it('raw: a plain PUBLISH reaches every node once, mapped to its destination, as the exact bytes without headers', async () => {
    const all = await nodes('raw');
    await Promise.all(all.map((b) => b.watch('/', `/topic/${prefix}.sports`)));
    const app = await plain();
    expect(await app.publish(`${prefix}.sports`, 'hello')).to.equal(3);
    await until(() => got.every((inbox) => inbox.length === 1), 'one delivery per node');
    await waitQuiet(200);
    for (const inbox of got) {
      expect(inbox.length).to.equal(1);
      const e = inbox[0] as BusEnvelope;
      expect([e.vhost, e.destination, e.body.toString(), e.headers]).to.deep.equal(['/', `/topic/${prefix}.sports`, 'hello', []]);
    }
    // No id travels in a raw payload: each node names the message itself (documented).
    expect(new Set(got.map((inbox) => inbox[0]?.id)).size).to.equal(3);
  });

  it('raw: a publish through the bus is read by a plain SUBSCRIBE as exactly the body bytes', async () => {
    const [bus] = await nodes('raw', 1);
    const app = await plain();
    const seen: Buffer[] = [];
    await app.subscribe(`${prefix}.sports`, (message) => seen.push(message), true);
    const body = Buffer.from([0x00, 0xff, 0x0a, 0x3a, 0x5c]);
    await bus?.publish({ origin: 'n1', vhost: '/', destination: `/topic/${prefix}.sports`, headers: [['x-a', '1']], body, time: 1 });
    await until(() => seen.length === 1, 'the plain subscriber to hear it');
    expect((seen[0] as Buffer).equals(body)).to.equal(true);
  });

  it('one PUBLISH is delivered once on a node that watches it both exactly and by pattern; the same bytes twice, twice', async () => {
    const [bus] = await nodes('raw', 1);
    await bus?.watch('/', `/topic/${prefix}.sports`);
    await bus?.watch('/', `/topic/${prefix}.*`);
    const app = await plain();
    // Two subscriptions of this node hear each PUBLISH (Redis counts receivers per subscription).
    expect(await app.publish(`${prefix}.sports`, 'same')).to.equal(2);
    await app.publish(`${prefix}.sports`, 'same');
    await app.publish(`${prefix}.news`, 'other');
    await app.publish(`${prefix}.sports`, 'same');
    await until(() => (got[0] as BusEnvelope[]).length >= 4, 'four deliveries');
    await waitQuiet(300);
    expect((got[0] as BusEnvelope[]).map((e) => `${e.destination} ${e.body.toString()}`)).to.deep.equal([
      `/topic/${prefix}.sports same`,
      `/topic/${prefix}.sports same`,
      `/topic/${prefix}.news other`,
      `/topic/${prefix}.sports same`,
    ]);
  });

  it('a pattern hears channels its route cannot map back: each is dropped and counted as unmapped', async () => {
    const [bus] = await nodes('raw', 1);
    await bus?.watch('/', `/topic/${prefix}.*`);
    const app = await plain();
    await app.publish(`${prefix}.a.b`, 'two segments');
    await app.publish(`${prefix}.ok`, 'mapped');
    await until(() => (got[0] as BusEnvelope[]).length === 1, 'the mapped one');
    expect(dropped()).to.deep.equal([{ unmapped: 1 }]);
  });

  it('json: headers and a base64 body both ways; a stable message-id is the same on every node', async () => {
    const all = await nodes('json');
    await Promise.all(all.map((b) => b.watch('/', `/topic/${prefix}.orders`)));
    const app = await plain();
    const reader = await plain();
    const seen: string[] = [];
    await reader.subscribe(`${prefix}.orders`, (message) => seen.push(message));
    const binary = Buffer.from([0xc3, 0x28, 0xff]);
    await all[0]?.publish({
      origin: 'n1',
      vhost: '/',
      destination: `/topic/${prefix}.orders`,
      headers: [
        ['content-type', 'application/octet-stream'],
        ['tag', 'a'],
        ['tag', 'b'],
      ],
      body: binary,
      time: 1,
    });
    await until(() => seen.length === 1 && got.every((inbox) => inbox.length === 1), 'the plain subscriber and every node');
    const json = JSON.parse(seen[0] as string) as { headers: Record<string, unknown>; body: string; base64?: boolean };
    expect(json.base64).to.equal(true);
    expect(Buffer.from(json.body, 'base64').equals(binary)).to.equal(true);
    expect(json.headers).to.include({ 'content-type': 'application/octet-stream' });
    expect(json.headers.tag).to.deep.equal(['a', 'b']);
    const ids = got.map((inbox) => inbox[0]?.id);
    expect(ids[0]).to.equal(json.headers['message-id']);
    expect(new Set(ids).size, 'one id on every node').to.equal(1);
    for (const inbox of got) {
      const e = inbox[0] as BusEnvelope;
      expect(e.body.equals(binary)).to.equal(true);
      expect(e.headers).to.deep.equal([
        ['content-type', 'application/octet-stream'],
        ['tag', 'a'],
        ['tag', 'b'],
      ]);
    }

    // Inward from the application: its headers become STOMP headers; its message-id names the message everywhere.
    await app.publish(
      `${prefix}.orders`,
      JSON.stringify({ headers: { 'message-id': 'order-42', 'content-type': 'text/plain' }, body: 'é' }),
    );
    await until(() => got.every((inbox) => inbox.length === 2), 'the application message on every node');
    for (const inbox of got) {
      const e = inbox[1] as BusEnvelope;
      expect([e.id, e.body.toString(), e.headers]).to.deep.equal(['order-42', 'é', [['content-type', 'text/plain']]]);
    }
  });

  it('json: a payload that is not our JSON is dropped, counted as json-invalid on every node, and the next one flows', async () => {
    const all = await nodes('json');
    await Promise.all(all.map((b) => b.watch('/', `/topic/${prefix}.orders`)));
    const app = await plain();
    await app.publish(`${prefix}.orders`, 'not json');
    await app.publish(`${prefix}.orders`, '{"body":42}');
    await app.publish(`${prefix}.orders`, '{"body":"fine"}');
    await until(() => got.every((inbox) => inbox.length === 1), 'the good one on every node');
    expect(got.map((inbox) => inbox[0]?.body.toString())).to.deep.equal(['fine', 'fine', 'fine']);
    expect(dropped()).to.deep.equal([{ 'json-invalid': 2 }, { 'json-invalid': 2 }, { 'json-invalid': 2 }]);
  });

  it('other vhosts keep private channels: nothing of theirs reaches the named channel', async () => {
    const [bus] = await nodes('raw', 1);
    const app = await plain();
    const seen: string[] = [];
    await app.subscribe(`${prefix}.sports`, (message) => seen.push(message));
    await bus?.watch('other', `/topic/${prefix}.sports`);
    await bus?.publish({
      origin: 'n1',
      vhost: 'other',
      destination: `/topic/${prefix}.sports`,
      headers: [],
      body: Buffer.from('x'),
      time: 1,
    });
    await until(() => (got[0] as BusEnvelope[]).length === 1, 'delivery in the other vhost');
    await waitQuiet(200);
    expect(seen).to.deep.equal([]);
    expect((got[0] as BusEnvelope[])[0]?.vhost).to.equal('other');
  });
});
