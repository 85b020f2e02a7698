import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const scrypt = promisify(scryptCallback) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

export interface Credentials {
  readonly login: string | undefined;
  readonly passcode: string | undefined;
  readonly host: string;
  readonly remoteAddress: string;
}

export type AuthResult = { readonly ok: true; readonly user: string } | { readonly ok: false; readonly reason: string };

/** Decides who may connect. Called once per CONNECT, off the message path. */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<AuthResult>;
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

interface UsersFile {
  users: Record<string, string>;
}

function parseUsers(text: string, path: string): UsersFile {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || !('users' in parsed)) throw new TypeError(`${path}: expected {"users": {...}}`);
  const users = (parsed as { users: unknown }).users;
  if (typeof users !== 'object' || users === null) throw new TypeError(`${path}: "users" must be an object`);
  const out: Record<string, string> = {};
  for (const [name, hash] of Object.entries(users)) {
    if (typeof hash !== 'string') throw new TypeError(`${path}: the hash of user "${name}" must be a string`);
    out[name] = hash;
  }
  return { users: out };
}

/** Users from a JSON file `{"users": {"alice": "scrypt$..."}}`, read once at start. */
export async function usersFileAuthenticator(path: string): Promise<Authenticator> {
  const { users } = parseUsers(await readFile(path, 'utf8'), path);
  return {
    async authenticate(c) {
      const hash = c.login === undefined ? undefined : users[c.login];
      // Same message for an unknown user and a wrong password: the reply must not reveal which logins exist.
      if (hash === undefined || c.passcode === undefined || !(await verifyPassword(c.passcode, hash))) {
        return { ok: false, reason: 'login or passcode is wrong' };
      }
      return { ok: true, user: c.login as string };
    },
  };
}

/** Adds or replaces one user in a users file, creating the file when needed. */
export async function addUser(path: string, login: string, password: string): Promise<void> {
  let file: UsersFile = { users: {} };
  try {
    file = parseUsers(await readFile(path, 'utf8'), path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  file.users[login] = await hashPassword(password);
  await writeFile(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
}
