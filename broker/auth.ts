import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from './ports/logger.js';
import { silentLogger } from './ports/logger.js';
import { ALL_RIGHTS, parseRights, type RightsSource, type UserRights } from './permissions.js';

const scrypt = promisify(scryptCallback) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

export interface Credentials {
  readonly login: string | undefined;
  readonly passcode: string | undefined;
  readonly host: string;
  readonly remoteAddress: string;
}

/**
 * `rights` looks up what the user may do, per frame (so a reloaded users file applies to open sessions); absent
 * means every right on every virtual host (authenticators that know nothing of permissions).
 */
export type AuthResult =
  { readonly ok: true; readonly user: string; readonly rights?: RightsSource } | { readonly ok: false; readonly reason: string };

/** Decides who may connect. Called once per CONNECT, off the message path. */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<AuthResult>;
  /** Reads its sources again (SIGHUP); rejects, keeping the old state, when they are invalid. */
  reload?(): Promise<void>;
  /** Stops watching files; called when the broker closes. */
  close?(): void;
}

/** The default: anyone may connect, under the login they give (or `anonymous`). */
export const allowAll: Authenticator = {
  authenticate: async (c) => ({ ok: true, user: c.login ?? 'anonymous' }),
};

/**
 * scrypt cost: N=2^14, r=8, p=1 is the interactive-login setting from the scrypt paper; about 30 ms of one core,
 * paid once per CONNECT, never per message.
 */
const COST = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 32;

/** `scrypt$N$r$p$<salt b64>$<hash b64>`: self-describing, so the cost can rise later without breaking old hashes. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEY_BYTES, COST);
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const expected = Buffer.from(parts[5] ?? '', 'base64');
  if (!Number.isInteger(N) || !Number.isInteger(r) || !Number.isInteger(p) || expected.length === 0) return false;
  const key = await scrypt(password, salt, expected.length, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  return timingSafeEqual(key, expected);
}

/**
 * Unknown logins are checked against this hash, so they cost the same scrypt work as a known login with a wrong
 * password: answer time does not reveal which logins exist. Made once, on first use.
 */
let dummyHash: Promise<string> | undefined;
function dummy(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('base64'));
  return dummyHash;
}

