/**
 * TopicRegistry and topicMatches on their own: the same answers as the backtracking matcher they replace (kept
 * below as the oracle), in time linear in the input, with O(1) subscribe and unsubscribe.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { isPattern, parseDestination, topicMatches } from '../../broker/destinations.js';
import { Subscription, type Consumer } from '../../broker/subscription.js';
import { TopicRegistry } from '../../broker/topics.js';

/**
 * The matcher of broker/destinations.ts before issue #8, unchanged: correct, but it retries every split of the
 * segments at each `#`, so it is exponential in the number of `#` parts. Only ever given small inputs here.
 */
function backtrackingMatches(pattern: readonly string[], segments: readonly string[], p = 0, s = 0): boolean {
  for (; p < pattern.length; p++, s++) {
    const part = pattern[p];
    if (part === '#') {
      if (p === pattern.length - 1) return true;
      for (let skip = s; skip <= segments.length; skip++) if (backtrackingMatches(pattern, segments, p + 1, skip)) return true;
      return false;
    }
    if (s >= segments.length) return false;
    if (part !== '*' && part !== segments[s]) return false;
  }
  return s === segments.length;
}

const NOBODY: Consumer = { writable: true, deliver: () => {}, readyForReplay: () => true, overflowed: () => {} };

/** A topic subscription made the way a SUBSCRIBE makes one (session.ts): wildcard names get pattern parts. */
function subscription(name: string, id: string): Subscription {
  return new Subscription({
    id,
    consumer: NOBODY,
    destination: parseDestination(`/topic/${name}`),
    ackMode: 'auto',
    prefetch: 0,
    pattern: isPattern(name) ? name.split('.') : undefined,
    version: '1.2',
    maxUnacked: 0,
  });
}

/** Whether a message to topic `name` must reach `sub`, by the oracle. */
function oracle(sub: Subscription, name: string): boolean {
  return sub.pattern === undefined ? sub.destination.name === name : backtrackingMatches(sub.pattern, name.split('.'));
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run mocha with --expose-gc (node-option in .mocharc.json)');
  gc();
}

