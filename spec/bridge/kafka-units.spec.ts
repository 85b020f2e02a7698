import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { silentLogger } from '../../broker/ports/logger.js';
import { BridgeError } from '../../broker/ports/bus.js';
import type { HistoryRecord } from '../../broker/ports/history.js';
import { HistoryWriter, canStage, stageFirst, storeFirst, type HistoryCounters } from '../../bridge/kafka/history-writer.js';
import type { Staged } from '../../bridge/cached-history.js';
import { OffsetCommits, PartitionProgress, type CommitOffset, type Entry } from '../../bridge/kafka/partition-progress.js';
import { ProducerBatcher, type Queued } from '../../bridge/kafka/producer-batcher.js';
import { AssignerProtocol } from 'kafkajs';
import { planAssignment, subscribersByTopic } from '../../bridge/kafka/assigner.js';

// The Kafka bus's pure parts, without Kafka: sends, commits and appends are fakes the tests settle by hand.

interface Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending callback of this turn and the next run (promise chains, setImmediate). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await turn();
}

async function until(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const giveUpAt = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(1);
  }
}

function record(id: string): HistoryRecord {
  return { id, origin: 'n1', vhost: '/', destination: '/topic/units', headers: [], body: Buffer.from(id), time: 0, position: 0 };
}

/** A fake producer send: records each batch and hands the test the promise that settles it. */
class FakeSend {
  readonly batches: { messages: string[]; bytes: number; done: Deferred }[] = [];
  readonly send = (batch: ReadonlyArray<Queued<string>>, bytes: number): Promise<void> => {
    const done = deferred();
    this.batches.push({ messages: batch.map((q) => q.message), bytes, done });
    return done.promise;
  };

  sizes(): number[] {
    return this.batches.map((b) => b.messages.length);
  }
}

