import { topicMatches } from './destinations.js';
import type { Subscription } from './subscription.js';

const NONE: readonly Subscription[] = Object.freeze([]);
const NONE_SEGMENTS: readonly string[] = Object.freeze([]);
/** Enough distinct destinations for any chat, small enough that a scan of random names cannot grow memory. */
const MATCH_CACHE_LIMIT = 10_000;

/**
 * Topic subscriptions of one virtual host. Arrays are replaced, never mutated, so a publish can iterate them
 * while a delivery makes some session subscribe or leave.
 */
export class TopicRegistry {
  #exact = new Map<string, readonly Subscription[]>();
  #patterns: readonly Subscription[] = NONE;
  #cache = new Map<string, readonly Subscription[]>();

  add(sub: Subscription): void {
    if (sub.pattern !== undefined) this.#patterns = [...this.#patterns, sub];
    else this.#exact.set(sub.destination.name, [...(this.#exact.get(sub.destination.name) ?? NONE), sub]);
    this.#cache.clear();
  }

  remove(sub: Subscription): void {
    if (sub.pattern !== undefined) {
      this.#patterns = this.#patterns.filter((s) => s !== sub);
    } else {
      const left = (this.#exact.get(sub.destination.name) ?? NONE).filter((s) => s !== sub);
      if (left.length === 0) this.#exact.delete(sub.destination.name);
      else this.#exact.set(sub.destination.name, left);
    }
    this.#cache.clear();
  }

  /** Every subscription a message sent to topic `name` reaches. */
  match(name: string): readonly Subscription[] {
    const exact = this.#exact.get(name) ?? NONE;
    if (this.#patterns.length === 0) return exact;
    const cached = this.#cache.get(name);
    if (cached !== undefined) return cached;
    const segments = name.split('.');
    const found = [...exact];
    for (const sub of this.#patterns) if (topicMatches(sub.pattern ?? NONE_SEGMENTS, segments)) found.push(sub);
    if (this.#cache.size >= MATCH_CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(name, found);
    return found;
  }

  /** True while any subscription (exact or wildcard) exists; the cluster uses it to decide what to listen to. */
  get empty(): boolean {
    return this.#exact.size === 0 && this.#patterns.length === 0;
  }
}