/** Fastest of `runs` timings of `work`, in ms: scheduler noise only ever adds time. */
function fastestMs(runs: number, work: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    work();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

// A tiny alphabet so that random patterns and names meet often. 'a*' and 'b#' are literal segments (only a whole
// `*` or `#` part is a wildcard), '' is the empty segment of `a..b` or a leading/trailing dot.
const patternPart = fc.constantFrom('a', 'b', '', '*', '#', 'a*', 'b#');
const namePart = fc.constantFrom('a', 'b', '', 'a*', 'b#', '*');
// A destination name is never empty (parseDestination refuses `/topic/`), but `.` alone is two empty segments.
const patternName = fc
  .array(patternPart, { minLength: 1, maxLength: 7 })
  .map((parts) => parts.join('.'))
  .filter((name) => name !== '');
const topicName = fc
  .array(namePart, { minLength: 1, maxLength: 9 })
  .map((parts) => parts.join('.'))
  .filter((name) => name !== '');

// Steps name their pattern and topic by index into small per-run pools, so the same name is matched again after
// changes (which is what a stale match cache would get wrong) and the same pattern is subscribed more than once.
type Step = { readonly kind: 'add' | 'remove' | 'match'; readonly pick: number };
const step: fc.Arbitrary<Step> = fc.record({ kind: fc.constantFrom('add', 'remove', 'match'), pick: fc.nat() });

describe('broker › topic registry', () => {
  describe('matching agrees with the backtracking matcher it replaces', () => {
    it('topicMatches, on random patterns and names with *, # and empty segments', () => {
      fc.assert(
        fc.property(patternName, topicName, (pattern, name) => {
          const parts = pattern.split('.');
          const segments = name.split('.');
          expect(topicMatches(parts, segments), `${pattern} vs ${name}`).to.equal(backtrackingMatches(parts, segments));
        }),
        { numRuns: 20_000 },
      );
    });

    it('TopicRegistry.match, through random interleavings of add, remove and match', () => {
      fc.assert(
        fc.property(
          fc.array(patternName, { minLength: 1, maxLength: 6 }),
          fc.array(topicName, { minLength: 1, maxLength: 4 }),
          fc.array(step, { maxLength: 60 }),
          (patterns, names, steps) => {
            const registry = new TopicRegistry();
            const live: Subscription[] = [];
            let next = 0;
            for (const s of steps) {
              if (s.kind === 'add') {
                const sub = subscription(patterns[s.pick % patterns.length] as string, `s${next++}`);
                registry.add(sub);
                live.push(sub);
              } else if (s.kind === 'remove') {
                if (live.length === 0) continue;
                const [sub] = live.splice(s.pick % live.length, 1);
                registry.remove(sub as Subscription);
              } else {
                const name = names[s.pick % names.length] as string;
                const got = registry.match(name);
                const want = live.filter((sub) => oracle(sub, name));
                expect(Object.isFrozen(got), 'match() hands out frozen arrays').to.equal(true);
                expect(new Set(got).size, 'each subscription once').to.equal(got.length);
                expect([...got].map((sub) => sub.id).sort(), name).to.deep.equal(want.map((sub) => sub.id).sort());
              }
              expect(registry.empty).to.equal(live.length === 0);
            }
          },
        ),
        { numRuns: 2_000 },
      );
    });
  });

  describe('time linear in the input (issue #8: two frames froze the node)', () => {
    // The old matcher took 6.8 s for this one (issue #8), so this case fails on it rather than hanging.
    it('#.#.#.#.#.#.#.#.#.#.z against 30 segments: < 5 ms', () => {
      const pattern = '#.#.#.#.#.#.#.#.#.#.z';
      const name = Array.from({ length: 30 }, (_, i) => `s${i}`).join('.');
      const registry = new TopicRegistry();
      registry.add(subscription(pattern, 'x'));
      expect(fastestMs(3, () => expect(topicMatches(pattern.split('.'), name.split('.'))).to.equal(false))).to.be.below(5);
      // A fresh name each run, so the registry walks its trie instead of answering from its cache.
      let run = 0;
      const fresh = (): string => [`r${run++}`, ...name.split('.').slice(1)].join('.');
      expect(fastestMs(3, () => expect(registry.match(fresh())).to.have.length(0))).to.be.below(5);
    });

    it('16 # against 100 segments: < 5 ms, matching or not', () => {
      const hashes = Array.from({ length: 16 }, () => '#').join('.');
      const segments = Array.from({ length: 100 }, (_, i) => `s${i}`);
      const registry = new TopicRegistry();
      const miss = subscription(`${hashes}.z`, 'miss');
      const hit = subscription(`${hashes}.s99`, 'hit');
      registry.add(miss);
      registry.add(hit);
      expect(fastestMs(3, () => expect(topicMatches(miss.pattern ?? [], segments)).to.equal(false))).to.be.below(5);
      expect(fastestMs(3, () => expect(topicMatches(hit.pattern ?? [], segments)).to.equal(true))).to.be.below(5);
      // A fresh name each run, so the registry walks its trie instead of answering from its cache.
      let run = 0;
      const ms = fastestMs(3, () => expect(registry.match([...segments.slice(0, 98), `n${run++}`, 's99'].join('.'))).to.deep.equal([hit]));
      expect(ms).to.be.below(5);
    });
  });

  describe('O(1) subscribe and unsubscribe (issue #8: 40,000 SUBSCRIBEs froze the node 11.5 s)', () => {
    for (const name of ['crowd.exact', 'crowd.*.#']) {
      it(`100,000 subscriptions to ${name} added, matched and removed in < 1 s`, () => {
        const registry = new TopicRegistry();
        const subs = Array.from({ length: 100_000 }, (_, i) => subscription(name, `s${i}`));
        // Collect the garbage of building 100,000 fixtures now, so the figure is the registry's alone.
        collectGarbage();
        const started = performance.now();
        for (const sub of subs) registry.add(sub);
        const all = registry.match('crowd.exact');
        // Leave in another order than they came, as closing connections does.
        for (let i = subs.length - 1; i >= 0; i -= 2) registry.remove(subs[i] as Subscription);
        for (let i = 0; i < subs.length; i += 2) registry.remove(subs[i] as Subscription);
        const ms = performance.now() - started;
        expect(all).to.have.length(100_000);
        expect(registry.match('crowd.exact')).to.have.length(0);
        expect(registry.empty).to.equal(true);
        expect(ms, 'add + match + remove, ms').to.be.below(1000);
      });
    }
  });

  describe('changes while a publish iterates (a delivery can make a session subscribe or leave)', () => {
    for (const [label, name, other] of [
      ['exact', 'room', 'room'],
      ['wildcard', 'room.*', 'room.#'],
    ] as const) {
      it(`${label}: the iteration sees the subscriptions of its start; the next match sees the changes`, () => {
        const registry = new TopicRegistry();
        const first = Array.from({ length: 5 }, (_, i) => subscription(name, `old${i}`));
        for (const sub of first) registry.add(sub);
        const topic = label === 'exact' ? 'room' : 'room.1';
        const visited: Subscription[] = [];
        const added: Subscription[] = [];
        for (const sub of registry.match(topic)) {
          visited.push(sub);
          registry.remove(sub);
          const joined = subscription(other, `new${added.length}`);
          added.push(joined);
          registry.add(joined);
        }
        expect(visited.map((s) => s.id)).to.have.members(first.map((s) => s.id));
        expect(registry.match(topic).map((s) => s.id)).to.have.members(added.map((s) => s.id));
      });
    }

    it('an array already handed out never changes', () => {
      const registry = new TopicRegistry();
      registry.add(subscription('a.#', 'p'));
      registry.add(subscription('a.b', 'e'));
      const before = registry.match('a.b');
      registry.add(subscription('a.*', 'q'));
      registry.remove(before[0] as Subscription);
      expect(before.map((s) => s.id)).to.have.members(['p', 'e']);
      expect(registry.match('a.b').map((s) => s.id)).to.have.members([before[1]?.id, 'q']);
    });
  });
});
