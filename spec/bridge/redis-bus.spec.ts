import { randomBytes } from 'node:crypto';
import { RedisBus } from '../../bridge/redis-bus.js';
import { RedisSharedQueues } from '../../bridge/redis-queues.js';
import { requireService } from '../support/services.js';
import { busConformance } from './bus-conformance.js';
import { sharedQueuesConformance } from './queues-conformance.js';

/** A cluster name per call: channels and queue keys of one cluster never meet another test's (or run's). */
function clusterName(label: string): string {
  return `spec-${label}-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
}

// One RedisBus per node, as each broker process holds its own. `filters`: Redis delivers only the channels a node
// subscribed to, so the cases that prove a node hears nothing it did not watch (and counts its watches) run here.
busConformance(
  'redis (three nodes, one RedisBus each)',
  async () => {
    const url = requireService('redis');
    const name = clusterName('bus');
    const nodes = ['a', 'b', 'c'].map((nodeId) => new RedisBus({ url, clusterName: name, nodeId }));
    return { nodes, close: async () => void (await Promise.all(nodes.map((n) => n.close()))) };
  },
  {
    ordered: true,
    durable: false,
    crossNode: true,
    filters: true,
    deliveryMs: 5_000,
    unreachable: (port) =>
      new RedisBus({ url: `redis://127.0.0.1:${port}`, clusterName: clusterName('void'), nodeId: 'x', connectTimeoutMs: 1_000 }),
  },
);

sharedQueuesConformance(
  'RedisSharedQueues (two nodes, one instance each)',
  async () => {
    const url = requireService('redis');
    const name = clusterName('queues');
    // A short node timeout, so that the case where a node vanishes with messages in flight ends in seconds.
    const make = (nodeId: string): RedisSharedQueues => new RedisSharedQueues({ url, clusterName: name, nodeId, nodeTimeoutMs: 1_000 });
    return { nodes: [make('a'), make('b')], make };
  },
  {
    recovers: true,
    deliveryMs: 5_000,
    unreachable: (port) =>
      new RedisSharedQueues({ url: `redis://127.0.0.1:${port}`, clusterName: clusterName('void'), nodeId: 'x', connectTimeoutMs: 1_000 }),
  },
);
