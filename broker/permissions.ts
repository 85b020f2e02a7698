/**
 * Who may read and write which destinations, per virtual host.
 *
 * Rules are globs over the whole destination string. Segments are separated by `.` or `/`; `*` matches one whole
 * segment, `**` any run of segments (zero or more), anything else is literal. `/topic/chat.**` therefore covers
 * `/topic/chat`, `/topic/chat.room1` and `/topic/chat.room1.en`. Rules are compiled once per reload, and every
 * matcher runs in time linear in pattern × destination segments (no backtracking blow-up on `**`).
 */
import { isPattern, type Destination } from './destinations.js';

/** One compiled glob segment: a literal, `*` (exactly one segment) or `**` (any run of segments). */
type GlobPart = string | typeof ONE | typeof ANY;
const ONE = 1;
const ANY = 2;

/** A compiled glob: its segments and the source text (for logs and errors). */
export interface Glob {
  readonly source: string;
  readonly parts: readonly GlobPart[];
}

/** Allow and deny globs of one permission (read or write); deny wins. */
export interface Rule {
  readonly allow: readonly Glob[];
  readonly deny: readonly Glob[];
}

/** A user's permissions on one virtual host. */
export interface VhostRights {
  readonly read: Rule;
  readonly write: Rule;
}

/** What a user may do: `vhosts` undefined means every right on every virtual host (the legacy users-file form). */
export interface UserRights {
  /** May use the management API on the ops listener (broker/management.ts). */
  readonly admin: boolean;
  readonly vhosts: ReadonlyMap<string, VhostRights> | undefined;
}

/** Every right on every virtual host: legacy users-file entries, and authenticators that know nothing of rights. */
export const ALL_RIGHTS: UserRights = Object.freeze({ admin: false, vhosts: undefined });

/**
 * Looks up a user's current rights; undefined once the user is gone (removed from a reloaded users file). Called
 * per SEND/SUBSCRIBE, so a reload applies to frames of sessions that are already connected.
 */
export type RightsSource = () => UserRights | undefined;

const SEPARATOR = /[./]/;

/** Compiles one glob; throws TypeError (with `where` in the message) for an empty one. */
export function compileGlob(source: string, where = 'glob'): Glob {
  if (typeof source !== 'string' || source === '') throw new TypeError(`${where}: a glob must be a non-empty string`);
  const parts: GlobPart[] = [];
  for (const segment of source.split(SEPARATOR)) {
    const part: GlobPart = segment === '**' ? ANY : segment === '*' ? ONE : segment;
    // `**.**` means the same as `**`: merging keeps the matchers' state small.
    if (part === ANY && parts[parts.length - 1] === ANY) continue;
    parts.push(part);
  }
  return { source, parts };
}

/** The glob segments of a concrete destination string. */
function segmentsOf(destination: string): string[] {
  return destination.split(SEPARATOR);
}

/**
 * Does `glob` match these segments? The classic single-star algorithm: `**` is the only variable-width part, so
 * remembering the last `**` and retrying from one segment further is enough, O(parts × segments) at worst.
 */
function globMatches(parts: readonly GlobPart[], segments: readonly string[]): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < segments.length) {
    const part = parts[p];
    if (part === ANY) {
      starP = p++;
      starS = s;
    } else if (part !== undefined && (part === ONE || part === segments[s])) {
      p++;
      s++;
    } else if (starP >= 0) {
      p = starP + 1;
      s = ++starS;
    } else {
      return false;
    }
  }
  while (parts[p] === ANY) p++;
  return p === parts.length;
}

/**
 * A topic subscription pattern in glob terms. Topic words are dot-separated; a literal word may hold `/` and so
 * span several glob segments. `*` in a subscription matches one topic word, which may itself contain `/`, so it
 * is kept as its own kind: an allow `*` contains it (the word is one segment in the documented sense), but a deny
 * rule overlapping it is judged as if it could span several segments (the safe side).
 */
const SUB_ONE = 3;
type SubPart = string | typeof SUB_ONE | typeof ANY;

function subscriptionParts(destination: Destination): SubPart[] {
  const prefix = destination.full.slice(0, destination.full.length - destination.name.length);
  const parts: SubPart[] = segmentsOf(prefix.replace(/[./]$/, ''));
  for (const word of destination.name.split('.')) {
    if (word === '#') {
      if (parts[parts.length - 1] !== ANY) parts.push(ANY);
    } else if (word === '*') {
      parts.push(SUB_ONE);
    } else {
      parts.push(...segmentsOf(word));
    }
  }
  return parts;
}

/**
 * True when every name the subscription can match is matched by the rule (rule `*` contains a literal or `*`
 * segment but not `#`; `**` contains anything). Memoised over (rule part, subscription part): O(R × S).
 */
function contains(rule: readonly GlobPart[], sub: readonly SubPart[]): boolean {
  return walkPairs(sub.length, (i, j, go) => {
    const r = rule[i];
    const s = sub[j];
    if (r === undefined) return s === undefined;
    if (r === ANY) return go(i + 1, j) || (s !== undefined && go(i, j + 1));
    if (s === undefined || s === ANY) return false;
    if (r === ONE) return go(i + 1, j + 1);
    return typeof s === 'string' && s === r && go(i + 1, j + 1);
  });
}