describe('bridge › kafka › ProducerBatcher', () => {
  it('sends a full batch at once and the next one as soon as the one in flight settles, not after lingerMs', async () => {
    const fake = new FakeSend();
    const batcher = new ProducerBatcher<string>({ lingerMs: 60_000, maxBatchMessages: 2, maxBatchBytes: 1_000_000, send: fake.send });
    const started = Date.now();
    const published = ['a', 'b', 'c', 'd', 'e'].map((m) => batcher.add('t', m, 10));
    expect(fake.sizes(), 'a full batch leaves without waiting for the linger').to.deep.equal([2]);
    expect(batcher.queued).to.equal(3);
    // One batch in flight at a time: nothing more leaves until it settles.
    await settle();
    expect(fake.sizes()).to.deep.equal([2]);
    fake.batches[0]?.done.resolve();
    await until(() => fake.batches.length === 2, 'the second batch');
    fake.batches[1]?.done.resolve();
    await until(() => fake.batches.length === 3, 'the third batch');
    fake.batches[2]?.done.resolve();
    await Promise.all(published);
    expect(fake.batches.map((b) => b.messages)).to.deep.equal([['a', 'b'], ['c', 'd'], ['e']]);
    expect(Date.now() - started, 'the 60 s linger was never waited for').to.be.below(30_000);
  });

  it('stops a batch before the record that would pass maxBatchBytes; a larger record goes alone', async () => {
    const fake = new FakeSend();
    const batcher = new ProducerBatcher<string>({ lingerMs: 0, maxBatchMessages: 100, maxBatchBytes: 700, send: fake.send });
    const published = [batcher.add('t', 'a', 300), batcher.add('t', 'b', 300), batcher.add('t', 'c', 300), batcher.add('t', 'big', 1_000)];
    // 900 queued bytes reached the limit on the third add: the batch left then, with what fit.
    expect(fake.batches.map((b) => [b.messages, b.bytes])).to.deep.equal([[['a', 'b'], 600]]);
    fake.batches[0]?.done.resolve();
    await until(() => fake.batches.length === 2, 'the second batch');
    fake.batches[1]?.done.resolve();
    await until(() => fake.batches.length === 3, 'the third batch');
    fake.batches[2]?.done.resolve();
    await Promise.all(published);
    expect(fake.batches.map((b) => [b.messages, b.bytes])).to.deep.equal([
      [['a', 'b'], 600],
      [['c'], 300],
      [['big'], 1_000],
    ]);
  });

  it('lingerMs 0 sends what one turn of the event loop published as one batch', async () => {
    const fake = new FakeSend();
    const batcher = new ProducerBatcher<string>({ lingerMs: 0, maxBatchMessages: 100, maxBatchBytes: 1_000_000, send: fake.send });
    const published = ['a', 'b', 'c'].map((m) => batcher.add('t', m, 1));
    expect(fake.batches, 'nothing leaves within the turn').to.have.length(0);
    await until(() => fake.batches.length === 1, 'the batch');
    fake.batches[0]?.done.resolve();
    await Promise.all(published);
    expect(fake.batches.map((b) => b.messages)).to.deep.equal([['a', 'b', 'c']]);
  });

  it('holds a lone publish for lingerMs, then sends it', async () => {
    const fake = new FakeSend();
    const batcher = new ProducerBatcher<string>({ lingerMs: 400, maxBatchMessages: 100, maxBatchBytes: 1_000_000, send: fake.send });
    const started = Date.now();
    const published = batcher.add('t', 'a', 1);
    await settle();
    expect(fake.batches, 'held for company').to.have.length(0);
    await until(() => fake.batches.length === 1, 'the lingered batch', 10_000);
    // Timers never fire early (allow Node's 1 ms rounding); no upper bound beyond the generous wait above.
    expect(Date.now() - started).to.be.at.least(390);
    fake.batches[0]?.done.resolve();
    await published;
  });

  it('rejects every publish of a failed batch with its error, and goes on with the next batch', async () => {
    const fake = new FakeSend();
    const batcher = new ProducerBatcher<string>({ lingerMs: 0, maxBatchMessages: 2, maxBatchBytes: 1_000_000, send: fake.send });
    const outcomes = ['a', 'b', 'c'].map((m) =>
      batcher.add('t', m, 1).then(
        () => 'ok',
        (e: unknown) => e,
      ),
    );
    const failure = new BridgeError('ERR_TEST', 'not acknowledged', true);
    fake.batches[0]?.done.reject(failure);
    await until(() => fake.batches.length === 2, 'the batch after the failed one');
    fake.batches[1]?.done.resolve();
    expect(await Promise.all(outcomes)).to.deep.equal([failure, failure, 'ok']);
  });

  it('wraps a send that throws a non-Error, and a send that throws synchronously', async () => {
    let calls = 0;
    const batcher = new ProducerBatcher<string>({
      lingerMs: 0,
      maxBatchMessages: 1,
      maxBatchBytes: 1_000_000,
      send: () => {
        calls++;
        if (calls === 1) throw new Error('sync throw');
        // A send that rejects with something other than an Error, as a foreign client library might.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        return Promise.reject('a string');
      },
    });
    const first = await batcher.add('t', 'a', 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    const second = await batcher.add('t', 'b', 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(first).to.be.instanceOf(Error).with.property('message', 'sync throw');
    expect(second).to.be.instanceOf(Error).with.property('message', 'a string');
  });

  it('drain() sends everything queued; rejectQueued() rejects what is left unsent and cancels the linger', async () => {
    const fake = new FakeSend();
    const batcher = new ProducerBatcher<string>({ lingerMs: 60_000, maxBatchMessages: 2, maxBatchBytes: 1_000_000, send: fake.send });
    const sent = ['a', 'b', 'c'].map((m) => batcher.add('t', m, 1));
    let drained = false;
    const draining = batcher.drain().then(() => (drained = true));
    fake.batches[0]?.done.resolve();
    await until(() => fake.batches.length === 2, 'drain to send the lingering rest');
    expect(drained, 'drain waits for the last batch').to.equal(false);
    fake.batches[1]?.done.resolve();
    await draining;
    await Promise.all(sent);

    const late = new ProducerBatcher<string>({ lingerMs: 50, maxBatchMessages: 100, maxBatchBytes: 1_000_000, send: fake.send });
    const unsent = late.add('t', 'x', 1).then(
      () => 'sent',
      (e: unknown) => e,
    );
    const closed = new BridgeError('ERR_CLOSED', 'closed', false);
    late.rejectQueued(closed);
    expect(await unsent).to.equal(closed);
    await sleep(150);
    expect(fake.batches, 'the cancelled linger sent nothing').to.have.length(2);
  });

  it('throws TypeError for impossible limits', () => {
    const send = (): Promise<void> => Promise.resolve();
    expect(() => new ProducerBatcher({ lingerMs: -1, maxBatchMessages: 1, maxBatchBytes: 1, send })).to.throw(TypeError, /lingerMs/);
    expect(() => new ProducerBatcher({ lingerMs: 0, maxBatchMessages: 0, maxBatchBytes: 1, send })).to.throw(TypeError, /maxBatchMessages/);
    expect(() => new ProducerBatcher({ lingerMs: 0, maxBatchMessages: 1, maxBatchBytes: 0.5, send })).to.throw(TypeError, /maxBatchBytes/);
  });
});

describe('bridge › kafka › PartitionProgress', () => {
  it('makes only the contiguous done prefix committable when records finish out of order', () => {
    const p = new PartitionProgress('t', 0, 10);
    const [e10, e11, e12, e13, e14] = [10, 11, 12, 13, 14].map((offset) => p.track(offset, 2)) as [Entry, Entry, Entry, Entry, Entry];
    expect(p.committable).to.equal(10);
    p.step(e12);
    p.step(e12);
    p.step(e11);
    expect(p.committable, '10 is not done: nothing after it counts').to.equal(10);
    p.step(e10);
    expect(p.committable, '10 has one step left').to.equal(10);
    p.step(e10);
    expect(p.committable, '10 done, 11 half done').to.equal(11);
    p.step(e11);
    expect(p.committable, '11 done, and 12 was already done').to.equal(13);
    p.step(e14);
    p.step(e14);
    p.step(e13);
    expect(p.committable).to.equal(13);
    p.step(e13);
    expect(p.committable).to.equal(15);
  });

  it('passes over records that owe nothing (undecodable) as soon as they are at the head', () => {
    const p = new PartitionProgress('t', 3, 0);
    const first = p.track(0, 1);
    p.track(1, 0);
    expect(p.committable).to.equal(0);
    p.step(first);
    expect(p.committable).to.equal(2);
    p.track(2, 0);
    expect(p.committable, 'nothing pending before it').to.equal(3);
  });

  it('stays exact across its compaction of long runs of finished records', () => {
    const p = new PartitionProgress('t', 0, 0);
    const entries = Array.from({ length: 5_000 }, (_, i) => p.track(i, 1));
    // Everything but offset 3000 finishes, in reverse order, then 3000 itself.
    for (let i = 4_999; i >= 0; i--) if (i !== 3_000) p.step(entries[i] as Entry);
    expect(p.committable).to.equal(3_000);
    p.track(5_000, 1);
    p.step(entries[3_000] as Entry);
    expect(p.committable).to.equal(5_000);
  });
});

describe('bridge › kafka › OffsetCommits', () => {
  interface CommitHarness {
    commits: OffsetCommits;
    calls: { offsets: CommitOffset[]; done: Deferred }[];
    committed: CommitOffset[][];
    failed: unknown[];
  }

  function harness(timeoutMs?: number): CommitHarness {
    const calls: CommitHarness['calls'] = [];
    const committed: CommitOffset[][] = [];
    const failed: unknown[] = [];
    const commits = new OffsetCommits({
      commit: (offsets) => {
        const done = deferred();
        calls.push({ offsets: [...offsets], done });
        return done.promise;
      },
      committed: (offsets) => committed.push([...offsets]),
      failed: (error) => failed.push(error),
      timeoutMs,
    });
    return { commits, calls, committed, failed };
  }

  it('commits each partition with progress up to its next offset to read, and nothing when nothing is due', async () => {
    const { commits, calls, committed } = harness();
    await commits.commit();
    expect(calls, 'nothing tracked').to.have.length(0);
    const a = commits.partition('t', 0, 5);
    const b = commits.partition('t', 1, 0);
    commits.partition('u', 0, 9); // tracked nothing: not due
    a.step(a.track(5, 1));
    a.track(6, 1); // not done
    b.step(b.track(0, 1));
    const done = commits.commit();
    expect(calls.map((c) => c.offsets)).to.deep.equal([
      [
        { topic: 't', partition: 0, offset: 6 },
        { topic: 't', partition: 1, offset: 1 },
      ],
    ]);
    calls[0]?.done.resolve();
    await done;
    expect(committed).to.deep.equal([calls[0]?.offsets]);
    await commits.commit();
    expect(calls, 'already committed: nothing due').to.have.length(1);
  });

  it('keeps one commit in flight; a failed one is retried with the same offsets by the next commit()', async () => {
    const { commits, calls, committed, failed } = harness();
    const p = commits.partition('t', 0, 0);
    p.step(p.track(0, 1));
    const first = commits.commit();
    expect(commits.commit(), 'the one in flight is handed back').to.equal(first);
    expect(calls).to.have.length(1);
    const error = new Error('rebalancing');
    calls[0]?.done.reject(error);
    await first;
    expect(failed).to.deep.equal([error]);
    expect(committed).to.have.length(0);
    const second = commits.commit();
    const same = [{ topic: 't', partition: 0, offset: 1 }];
    expect(calls.map((c) => c.offsets)).to.deep.equal([same, same]);
    calls[1]?.done.resolve();
    await second;
    expect(committed).to.have.length(1);
  });

  it('a commit left unanswered (kafkajs retrying it through a rebalance) does not hold back the next one', async () => {
    const { commits, calls, committed, failed } = harness(50);
    const p = commits.partition('t', 0, 0);
    p.step(p.track(0, 1));
    const stuck = commits.commit();
    await stuck;
    expect(String(failed[0])).to.include('no answer to an offset commit within 50 ms');
    const next = commits.commit();
    expect(next, 'a new commit, not the stuck one').to.not.equal(stuck);
    calls[1]?.done.resolve();
    await next;
    expect(committed).to.deep.equal([[{ topic: 't', partition: 0, offset: 1 }]]);
    // A new group generation lets go of the commit in flight at once: its own progress is committed next.
    const q = commits.partition('t', 1, 0);
    q.step(q.track(0, 1));
    const old = commits.commit();
    commits.reset();
    const fresh = commits.partition('t', 1, 7);
    fresh.step(fresh.track(7, 1));
    expect(commits.commit()).to.not.equal(old);
    expect(calls.map((c) => c.offsets)).to.deep.equal([
      [{ topic: 't', partition: 0, offset: 1 }],
      [{ topic: 't', partition: 0, offset: 1 }],
      [{ topic: 't', partition: 1, offset: 1 }],
      [{ topic: 't', partition: 1, offset: 8 }],
    ]);
  });

  it('flush() also commits what finished while a commit was in flight', async () => {
    const { commits, calls } = harness();
    const p = commits.partition('t', 0, 0);
    const e0 = p.track(0, 1);
    const e1 = p.track(1, 1);
    p.step(e0);
    void commits.commit(); // the timer's commit, in flight with offset 1
    p.step(e1); // finishes meanwhile (say, the last history append close waited for)
    const flushed = commits.flush();
    calls[0]?.done.resolve();
    await until(() => calls.length === 2, 'the second commit of flush()');
    calls[1]?.done.resolve();
    await flushed;
    expect(calls.map((c) => c.offsets[0]?.offset)).to.deep.equal([1, 2]);
  });

  it('starts a partition over when a batch re-reads offsets it tracked, and forgets all on reset()', () => {
    const { commits } = harness();
    const p = commits.partition('t', 0, 0);
    p.track(0, 1);
    p.track(1, 1);
    expect(commits.partition('t', 0, 2), 'the next batch continues the partition').to.equal(p);
    const reread = commits.partition('t', 0, 1);
    expect(reread, 'a re-read starts over').to.not.equal(p);
    expect(reread.committable).to.equal(1);
    commits.reset();
    expect(commits.partition('t', 0, 2)).to.not.equal(reread);
  });
});

describe('bridge › kafka › HistoryWriter', () => {
  interface Harness {
    writer: HistoryWriter;
    appends: { id: string; done: Deferred }[];
    counters: HistoryCounters;
    retries: { attempt: number; delayMs: number }[];
    progress: PartitionProgress;
    enqueue(offset: number): void;
  }

  function harness(concurrency: number): Harness {
    const appends: { id: string; done: Deferred }[] = [];
    const counters: HistoryCounters = { historyAppended: 0, dropped: 0 };
    const retries: { attempt: number; delayMs: number }[] = [];
    const writer = new HistoryWriter({
      append: (r) => {
        const done = deferred();
        appends.push({ id: r.id, done });
        return done.promise;
      },
      storeName: 'fake',
      concurrency,
      counters,
      logger: silentLogger,
      retry: (attempt, delayMs) => retries.push({ attempt, delayMs }),
      backoff: (attempt) => 5 * (attempt + 1),
    });
    const progress = new PartitionProgress('t', 0, 0);
    // Each record owes its history step only (delivery is done), as after a delivery without storing first.
    const enqueue = (offset: number): void => writer.enqueue({ envelope: record(`r${offset}`), entry: progress.track(offset, 1) });
    return { writer, appends, counters, retries, progress, enqueue };
  }

  it('appends at most `concurrency` at a time, in order, and releases offsets as they are stored', async () => {
    const h = harness(2);
    for (let i = 0; i < 5; i++) h.enqueue(i);
    expect(h.appends.map((a) => a.id)).to.deep.equal(['r0', 'r1']);
    expect(h.writer.pending, 'queued and in flight: what backpressure counts').to.equal(5);
    h.appends[1]?.done.resolve();
    await until(() => h.appends.length === 3, 'the third append');
    expect(h.progress.committable, 'r0 not stored yet').to.equal(0);
    h.appends[0]?.done.resolve();
    await until(() => h.appends.length === 4, 'the fourth append');
    expect(h.progress.committable).to.equal(2);
    for (const a of h.appends.slice(2)) a.done.resolve();
    await until(() => h.appends.length === 5, 'the fifth append');
    h.appends[4]?.done.resolve();
    await h.writer.drained(5_000);
    expect(h.writer.pending).to.equal(0);
    expect(h.progress.committable).to.equal(5);
    expect(h.counters).to.deep.equal({ historyAppended: 5, dropped: 0 });
  });

  it('retries a failed append first, after a backoff that holds every append, and keeps its offset until stored', async () => {
    const h = harness(1);
    h.enqueue(0);
    h.enqueue(1);
    h.enqueue(2);
    h.appends[0]?.done.reject(new Error('store down'));
    await until(() => h.retries.length === 1, 'the retry report');
    expect(h.retries[0]).to.deep.equal({ attempt: 1, delayMs: 5 });
    await until(() => h.appends.length === 2, 'the retried append');
    expect(
      h.appends.map((a) => a.id),
      'the failed record goes again before the next',
    ).to.deep.equal(['r0', 'r0']);
    expect(h.progress.committable).to.equal(0);
    h.appends[1]?.done.reject(new Error('still down'));
    await until(() => h.appends.length === 3, 'the second retry');
    expect(
      h.retries.map((r) => r.attempt),
      'consecutive failures back off further',
    ).to.deep.equal([1, 2]);
    expect(h.retries[1]?.delayMs).to.equal(10);
    h.appends[2]?.done.resolve();
    await until(() => h.appends.length === 4, 'r1 after r0 is stored');
    // r1 now fails while r2 still waits behind it in the queue: r1 still goes first.
    h.appends[3]?.done.reject(new Error('down again'));
    await until(() => h.appends.length === 5, 'the retry of r1');
    expect(
      h.retries.map((r) => r.attempt),
      'a success resets the backoff',
    ).to.deep.equal([1, 2, 1]);
    h.appends[4]?.done.resolve();
    await until(() => h.appends.length === 6, 'r2');
    h.appends[5]?.done.resolve();
    await h.writer.drained(5_000);
    expect(h.appends.map((a) => a.id)).to.deep.equal(['r0', 'r0', 'r0', 'r1', 'r1', 'r2']);
    expect(h.progress.committable).to.equal(3);
    expect(h.counters).to.deep.equal({ historyAppended: 3, dropped: 0 });
  });

  it('drops a record the store refuses for good (not retriable): counted, its offset released', async () => {
    const h = harness(1);
    h.enqueue(0);
    h.enqueue(1);
    h.appends[0]?.done.reject(new BridgeError('ERR_TOO_LARGE', 'refused', false));
    await until(() => h.appends.length === 2, 'the next append');
    expect(h.appends.map((a) => a.id)).to.deep.equal(['r0', 'r1']);
    expect(h.retries).to.have.length(0);
    expect(h.progress.committable).to.equal(1);
    h.appends[1]?.done.resolve();
    await h.writer.drained(5_000);
    expect(h.counters).to.deep.equal({ historyAppended: 1, dropped: 1 });
    expect(h.progress.committable).to.equal(2);
  });

  it('drained() gives up after its timeout while the store hangs; close() forgets the queue and stops retrying', async () => {
    const h = harness(1);
    h.enqueue(0);
    h.enqueue(1);
    const started = Date.now();
    await h.writer.drained(50);
    expect(Date.now() - started).to.be.below(10_000);
    expect(h.writer.pending).to.equal(2);
    h.writer.close();
    expect(h.writer.pending, 'only the append in flight is left').to.equal(1);
    h.appends[0]?.done.reject(new Error('store down'));
    await sleep(50);
    expect(h.appends, 'no retry after close').to.have.length(1);
    expect(h.retries).to.have.length(0);
    expect(h.writer.pending).to.equal(0);
  });

  it('appends a staged batch with one bulk call, then what that call did not store one by one, with retries', async () => {
    const h = harness(16);
    const bulks: { ids: string[]; done: Deferred<number> }[] = [];
    const appendMany = (records: readonly HistoryRecord[]): Promise<number> => {
      const done = deferred<number>();
      bulks.push({ ids: records.map((r) => r.id), done });
      return done.promise;
    };
    const jobs = [0, 1, 2, 3].map((o) => ({ envelope: record(`r${o}`), entry: h.progress.track(o, 1) }));
    h.writer.enqueueMany(jobs.slice(0, 2), appendMany);
    h.writer.enqueueMany(jobs.slice(2), appendMany);
    expect(bulks.map((b) => b.ids)).to.deep.equal([
      ['r0', 'r1'],
      ['r2', 'r3'],
    ]);
    expect(h.appends, 'no single appends yet').to.have.length(0);
    expect(h.writer.pending).to.equal(4);
    // The second batch stores only its first record; the first batch fails outright.
    bulks[1]?.done.resolve(1);
    await until(() => h.appends.length === 1, 'r3 appended alone');
    expect(h.progress.committable, 'r0 not stored yet').to.equal(0);
    bulks[0]?.done.reject(new Error('store down'));
    await until(() => h.appends.length === 3, 'r0 and r1 appended alone');
    expect(h.appends.map((a) => a.id)).to.deep.equal(['r3', 'r0', 'r1']);
    h.appends[1]?.done.reject(new Error('still down'));
    await until(() => h.appends.length === 4, 'the retry of r0');
    expect(h.appends[3]?.id).to.equal('r0');
    for (const a of [h.appends[0], h.appends[2], h.appends[3]]) a?.done.resolve();
    await h.writer.drained(5_000);
    expect(h.writer.pending).to.equal(0);
    expect(h.progress.committable).to.equal(4);
    expect(h.counters).to.deep.equal({ historyAppended: 4, dropped: 0 });
    h.writer.close();
    h.writer.enqueueMany([{ envelope: record('late'), entry: h.progress.track(4, 1) }], appendMany);
    expect(bulks, 'nothing taken after close').to.have.length(2);
  });

  it('joins staged batches that wait for a bulk append (concurrency / 8 at a time) into one', async () => {
    const h = harness(8);
    const bulks: { ids: string[]; done: Deferred<number> }[] = [];
    const appendMany = (records: readonly HistoryRecord[]): Promise<number> => {
      const done = deferred<number>();
      bulks.push({ ids: records.map((r) => r.id), done });
      return done.promise;
    };
    for (let o = 0; o < 4; o++) h.writer.enqueueMany([{ envelope: record(`r${o}`), entry: h.progress.track(o, 1) }], appendMany);
    expect(bulks.map((b) => b.ids)).to.deep.equal([['r0']]);
    bulks[0]?.done.resolve(1);
    await until(() => bulks.length === 2, 'the joined bulk append');
    expect(bulks[1]?.ids).to.deep.equal(['r1', 'r2', 'r3']);
    bulks[1]?.done.resolve(3);
    await h.writer.drained(5_000);
    expect(h.progress.committable).to.equal(4);
    expect(h.appends).to.have.length(0);
  });

  it('drops the unstarted jobs of a stale partition progress (its records are read again, and owed, elsewhere)', async () => {
    const h = harness(1);
    const bulks: string[][] = [];
    const appendMany = async (records: readonly HistoryRecord[]): Promise<number> => (bulks.push(records.map((r) => r.id)), records.length);
    h.enqueue(0);
    h.enqueue(1);
    h.enqueue(2);
    h.writer.enqueueMany([{ envelope: record('b0'), entry: h.progress.track(3, 1) }], appendMany);
    h.writer.enqueueMany([{ envelope: record('b1'), entry: h.progress.track(4, 1) }], appendMany);
    expect(bulks).to.deep.equal([['b0']]);
    const commits = new OffsetCommits({ commit: () => Promise.resolve() });
    const old = commits.partition('t', 0, 0);
    old.track(0, 1);
    commits.reset();
    expect(old.stale, 'a new generation makes the old progress stale').to.equal(true);
    h.progress.stale = true;
    await settle();
    expect(bulks, 'b1 waited for a bulk append: dropped').to.deep.equal([['b0']]);
    h.appends[0]?.done.resolve();
    await h.writer.drained(5_000);
    expect(h.writer.pending).to.equal(0);
    expect(
      h.appends.map((a) => a.id),
      'r1 and r2 had not started: dropped',
    ).to.deep.equal(['r0']);
  });

  it('throws TypeError without a positive concurrency', () => {
    const base = { append: () => Promise.resolve(), storeName: 'x', counters: { historyAppended: 0, dropped: 0 }, logger: silentLogger };
    expect(() => new HistoryWriter({ ...base, concurrency: 0 })).to.throw(TypeError, /concurrency/);
  });
});

describe('bridge › kafka › storeFirst', () => {
  const records = [record('a'), record('b'), record('c')];

  it('reports how many records, from the first, the store took', async () => {
    let seen: readonly HistoryRecord[] = [];
    const store = { healthy: true, appendMany: async (r: readonly HistoryRecord[]) => ((seen = r), 2) };
    expect(await storeFirst(store, records)).to.equal(2);
    expect(seen.map((r) => r.id)).to.deep.equal(['a', 'b', 'c']);
  });

  it('stores nothing first (0) when the store is unhealthy, fails, or is slower than the wait', async () => {
    let calls = 0;
    const unhealthy = { healthy: false, appendMany: async () => (calls++, 3) };
    expect(await storeFirst(unhealthy, records)).to.equal(0);
    expect(calls, 'an unhealthy store is not asked').to.equal(0);
    expect(await storeFirst({ healthy: true, appendMany: () => Promise.reject(new Error('down')) }, records)).to.equal(0);
    const started = Date.now();
    expect(await storeFirst({ healthy: true, appendMany: () => new Promise<number>(() => {}) }, records, 30)).to.equal(0);
    expect(Date.now() - started).to.be.below(10_000);
    expect(await storeFirst({ healthy: true, appendMany: async () => (calls++, 0) }, [])).to.equal(0);
    expect(calls, 'nothing to store: the store is not asked').to.equal(0);
  });
});

describe('bridge › kafka › stageFirst', () => {
  const records = [record('a'), record('b'), record('c')];
  const plain = {
    name: 'fake',
    healthy: true,
    append: () => Promise.resolve(),
    appendMany: () => Promise.resolve(0),
    read: () => Promise.resolve([]),
    nextPosition: () => 0,
    close: () => Promise.resolve(),
  };
  const staging = (
    stageMany: (r: readonly HistoryRecord[]) => Promise<readonly Staged[]>,
  ): typeof plain & { stageMany: typeof stageMany } => ({
    ...plain,
    stageMany,
  });

  it('reports the outcome for each record, from the first, the cache took; none when it fails or is slow', async () => {
    expect(
      await stageFirst(
        staging(async () => ['stored', 'staged']),
        records,
      ),
    ).to.deep.equal(['stored', 'staged']);
    expect(
      await stageFirst(
        staging(() => Promise.reject(new Error('redis down'))),
        records,
      ),
    ).to.deep.equal([]);
    const started = Date.now();
    expect(
      await stageFirst(
        staging(() => new Promise<readonly Staged[]>(() => {})),
        records,
        30,
      ),
    ).to.deep.equal([]);
    expect(Date.now() - started).to.be.below(10_000);
    let calls = 0;
    expect(
      await stageFirst(
        staging(async () => (calls++, ['staged'])),
        [],
      ),
    ).to.deep.equal([]);
    expect(calls).to.equal(0);
  });

  it('tells a store with a cache to stage in from one without', () => {
    expect(canStage(staging(async () => []))).to.equal(true);
    expect(canStage(plain)).to.equal(false);
  });
});

describe('bridge › kafka › StompedeSubscribed assignment', () => {
  const member = (memberId: string, topics: string[]) => ({
    memberId,
    memberMetadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
  });
  const partitions = (n: number) => Array.from({ length: n }, (_, i) => i);

  it("reads each member's topics from its join metadata, members and topics in a fixed order", () => {
    const byTopic = subscribersByTopic([member('m-b', ['chat', 'orders.eu']), member('m-a', ['chat']), member('m-c', ['chat'])]);
    expect([...byTopic]).to.deep.equal([
      ['chat', ['m-a', 'm-b', 'm-c']],
      ['orders.eu', ['m-b']],
    ]);
  });

  it('gives a topic only to the members that read it, every partition once', () => {
    const subscribers = new Map([
      ['chat', ['m-a', 'm-b', 'm-c']],
      ['orders.eu', ['m-b']],
    ]);
    const plan = planAssignment(
      subscribers,
      new Map([
        ['chat', partitions(6)],
        ['orders.eu', partitions(4)],
      ]),
    );
    expect(plan.get('m-b')?.['orders.eu']).to.deep.equal([0, 1, 2, 3]);
    expect(plan.get('m-a')?.['orders.eu']).to.equal(undefined);
    expect(plan.get('m-c')?.['orders.eu']).to.equal(undefined);
    const chat = ['m-a', 'm-b', 'm-c'].flatMap((m) => plan.get(m)?.chat ?? []);
    expect(chat.sort()).to.deep.equal(partitions(6));
    for (const m of ['m-a', 'm-b', 'm-c']) expect(plan.get(m)?.chat, m).to.have.length(2);
  });

  it('spreads the load over the members when every one reads every topic', () => {
    const all = ['m-a', 'm-b', 'm-c'];
    const plan = planAssignment(
      new Map([
        ['t1', all],
        ['t2', all],
      ]),
      new Map([
        ['t1', partitions(8)],
        ['t2', partitions(8)],
      ]),
    );
    const counts = all.map((m) => Object.values(plan.get(m) ?? {}).reduce((sum, list) => sum + list.length, 0));
    expect(counts.reduce((a, b) => a + b)).to.equal(16);
    expect(Math.max(...counts) - Math.min(...counts)).to.be.at.most(1);
  });
});
