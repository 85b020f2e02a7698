import { expect } from 'chai';
import { OrderedAppends } from '../../broker/history-appends.js';
import type { HistoryRecord, HistoryStore } from '../../broker/ports/history.js';

function record(destination: string, n: number): HistoryRecord {
  return {
    id: `${destination}-${n}`,
    origin: 'n1',
    vhost: '/',
    destination,
    headers: [],
    body: Buffer.from(String(n)),
    time: 0,
    position: n,
  };
}

/** A store whose appendMany calls wait until the test lets them finish, storing what `outcome` says. */
class GatedStore {
  readonly batches: string[][] = [];
  #gates: (() => void)[] = [];
  outcome: (records: readonly HistoryRecord[]) => number | Error = (records) => records.length;

  asStore(): HistoryStore {
    return { appendMany: (records: readonly HistoryRecord[]) => this.#appendMany(records) } as unknown as HistoryStore;
  }

  async #appendMany(records: readonly HistoryRecord[]): Promise<number> {
    this.batches.push(records.map((r) => r.id));
    await new Promise<void>((resolve) => this.#gates.push(resolve));
    const result = this.outcome(records);
    if (result instanceof Error) throw result;
    return result;
  }

  get inFlight(): number {
    return this.#gates.length;
  }

  release(): void {
    this.#gates.shift()?.();
  }
}

const settled = (p: Promise<void>): Promise<string> =>
  p.then(
    () => 'stored',
    (e: unknown) => `failed: ${e instanceof Error ? e.message : String(e)}`,
  );

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('broker › history appends (ordered, batched)', () => {
  it('one batch in flight; what arrives meanwhile, for any destination, goes in the next one, in order', async () => {
    const store = new GatedStore();
    const appends = new OrderedAppends(store.asStore());
    const results = [record('/topic/a', 1), record('/topic/b', 1), record('/topic/a', 2), record('/topic/c', 1)].map((r) =>
      settled(appends.append(r)),
    );
    await tick();
    expect(store.batches).to.deep.equal([['/topic/a-1']]);
    expect(store.inFlight).to.equal(1);
    store.release();
    await tick();
    expect(store.batches).to.deep.equal([['/topic/a-1'], ['/topic/b-1', '/topic/a-2', '/topic/c-1']]);
    expect(store.inFlight).to.equal(1);
    store.release();
    expect(await Promise.all(results)).to.deep.equal(['stored', 'stored', 'stored', 'stored']);
    // Idle again: the next append goes at once.
    const next = settled(appends.append(record('/topic/a', 3)));
    await tick();
    expect(store.batches.at(-1)).to.deep.equal(['/topic/a-3']);
    store.release();
    expect(await next).to.equal('stored');
  });

  it('a batch stored in part: its prefix resolves, the rest rejects, and the next batch still goes', async () => {
    const store = new GatedStore();
    const appends = new OrderedAppends(store.asStore());
    const first = settled(appends.append(record('/topic/p', 1)));
    await tick();
    const rest = [2, 3, 4].map((n) => settled(appends.append(record('/topic/p', n))));
    store.outcome = (records) => records.length;
    store.release();
    await tick();
    store.outcome = () => 1;
    store.release();
    expect(await Promise.all([first, ...rest])).to.deep.equal([
      'stored',
      'stored',
      'failed: history stored 1 of 3 records',
      'failed: history stored 1 of 3 records',
    ]);
    const after = settled(appends.append(record('/topic/p', 5)));
    await tick();
    store.outcome = () => new Error('store down');
    store.release();
    expect(await after).to.equal('failed: store down');
  });
});
