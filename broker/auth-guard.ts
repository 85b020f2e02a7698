/**
 * Throttling in front of any authenticator: a growing delay per failed attempt, per remote address and per
 * login, paid BEFORE the password check so guessing costs the attacker time and the node no CPU; attempts from
 * one address run one at a time; and at most a few checks (scrypt) run at once, so a flood of wrong passwords
 * from one place cannot starve a real user connecting from another.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuthResult, Authenticator, Credentials } from './auth.js';
import type { Logger } from './ports/logger.js';
import type { BrokerStats } from './stats.js';

export interface AuthGuardSettings {
  /** Delay before the next attempt after the first failure; doubles with each further failure. */
  readonly authFailureDelayMs: number;
  /** The delay never grows past this. */
  readonly authFailureDelayMaxMs: number;
  /** Failures are forgotten after this long without a new one. */
  readonly authFailureForgetMs: number;
  /** Password checks running at the same time, node-wide; more wait their turn. */
  readonly maxConcurrentAuthChecks: number;
}

/** Addresses and logins whose failures are remembered; the oldest is forgotten first, so a scan cannot grow it. */
const MAX_TRACKED = 10_000;
/** Attempts from one address waiting for their turn; more are refused at once, without a check. */
const MAX_WAITING_PER_ADDRESS = 64;
/** Logins are remembered and logged by at most this many characters (a login header may be 10 KiB). */
const MAX_LOGIN_CHARS = 128;

/** `10.0.0.7:53211` → `10.0.0.7`: transports give `address:port`, and every connection has its own port. */
function hostOf(remote: string): string {
  const colon = remote.lastIndexOf(':');
  return colon > 0 ? remote.slice(0, colon) : remote;
}

interface Failures {
  count: number;
  last: number;
}

/** A FIFO of waiters for one of `size` slots. */
class Slots {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

interface Lane {
  tail: Promise<unknown>;
  waiting: number;
}

export class AuthGuard implements Authenticator {
  readonly inner: Authenticator;
  #settings: AuthGuardSettings;
  #logger: Logger;
  #stats: BrokerStats;
  #byAddress = new Map<string, Failures>();
  #byLogin = new Map<string, Failures>();
  #lanes = new Map<string, Lane>();
  #slots: Slots;

  constructor(inner: Authenticator, settings: AuthGuardSettings, logger: Logger, stats: BrokerStats) {
    if (!(settings.maxConcurrentAuthChecks >= 1)) throw new TypeError('maxConcurrentAuthChecks must be at least 1');
    this.inner = inner;
    this.#settings = settings;
    this.#logger = logger;
    this.#stats = stats;
    this.#slots = new Slots(settings.maxConcurrentAuthChecks);
  }

  reload(): Promise<void> {
    return this.inner.reload?.() ?? Promise.resolve();
  }

  close(): void {
    this.inner.close?.();
  }

  async authenticate(c: Credentials): Promise<AuthResult> {
    const address = hostOf(c.remoteAddress);
    let lane = this.#lanes.get(address);
    if (lane === undefined) {
      lane = { tail: Promise.resolve(), waiting: 0 };
      this.#lanes.set(address, lane);
    }
    if (lane.waiting >= MAX_WAITING_PER_ADDRESS) {
      this.#failed(c, 0, 'too many login attempts at once from this address');
      return { ok: false, reason: 'too many login attempts at once from this address; try again later' };
    }
    lane.waiting++;
    // One attempt per address at a time: parallel guesses queue behind each other and each pays its delay.
    const run = lane.tail.then(() => this.#attempt(c, address));
    lane.tail = run.then(undefined, () => undefined);
    try {
      return await run;
    } finally {
      lane.waiting--;
      if (lane.waiting === 0 && this.#lanes.get(address) === lane) this.#lanes.delete(address);
    }
  }

  async #attempt(c: Credentials, address: string): Promise<AuthResult> {
    const login = (c.login ?? '').slice(0, MAX_LOGIN_CHARS);
    const delayMs = Math.max(this.#delay(this.#byAddress, address), this.#delay(this.#byLogin, login));
    // Paid before the check: waiting costs a timer, the check costs ~30 ms of CPU.
    if (delayMs > 0) await sleep(delayMs);
    await this.#slots.acquire();
    let result: AuthResult;
    try {
      result = await this.inner.authenticate(c);
    } finally {
      this.#slots.release();
    }
    if (result.ok) {
      // The password of this login was right: its owner's own typos no longer slow it down.
      this.#byLogin.delete(login);
    } else {
      this.#record(this.#byAddress, address);
      this.#record(this.#byLogin, login);
      this.#failed(c, delayMs, result.reason);
    }
    return result;
  }

  #failed(c: Credentials, delayMs: number, reason: string): void {
    this.#stats.limitHit('auth-failures');
    // Never the passcode: only who tried, from where, and why it failed.
    this.#logger.warn({ login: c.login?.slice(0, MAX_LOGIN_CHARS), remote: c.remoteAddress, delayMs, reason }, 'authentication failed');
  }

  /** The delay owed by a key's earlier failures: base × 2^(failures-1), capped; 0 once forgiven. */
  #delay(map: Map<string, Failures>, key: string): number {
    const f = map.get(key);
    if (f === undefined) return 0;
    const s = this.#settings;
    if (Date.now() - f.last > s.authFailureForgetMs) {
      map.delete(key);
      return 0;
    }
    return Math.min(s.authFailureDelayMs * 2 ** Math.min(f.count - 1, 30), s.authFailureDelayMaxMs);
  }

  #record(map: Map<string, Failures>, key: string): void {
    const now = Date.now();
    const f = map.get(key);
    const forgotten = f === undefined || now - f.last > this.#settings.authFailureForgetMs;
    map.delete(key); // re-inserted last: the Map's order is the order of last failure
    map.set(key, { count: forgotten ? 1 : f.count + 1, last: now });
    if (map.size > MAX_TRACKED) map.delete(map.keys().next().value as string);
  }
}
