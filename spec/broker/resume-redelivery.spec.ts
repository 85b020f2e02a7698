/**
 * A subscription resuming with `x-resume-after` had everything up to that message. A Kafka-route bus may deliver
 * records again after a rebalance (consumed a second time from the last committed offset), and a node that
 * restarted since their first delivery has no memory of their ids: the subscription itself must skip them.
 */
import { expect } from 'chai';
import type { BusCapabilities, ClusterBus, Deliver, PublishInput } from '../../broker/ports/bus.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { connectedTcp, stompFrame, type TcpRawClient } from '../support/raw.js';

/** A positioned bus the test drives: it delivers what the test hands it; ids are `<topic>-0-<offset>`. */
class ScriptedLog implements ClusterBus {
  readonly name = 'scripted';
  readonly capabilities: BusCapabilities = { ordered: true, durable: true, crossNode: true };
  readonly healthy = true;
  deliver: Deliver = () => undefined;
  constructor(readonly topic: string) {}
  async start(deliver: Deliver): Promise<void> {
    this.deliver = deliver;
  }
  async publish(_envelope: PublishInput): Promise<void> {}
  async watch(): Promise<void> {}
  unwatch(): void {}
  positionOf(_destination: string, id: string): number | undefined {
    return id.startsWith(`${this.topic}-0-`) ? Number(id.slice(`${this.topic}-0-`.length)) : undefined;
  }
  async close(): Promise<void> {}
  /** One record at `offset`, as the consumer of its partition hands it on. */
  record(destination: string, offset: number): void {
    const id = `${this.topic}-0-${offset}`;
    this.deliver({
      id,
      origin: 'n0',
      vhost: '/',
      destination,
      headers: [],
      body: Buffer.from(`m${offset}`),
      time: Date.now(),
      position: offset,
    });
  }
}

describe('broker › x-resume-after skips records a bus delivers again', () => {
  let b: TestBroker | undefined;
  let client: TcpRawClient | undefined;
  afterEach(async () => {
    client?.close();
    await b?.close();
    client = undefined;
    b = undefined;
  });

  async function bodiesAfterResume(resumeAfter: string): Promise<string[]> {
    const log = new ScriptedLog('chat');
    b = await startBroker({}, { log, routes: [{ pattern: '/topic/**', kind: 'kafka', target: 'chat' }] });
    const destination = `/topic/${uniqueName('resume')}`;
    client = await connectedTcp(b.tcpPort);
    client.send(stompFrame('SUBSCRIBE', { id: 's1', destination, 'x-resume-after': resumeAfter, receipt: 'r1' }));
    expect((await client.nextFrame()).command).to.equal('RECEIPT');
    // The records around the resume point come (again) from the bus, in offset order.
    for (const offset of [5, 6, 7, 8, 9]) log.record(destination, offset);
    const bodies: string[] = [];
    for (;;) {
      const frame = await client.nextFrame();
      expect(frame.command).to.equal('MESSAGE');
      bodies.push(frame.body.toString());
      if (bodies.at(-1) === 'm9') return bodies;
    }
  }

  it('drops live records at or below the resumed position, delivers the ones after it', async () => {
    expect(await bodiesAfterResume('chat-0-7')).to.deep.equal(['m8', 'm9']);
  });

  it('ignores an id that is not a record of the route (another topic): everything live is delivered', async () => {
    expect(await bodiesAfterResume('other-0-7')).to.deep.equal(['m5', 'm6', 'm7', 'm8', 'm9']);
  });
});