interface UserEntry {
  readonly hash: string;
  readonly rights: UserRights;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `{"users": {"alice": "scrypt$...", "bob": {"password": "scrypt$...", "admin": false, "vhosts": {...}}}}`. The
 * string form is the legacy one: every right on every virtual host. A Map, so logins such as `__proto__` or
 * `constructor` are just names (an object lookup would find Object.prototype's members).
 */
function parseUsers(text: string, path: string): Map<string, UserEntry> {
  const parsed: unknown = JSON.parse(text);
  if (!isRecord(parsed) || !('users' in parsed)) throw new TypeError(`${path}: expected {"users": {...}}`);
  const users = parsed.users;
  if (!isRecord(users)) throw new TypeError(`${path}: "users" must be an object`);
  const out = new Map<string, UserEntry>();
  for (const [name, entry] of Object.entries(users)) {
    if (typeof entry === 'string') {
      out.set(name, { hash: entry, rights: ALL_RIGHTS });
      continue;
    }
    const where = `${path}: user "${name}"`;
    if (!isRecord(entry) || typeof entry.password !== 'string')
      throw new TypeError(`${where} must be a hash string or an object with a "password" hash`);
    out.set(name, { hash: entry.password, rights: parseRights(entry, where, ['password']) });
  }
  return out;
}

/** Reload a changed users file this long after the last change event: editors write in several steps. */
const WATCH_DEBOUNCE_MS = 100;

/**
 * Users (and their permissions) from a JSON file, reloaded on `reload()` (SIGHUP) and whenever the file changes.
 * An invalid file keeps the previous users and logs an error. Sessions look their rights up per frame, so new
 * rules apply to open connections at once; a removed user keeps its connection but is refused on its next
 * SEND or SUBSCRIBE.
 */
export class UsersFileAuthenticator implements Authenticator {
  readonly path: string;
  #users: Map<string, UserEntry>;
  #logger: Logger;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;

  private constructor(path: string, users: Map<string, UserEntry>, logger: Logger) {
    this.path = path;
    this.#users = users;
    this.#logger = logger;
  }

  static async open(path: string, logger: Logger = silentLogger): Promise<UsersFileAuthenticator> {
    const users = parseUsers(await readFile(path, 'utf8'), path);
    void dummy();
    return new UsersFileAuthenticator(path, users, logger);
  }

  get size(): number {
    return this.#users.size;
  }

  async authenticate(c: Credentials): Promise<AuthResult> {
    const login = c.login;
    const entry = login === undefined ? undefined : this.#users.get(login);
    if (login === undefined || c.passcode === undefined) return { ok: false, reason: 'login or passcode is wrong' };
    // Same work and the same message for an unknown user and a wrong password: neither reveals which logins exist.
    const ok = await verifyPassword(c.passcode, entry?.hash ?? (await dummy()));
    if (entry === undefined || !ok) return { ok: false, reason: 'login or passcode is wrong' };
    return { ok: true, user: login, rights: () => this.#users.get(login)?.rights };
  }

  async reload(): Promise<void> {
    this.#users = parseUsers(await readFile(this.path, 'utf8'), this.path);
    this.#logger.info({ usersFile: this.path, users: this.#users.size }, 'users file reloaded');
  }

  /** Watches the file's folder (an editor's save often replaces the file, which a watch on the file would miss). */
  watch(): void {
    if (this.#watcher !== undefined) return;
    const name = basename(this.path);
    this.#watcher = watch(dirname(this.path), (_event, changed) => {
      if (changed !== null && changed !== name) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => {
        this.reload().catch((error: unknown) => {
          this.#logger.error(
            { err: error, usersFile: this.path },
            'users file not reloaded: it is invalid; the previous users stay in force',
          );
        });
      }, WATCH_DEBOUNCE_MS);
      this.#debounce.unref();
    });
    this.#watcher.unref();
    this.#watcher.on('error', (error) =>
      this.#logger.error({ err: error, usersFile: this.path }, 'watching the users file failed; reload with SIGHUP'),
    );
  }

  close(): void {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}

/** Users from a JSON file; kept for callers of the earlier API. */
export function usersFileAuthenticator(path: string, logger?: Logger): Promise<UsersFileAuthenticator> {
  return UsersFileAuthenticator.open(path, logger);
}

/**
 * What `addUser --admin` writes for a user that had no object entry: the object form cannot say "every virtual
 * host" as the legacy string does, so the admin gets every right on the default virtual host `/` (edit the file
 * for others).
 */
const NEW_ADMIN_VHOSTS = Object.freeze({ '/': { read: ['**'], write: ['**'] } });

/**
 * Adds or replaces one user's password in a users file, creating the file when needed. An entry in object form
 * keeps its permissions; the rest of the file is written back as it was. `admin: true` also makes the user an
 * admin of the management API.
 */
export async function addUser(path: string, login: string, password: string, options: { readonly admin?: boolean } = {}): Promise<void> {
  if (password === '') throw new TypeError('the password must not be empty');
  let file: Record<string, unknown> = { users: {} };
  try {
    const text = await readFile(path, 'utf8');
    parseUsers(text, path); // refuse to rewrite a file that is already broken
    file = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const users = file.users as Record<string, unknown>;
  const hash = await hashPassword(password);
  const current = Object.hasOwn(users, login) ? users[login] : undefined;
  let value: unknown = isRecord(current) ? { ...current, password: hash } : hash;
  if (options.admin === true)
    value = isRecord(current) ? { ...current, password: hash, admin: true } : { password: hash, admin: true, vhosts: NEW_ADMIN_VHOSTS };
  // defineProperty: a plain assignment to `__proto__` would change the object's prototype instead of adding a user.
  Object.defineProperty(users, login, { value, enumerable: true, writable: true, configurable: true });
  await writeFile(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
}
