/**
 * Mocha root-hook plugin (loaded by `.mocharc.json` "require", so it is part of every plain `npx mocha` run and
 * so of `make test`): after the last test it walks the whole suite tree and fails the run when a test ended
 * pending without a declared reason. Reasons live in spec/pending-allowed.json (a full-title regex and why);
 * anything else pending (a `this.skip()` on a missing tool or service, an `it` without a body, an `it.skip`)
 * fails, listing the titles. Mocha's own `forbidPending` cannot do this: it allows no exception at all.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ALLOW_LIST = resolve(dirname(fileURLToPath(import.meta.url)), '../../../spec/pending-allowed.json');

export interface AllowedPending {
  readonly title: RegExp;
  readonly reason: string;
}

/** Reads and checks the allow-list; a malformed file is a programmer error, reported as a TypeError. */
export function loadAllowList(path = ALLOW_LIST): AllowedPending[] {
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  const entries: unknown = typeof parsed === 'object' && parsed !== null ? (parsed as { allowed?: unknown }).allowed : undefined;
  if (!Array.isArray(entries)) throw new TypeError(`${path}: expected { "allowed": [{ "title", "reason" }] }`);
  return entries.map((entry: unknown, i) => {
    const { title, reason } = (typeof entry === 'object' && entry !== null ? entry : {}) as { title?: unknown; reason?: unknown };
    if (typeof title !== 'string' || typeof reason !== 'string' || reason.trim() === '') {
      throw new TypeError(`${path}: allowed[${i}] needs a string "title" regex and a non-empty "reason"`);
    }
    return { title: new RegExp(title), reason };
  });
}

/** Full titles of the pending tests under `suite` (a test is pending if it or any enclosing suite is). */
export function pendingTitles(suite: Mocha.Suite): string[] {
  const out: string[] = [];
  const walk = (s: Mocha.Suite): void => {
    for (const test of s.tests) if (test.isPending()) out.push(test.fullTitle());
    for (const child of s.suites) walk(child);
  };
  walk(suite);
  return out;
}

/** The pending titles no allow-list entry explains. */
export function unexpectedPending(titles: readonly string[], allowed: readonly AllowedPending[]): string[] {
  return titles.filter((t) => !allowed.some((a) => a.title.test(t)));
}

export const mochaHooks = {
  // Named, so that a failure reads `"after all" hook: pending allow-list check`.
  afterAll: function pendingAllowListCheck(this: Mocha.Context): void {
    // The hook's parent is the root suite: every file's tests hang below it.
    const root = this.test?.parent;
    if (root === undefined) return;
    const unexpected = unexpectedPending(pendingTitles(root), loadAllowList());
    if (unexpected.length > 0) {
      throw new Error(
        `${unexpected.length} test(s) ended pending without a reason in spec/pending-allowed.json ` +
          `(a skipped test proves nothing; make it run, or declare why it may not):\n${unexpected.map((t) => `  - ${t}`).join('\n')}`,
      );
    }
  },
};
