import { expect } from 'chai';
import { BridgeError, backoffMs, RETRY_DEFAULTS } from '../../broker/ports/bus.js';
import { MemoryBus } from '../../bridge/memory-bus.js';
import { busConformance, envelope, Recorder, uniqueDestination } from './bus-conformance.js';

// Several brokers sharing one MemoryBus: a cluster inside one process.
busConformance(
  'memory (three nodes sharing one MemoryBus)',
  async () => {
    const bus = new MemoryBus();
    return { nodes: [bus, bus, bus], close: () => bus.close() };
  },
  { ordered: true, durable: false, crossNode: true, filters: false, deliveryMs: 2_000 },
);

describe('MemoryBus', function () {
  it('leave() removes one node and keeps the others', async function () {
    const bus = new MemoryBus();
    const a = new Recorder();
    const b = new Recorder();
    await bus.start(a.deliver);
    await bus.start(b.deliver);
    bus.leave(a.deliver);
    const d = uniqueDestination('topic', 'leave');
    await bus.publish(envelope(d, 'x'));
    expect(a.for(d)).to.deep.equal([]);
    expect(b.for(d).length).to.equal(1);
    await bus.close();
  });

  it('keeps an id and position the publisher chose', async function () {
    const bus = new MemoryBus();
    const r = new Recorder();
    await bus.start(r.deliver);
    const d = uniqueDestination('topic', 'ids');
    await bus.publish({ ...envelope(d, 'x'), id: 'kafka-0-7', position: 7 });
    expect(r.for(d)[0]).to.include({ id: 'kafka-0-7', position: 7 });
    await bus.close();
  });
});

describe('bus errors and backoff', function () {
  it('BridgeError carries a code, retriable and a cause', function () {
    const cause = new Error('socket closed');
    const e = new BridgeError('ERR_X', 'it failed', true, { cause });
    expect(e).to.be.instanceOf(Error);
    expect(e).to.include({ name: 'BridgeError', code: 'ERR_X', retriable: true, message: 'it failed' });
    expect(e.cause).to.equal(cause);
  });

  it('backoffMs grows exponentially within the jitter and stays under the cap', function () {
    const { initialMs, maxMs, factor, jitter } = RETRY_DEFAULTS;
    for (let attempt = 0; attempt < 12; attempt++) {
      const base = Math.min(maxMs, initialMs * factor ** attempt);
      for (let k = 0; k < 50; k++) {
        const ms = backoffMs(attempt);
        expect(ms).to.be.within(Math.floor(base * (1 - jitter)), Math.ceil(base * (1 + jitter)));
      }
    }
  });
});