/**
 * True when some name matches both the rule and the subscription. A subscription `*` is taken as one or more
 * segments here (a topic word may contain `/`), so a deny rule is never missed. Memoised: O(R × S).
 */
function overlaps(rule: readonly GlobPart[], sub: readonly SubPart[]): boolean {
  return walkPairs(sub.length, (i, j, go) => {
    const r = rule[i];
    const s = sub[j];
    if (r === undefined && s === undefined) return true;
    if (r === ANY) return go(i + 1, j) || (s !== undefined && go(i, j + 1));
    if (s === ANY) return go(i, j + 1) || (r !== undefined && go(i + 1, j));
    if (r === undefined || s === undefined) return false;
    if (s === SUB_ONE) return go(i + 1, j + 1) || go(i + 1, j);
    return (r === ONE || r === s) && go(i + 1, j + 1);
  });
}

/**
 * Evaluates `step` over (rule position, subscription position) pairs from (0, 0), each pair at most once: the
 * memo is what keeps `**` against long names polynomial (O(R × S)) instead of exponential.
 */
function walkPairs(subLength: number, step: (i: number, j: number, go: (i: number, j: number) => boolean) => boolean): boolean {
  const memo = new Map<number, boolean>();
  const width = subLength + 1;
  const go = (i: number, j: number): boolean => {
    const key = i * width + j;
    let result = memo.get(key);
    if (result === undefined) {
      result = step(i, j, go);
      memo.set(key, result);
    }
    return result;
  };
  return go(0, 0);
}

/** May a SEND (or a SUBSCRIBE to a concrete destination) under `rule` touch `destination`? */
export function allowsName(rule: Rule, destination: string): boolean {
  const segments = segmentsOf(destination);
  let allowed = false;
  for (const g of rule.allow)
    if (globMatches(g.parts, segments)) {
      allowed = true;
      break;
    }
  if (!allowed) return false;
  for (const g of rule.deny) if (globMatches(g.parts, segments)) return false;
  return true;
}

/**
 * May a SUBSCRIBE read `destination`? A wildcard topic subscription needs an allow rule that contains every name it
 * can match and no deny rule that overlaps it, so no denied name can ever reach it.
 */
export function allowsRead(rule: Rule, destination: Destination): boolean {
  if (destination.kind !== 'topic' || !isPattern(destination.name)) return allowsName(rule, destination.full);
  const sub = subscriptionParts(destination);
  if (!rule.allow.some((g) => contains(g.parts, sub))) return false;
  return !rule.deny.some((g) => overlaps(g.parts, sub));
}

// ---- parsing (users-file entries and token claims share one shape) -----------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function globList(value: unknown, where: string): Glob[] {
  if (!Array.isArray(value)) throw new TypeError(`${where}: expected a list of globs`);
  return value.map((g, i) => compileGlob(g as string, `${where}[${i}]`));
}

/** `read`/`write`: a list of allow globs (shorthand) or `{allow, deny}`; absent means nothing is allowed. */
function parseRule(value: unknown, where: string): Rule {
  if (value === undefined) return { allow: [], deny: [] };
  if (Array.isArray(value)) return { allow: globList(value, where), deny: [] };
  if (!isRecord(value)) throw new TypeError(`${where}: expected a list of globs or {"allow": [...], "deny": [...]}`);
  for (const key of Object.keys(value)) if (key !== 'allow' && key !== 'deny') throw new TypeError(`${where}: unknown key "${key}"`);
  return {
    allow: value.allow === undefined ? [] : globList(value.allow, `${where}.allow`),
    deny: value.deny === undefined ? [] : globList(value.deny, `${where}.deny`),
  };
}

/**
 * `{ "admin": false, "vhosts": { "/": { "read": [...], "write": {...} } } }` as found in a users-file entry (minus
 * its `password`) or in a token's permissions claim. Throws TypeError naming `where` on anything malformed.
 */
export function parseRights(value: unknown, where: string, extraKeys: readonly string[] = []): UserRights {
  if (!isRecord(value)) throw new TypeError(`${where}: expected an object`);
  for (const key of Object.keys(value)) {
    if (key !== 'admin' && key !== 'vhosts' && !extraKeys.includes(key)) throw new TypeError(`${where}: unknown key "${key}"`);
  }
  if (value.admin !== undefined && typeof value.admin !== 'boolean') throw new TypeError(`${where}.admin: expected true or false`);
  const vhosts = new Map<string, VhostRights>();
  if (value.vhosts !== undefined) {
    if (!isRecord(value.vhosts)) throw new TypeError(`${where}.vhosts: expected an object of virtual host names`);
    for (const [name, entry] of Object.entries(value.vhosts)) {
      const at = `${where}.vhosts[${JSON.stringify(name)}]`;
      if (!isRecord(entry)) throw new TypeError(`${at}: expected {"read": ..., "write": ...}`);
      for (const key of Object.keys(entry)) if (key !== 'read' && key !== 'write') throw new TypeError(`${at}: unknown key "${key}"`);
      vhosts.set(name, { read: parseRule(entry.read, `${at}.read`), write: parseRule(entry.write, `${at}.write`) });
    }
  }
  return { admin: value.admin === true, vhosts };
}
