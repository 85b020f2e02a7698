import type { Broker, ProtocolError, Session } from '../../broker/index.js';

/** Rejects with a message naming what was awaited, so a hung client fails its test instead of the mocha timeout. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Whatever a client hands to a callback (messages, receipts), in arrival order. `next()` takes the oldest one,
 * waiting for it when none is there yet.
 */
export class Inbox<T> {
  #items: T[] = [];
  #waiters: ((item: T) => void)[] = [];

  readonly push = (item: T): void => {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(item);
    else this.#items.push(item);
  };

  next(what = 'the next item', ms = 3000): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift() as T);
    let waiter: ((item: T) => void) | undefined;
    const arrived = new Promise<T>((resolve) => {
      waiter = resolve;
      this.#waiters.push(resolve);
    });
    return within(arrived, ms, what).catch((error: unknown) => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      throw error;
    });
  }

  /** Takes `n` items in order. */
  async take(n: number, what = `${n} items`, ms = 3000): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(`${what} (got ${i})`, ms));
    return out;
  }

  /** Items that arrived and were not taken. */
  get pending(): readonly T[] {
    return this.#items;
  }
}

export interface SessionErrorLog {
  /** `code: message` of every ERROR the broker sent since `watch`. */
  readonly errors: string[];
  stop(): void;
}

/** Records every ERROR the broker sends, so a spec can assert that a whole client run caused none. */
export function watchSessionErrors(broker: Broker): SessionErrorLog {
  const errors: string[] = [];
  const listener = (_session: Session, error: ProtocolError): void => {
    errors.push(`${error.code}: ${error.message}`);
  };
  broker.events.on('session-error', listener);
  return { errors, stop: () => broker.events.off('session-error', listener) };
}

/** The broker's side of a client connection, found by the `session` header of its CONNECTED frame. */
export function sessionById(broker: Broker, id: string | undefined): Session | undefined {
  for (const s of broker.sessions) if (s.id === id) return s;
  return undefined;
}

/** Every byte value 0..255 twice, so the body holds NULs and is not valid UTF-8. */
export function binaryFixture(): Uint8Array {
  const bytes = new Uint8Array(512);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256;
  return bytes;
}

/** A 1 MiB text body of printable ASCII that differs from one 64-byte line to the next. */
export function largeText(bytes = 1024 * 1024): string {
  const lines: string[] = [];
  for (let n = 0, size = 0; size < bytes; n++) {
    const line = `line ${n.toString().padStart(8, '0')} ${'abcdefghijklmnopqrstuvwxyz0123456789'.slice(n % 36)}`.padEnd(63, '.') + '\n';
    lines.push(line);
    size += line.length;
  }
  return lines.join('').slice(0, bytes);
}

/**
 * The exactly-once check of a queue shared by several consumers: every sent body arrived at exactly one of them,
 * none twice, none lost. `received` is what each consumer got, read only once the consumers have settled (an
 * UNSUBSCRIBE or DISCONNECT receipt: the broker sends a connection's frames in order, so no late copy can follow).
 */
export function expectEachDeliveredOnce(sent: readonly string[], received: readonly (readonly string[])[]): void {
  const seen = new Map<string, number[]>();
  received.forEach((bodies, consumer) => {
    for (const body of bodies) seen.set(body, [...(seen.get(body) ?? []), consumer]);
  });
  const twice = [...seen]
    .filter(([, consumers]) => consumers.length > 1)
    .map(([body, consumers]) => `${body} → consumers ${consumers.join(', ')}`);
  const lost = sent.filter((body) => !seen.has(body));
  const stray = [...seen.keys()].filter((body) => !sent.includes(body));
  const counts = received.map((r) => r.length).join(' + ');
  if (twice.length + lost.length + stray.length > 0) {
    throw new Error(
      `queue delivery was not exactly-once (received ${counts} of ${sent.length}): ` +
        `delivered twice: [${twice.join('; ')}], lost: [${lost.join(', ')}], never sent: [${stray.join(', ')}]`,
    );
  }
}

/** Polls `check` every 10 ms until it holds, failing with `what` after `ms`. */
export async function waitUntil(check: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await delay(10);
  }
}
