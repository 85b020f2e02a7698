/**
 * Three Stompede node processes on a Redis Cluster of three masters (`infra/services.sh start redis-cluster`,
 * `--redis <seeds> --redis-mode cluster`): topics fan out through sharded pub/sub (SPUBLISH / SSUBSCRIBE, each
 * channel on the master of its slot), queues live in one hash slot (`{<cluster>}:` keys). The last test SIGKILLs
 * one master and shows what is lost while it is down and what recovers when it is back (docs/operations.md).
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { sleep, until } from '../support/cluster.js';
import { requireService } from '../support/services.js';
import { waitQuiet } from '../support/timing.js';
import type { Subscription } from './clients.js';
import { chatScenarios, dest, queueScenarios, useCluster } from './scenarios.js';

const run = promisify(execFile);

/** The masters of the test cluster, as `redis-cli` reaches them. */
function masters(): { host: string; port: number }[] {
  return requireService('redis-cluster')
    .split(',')
    .map((u) => new URL(u.trim()))
    .map((u) => ({ host: u.hostname, port: Number(u.port) }));
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

/** The port of the master serving `channel`'s slot, from the cluster's own slot table. */
async function ownerOf(channel: string): Promise<number> {
  const [first] = masters();
  const slot = Number(await cli(first?.port ?? 0, 'CLUSTER', 'KEYSLOT', channel));
  const slots = JSON.parse(await cli(first?.port ?? 0, '--json', 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  for (const [from, to, [, port]] of slots) if (slot >= from && slot <= to) return port;
  throw new Error(`no master serves slot ${slot}`);
}

describe('cluster › Redis Cluster of 3 masters, sharded pub/sub (3 node processes)', function () {
  this.timeout(60_000);
  const ctx = useCluster('redis', ['redis-cluster'], { name: 'spec-rcluster', exactProbes: true });
  const channelOf = (destination: string): string => `${ctx.cluster().name}:t:/:${destination}`;

  describe('chat', () => chatScenarios(ctx, { wildcards: false }));
  describe('queues', () => queueScenarios(ctx));

  it('topics use sharded channels on the master of their slot, never classic pub/sub', async () => {
    const rooms = [dest('topic', 'shard.a'), dest('topic', 'shard.b'), dest('topic', 'shard.c'), dest('topic', 'shard.d')];
    const alice = await ctx.pool.stompit(ctx.node(0));
    const bob = await ctx.pool.stompjs(ctx.node(1));
    const subs = await Promise.all(rooms.map((r) => bob.subscribe(r)));
    for (const r of rooms) await alice.send(r, `hello ${r}`);
    await Promise.all(subs.map((s) => s.inbox.count(1, 10_000)));
    const sharded = new Map<number, string[]>();
    const classic: string[] = [];
    for (const { port } of masters()) {
      sharded.set(
        port,
        (await cli(port, 'PUBSUB', 'SHARDCHANNELS', `${ctx.cluster().name}:t:*`)).split('\n').filter((l) => l !== ''),
      );
      classic.push(...(await cli(port, 'PUBSUB', 'CHANNELS', `${ctx.cluster().name}:t:*`)).split('\n').filter((l) => l !== ''));
    }
    expect(classic, 'classic channels').to.deep.equal([]);
    for (const r of rooms) {
      const owner = await ownerOf(channelOf(r));
      expect(sharded.get(owner), `sharded channels on the master of ${r}`).to.include(channelOf(r));
    }
    // Spread over the masters: the four channels are not all on one of them (their slots differ).
    const used = [...sharded.values()].filter((list) => list.some((c) => rooms.some((r) => c === channelOf(r))));
    const owners = new Set(await Promise.all(rooms.map((r) => ownerOf(channelOf(r)))));
    expect(used.length, `masters carrying the rooms (${JSON.stringify([...sharded])})`).to.equal(owners.size);
  });

  it('refuses a wildcard subscription on a redis route with an ERROR that says why', async () => {
    const client = await ctx.pool.stompit(ctx.node(0));
    const failed = await client.subscribe('/topic/wild.*').then(
      () => 'subscribed',
      (error: unknown) => String(error),
    );
    expect(failed).to.not.equal('subscribed');
    await until(() => client.errors.length > 0 || client.closed, 5_000, 'an ERROR');
    expect(client.errors.join(' ')).to.match(/wildcard subscriptions cannot use a Redis Cluster/);
  });

  it('a master SIGKILLed: its slots lose messages between nodes while it is down, the others do not; all recover', async function () {
    this.timeout(120_000);
    const dir = requireService('redis-cluster') && process.env.STOMPEDE_TEST_REDIS_CLUSTER_DIR;
    if (dir === undefined || dir === '') throw new Error('STOMPEDE_TEST_REDIS_CLUSTER_DIR is not set: run through infra/with-services.sh');
    // Two rooms whose channels live on different masters: the victim's, and a survivor's.
    const victim = masters()[1]?.port as number;
    let onVictim: string | undefined;
    let onSurvivor: string | undefined;
    for (let i = 0; (onVictim === undefined || onSurvivor === undefined) && i < 200; i++) {
      const d = dest('topic', 'kill');
      if ((await ownerOf(channelOf(d))) === victim) onVictim ??= d;
      else onSurvivor ??= d;
    }
    if (onVictim === undefined || onSurvivor === undefined) throw new Error('no destinations found on both sides');
    const sender = await ctx.pool.stompit(ctx.node(0), 'sender@n1');
    const local = await ctx.pool.stompit(ctx.node(0), 'local@n1');
    const remote = await ctx.pool.stompjs(ctx.node(2), 'remote@n3');
    const subs: Record<string, { local: Subscription; remote: Subscription }> = {};
    for (const d of [onVictim, onSurvivor]) subs[d] = { local: await local.subscribe(d), remote: await remote.subscribe(d) };
    const bodies = (s: Subscription): string[] => s.inbox.bodies();

    const pidFile = resolve(dir, String(victim), 'redis.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    await until(
      () =>
        cli(victim, 'PING').then(
          () => false,
          () => true,
        ),
      5_000,
      'the master to be gone',
    );
    try {
      // While it is down every SEND is still receipted: the redis route is fast, not durable. A message whose
      // channel is on the dead master reaches the subscribers of the sending node only; the others flow.
      for (let i = 0; i < 5; i++) {
        await sender.send(onVictim, `down-victim-${i}`);
        await sender.send(onSurvivor, `down-survivor-${i}`);
      }
      await until(() => bodies(subs[onSurvivor]!.remote).length >= 5, 10_000, 'survivor slot delivered on the remote node');
      await until(() => bodies(subs[onVictim]!.local).length >= 5, 10_000, 'victim slot delivered on the sending node');
      await waitQuiet(500);
      expect(bodies(subs[onSurvivor]!.local)).to.deep.equal([0, 1, 2, 3, 4].map((i) => `down-survivor-${i}`));
      expect(bodies(subs[onSurvivor]!.remote)).to.deep.equal([0, 1, 2, 3, 4].map((i) => `down-survivor-${i}`));
      expect(bodies(subs[onVictim]!.local)).to.deep.equal([0, 1, 2, 3, 4].map((i) => `down-victim-${i}`));
      expect(bodies(subs[onVictim]!.remote), 'lost on the other node while the master is down').to.deep.equal([]);
      // The shared queues live in the slot of the hash tag `{<cluster>}`: SENDs to queues fail with an ERROR while
      // that slot's master is down, and work while another master is.
      const queuesDown = (await ownerOf(`{${ctx.cluster().name}}:queues`)) === victim;
      // Its own connection: an ERROR closes the connection it answers.
      const queueSender = await ctx.pool.stompit(ctx.node(0), 'queue-sender@n1');
      const queueSend = await queueSender.send(dest('queue', 'kill'), 'queued').then(
        () => 'receipt',
        (error: unknown) => String(error),
      );
      if (queuesDown) expect(queueSend).to.include('could not queue the message');
      else expect(queueSend).to.equal('receipt');
    } finally {
      // Started again from its own config: same node id and slots (nodes.conf), no data.
      const child = spawn('redis-server', [resolve(dir, String(victim), 'redis.conf')], { stdio: 'ignore' });
      await new Promise((done) => child.once('exit', done));
    }
    await until(
      () =>
        cli(victim, 'CLUSTER', 'INFO').then(
          (info) => info.includes('cluster_state:ok'),
          () => false,
        ),
      30_000,
      'the cluster to be ok again',
    );
    // Recovered: node-redis reconnects to the master and subscribes its sharded channels again.
    let n = 0;
    await until(
      async () => {
        await sender.send(onVictim, `after-${n++}`);
        await sleep(200);
        return bodies(subs[onVictim]!.remote).some((b) => b.startsWith('after-'));
      },
      45_000,
      'delivery on the remote node again for the victim slot',
    );
    const mark = n;
    for (let i = 0; i < 5; i++) await sender.send(onVictim, `after-${mark + i}`);
    const expected = [0, 1, 2, 3, 4].map((i) => `after-${mark + i}`);
    await until(() => expected.every((b) => bodies(subs[onVictim]!.remote).includes(b)), 10_000, 'every message after recovery');
    expect(
      bodies(subs[onVictim]!.remote).filter((b) => b.startsWith('down-')),
      'never replayed',
    ).to.deep.equal([]);
  });
});
