import type { Subscription } from './subscription.js';

const NONE: readonly Subscription[] = Object.freeze([]);
/** Enough distinct destinations for any chat, small enough that a scan of random names cannot grow memory. */
const MATCH_CACHE_LIMIT = 10_000;
/**
 * The cache also stops at this many subscription references in all (8 MB of pointers): 10,000 cached names, each
 * matched by thousands of `#` subscriptions, would otherwise hold gigabytes.
 */
const MATCH_CACHE_REFS = 1_000_000;

/**
 * Subscriptions with O(1) add and remove, read as a frozen array that is rebuilt only on the first read after a
 * change. A reader keeps the array it got, so a change made while it iterates (a delivery that makes some session
 * subscribe or leave) never shows up in, or breaks, that iteration.
 */
class SubscriberSet {
  readonly #members = new Set<Subscription>();
  #snapshot: readonly Subscription[] | undefined = NONE;

  /** False when `sub` was already there. */
  add(sub: Subscription): boolean {
    if (this.#members.has(sub)) return false;
    this.#members.add(sub);
    this.#snapshot = undefined;
    return true;
  }

  /** False when `sub` was not there. */
  delete(sub: Subscription): boolean {
    if (!this.#members.delete(sub)) return false;
    this.#snapshot = undefined;
    return true;
  }

  get size(): number {
    return this.#members.size;
  }

  get list(): readonly Subscription[] {
    return (this.#snapshot ??= Object.freeze([...this.#members]));
  }
}

/**
 * One node of the pattern trie: the patterns that share the parts on the path to it. Children by literal part,
 * one `*` child, one `#` child; maps and sets are made on first use, since most nodes need only one of them.
 */
class PatternNode {
  literals: Map<string, PatternNode> | undefined;
  star: PatternNode | undefined;
  hash: PatternNode | undefined;
  /** Subscriptions whose pattern ends at this node. */
  subs: SubscriberSet | undefined;
  /** Reached by a `#` part: the node may take any number of further segments and stay where it is. */
  readonly isHash: boolean;
  /** Step number of the walk that last put this node in a state set, so each step holds a node once. */
  seenAt = 0;

  constructor(isHash: boolean) {
    this.isHash = isHash;
  }

  child(part: string): PatternNode | undefined {
    if (part === '#') return this.hash;
    if (part === '*') return this.star;
    return this.literals?.get(part);
  }

  childOrNew(part: string): PatternNode {
    const found = this.child(part);
    if (found !== undefined) return found;
    const made = new PatternNode(part === '#');
    if (part === '#') this.hash = made;
    else if (part === '*') this.star = made;
    else (this.literals ??= new Map()).set(part, made);
    return made;
  }

  unlink(part: string): void {
    if (part === '#') this.hash = undefined;
    else if (part === '*') this.star = undefined;
    else if (this.literals?.delete(part) === true && this.literals.size === 0) this.literals = undefined;
  }

  /** Holds no subscription and leads to none: it can be dropped from its parent. */
  get bare(): boolean {
    return (
      (this.subs === undefined || this.subs.size === 0) && this.literals === undefined && this.star === undefined && this.hash === undefined
    );
  }
}

/**
 * Topic subscriptions of one virtual host. Exact names sit in a map; wildcard patterns in a trie over their
 * dot-separated parts (as NATS's sublist does), so both add and remove cost O(1) (O(parts) for a pattern)
 * instead of copying every subscriber list, and matching a name costs at most segments × trie nodes.
 *
 * `match()` returns frozen arrays that are never mutated, so a publish can iterate them while a delivery makes
 * some session subscribe or leave; the change applies from the next publish on.
 */
export class TopicRegistry {
  #exact = new Map<string, SubscriberSet>();
  #root = new PatternNode(false);
  #patternCount = 0;
  #cache = new Map<string, readonly Subscription[]>();
  #cacheRefs = 0;
  /** Walk step counter for PatternNode.seenAt; a step number is never reused. */
  #step = 0;
  /** State sets of the current and the next walk step, reused by every walk (match is never re-entered). */
  #states: PatternNode[] = [];
  #nextStates: PatternNode[] = [];

  add(sub: Subscription): void {
    if (sub.pattern !== undefined) {
      let node = this.#root;
      for (const part of sub.pattern) node = node.childOrNew(part);
      if ((node.subs ??= new SubscriberSet()).add(sub)) this.#patternCount++;
    } else {
      let set = this.#exact.get(sub.destination.name);
      if (set === undefined) this.#exact.set(sub.destination.name, (set = new SubscriberSet()));
      set.add(sub);
    }
    this.#clearCache();
  }

  remove(sub: Subscription): void {
    if (sub.pattern !== undefined) this.#removePattern(sub, sub.pattern);
    else {
      const set = this.#exact.get(sub.destination.name);
      if (set === undefined || !set.delete(sub)) return;
      if (set.size === 0) this.#exact.delete(sub.destination.name);
    }
    this.#clearCache();
  }

  /** Every subscription a message sent to topic `name` reaches. */
  match(name: string): readonly Subscription[] {
    const exact = this.#exact.get(name)?.list ?? NONE;
    // The fan-out hot path: no patterns, one map lookup, the cached array, nothing allocated.
    if (this.#patternCount === 0) return exact;
    const cached = this.#cache.get(name);
    if (cached !== undefined) return cached;
    const found = this.#matchPatterns(name, exact);
    if (this.#cache.size >= MATCH_CACHE_LIMIT || this.#cacheRefs + found.length > MATCH_CACHE_REFS) this.#clearCache();
    this.#cache.set(name, found);
    this.#cacheRefs += found.length;
    return found;
  }

  /** True while any subscription (exact or wildcard) exists; the cluster uses it to decide what to listen to. */
  get empty(): boolean {
    return this.#exact.size === 0 && this.#patternCount === 0;
  }

  #removePattern(sub: Subscription, pattern: readonly string[]): void {
    const path: PatternNode[] = [this.#root];
    let node = this.#root;
    for (const part of pattern) {
      const next = node.child(part);
      if (next === undefined) return;
      path.push(next);
      node = next;
    }
    if (node.subs?.delete(sub) !== true) return;
    this.#patternCount--;
    if (node.subs.size === 0) node.subs = undefined;
    // Drop the nodes this pattern alone kept alive, so a stream of distinct patterns leaves nothing behind.
    for (let i = pattern.length; i > 0; i--) {
      if (!(path[i] as PatternNode).bare) break;
      (path[i - 1] as PatternNode).unlink(pattern[i - 1] as string);
    }
  }

  /**
   * Walks the trie with the set of nodes the segments so far can reach (each node at most once per step), then
   * gathers the subscriptions of the nodes reached at the end. Exact subscriptions come first.
   */
  #matchPatterns(name: string, exact: readonly Subscription[]): readonly Subscription[] {
    let states = this.#states;
    let next = this.#nextStates;
    states.length = 0;
    this.#enter(this.#root, states, ++this.#step);
    let start = 0;
    for (;;) {
      const dot = name.indexOf('.', start);
      const segment = dot === -1 ? name.slice(start) : name.slice(start, dot);
      const step = ++this.#step;
      next.length = 0;
      for (const node of states) {
        if (node.isHash) this.#enter(node, next, step);
        const literal = node.literals?.get(segment);
        if (literal !== undefined) this.#enter(literal, next, step);
        if (node.star !== undefined) this.#enter(node.star, next, step);
      }
      [states, next] = [next, states];
      if (dot === -1 || states.length === 0) break;
      start = dot + 1;
    }
    let found = exact;
    let copied = false;
    for (const node of states) {
      const list = node.subs?.list;
      if (list === undefined || list.length === 0) continue;
      // One source alone is returned as it is: its snapshot is already frozen and shared.
      if (found.length === 0) found = list;
      else if (copied) for (const sub of list) (found as Subscription[]).push(sub);
      else {
        found = [...found, ...list];
        copied = true;
      }
    }
    states.length = 0;
    next.length = 0;
    return copied ? Object.freeze(found) : found;
  }

  /** Adds `node` to a state set, and every `#` node after it: `#` may match no segment at all. */
  #enter(node: PatternNode, into: PatternNode[], step: number): void {
    for (let n: PatternNode | undefined = node; n !== undefined && n.seenAt !== step; n = n.hash) {
      n.seenAt = step;
      into.push(n);
    }
  }

  #clearCache(): void {
    // Map.clear() allocates a fresh table even when empty; skipping it keeps add and remove allocation-free.
    if (this.#cache.size > 0) this.#cache.clear();
    this.#cacheRefs = 0;
  }
}
