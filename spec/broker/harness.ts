/**
 * Shared setup for the wire specs: a broker per `describe`, raw clients closed after every test, and the
 * assertions every ERROR and RECEIPT must pass.
 */
import { expect } from 'chai';
import type { Broker, BrokerOptions, ConfigInput } from '../../broker/index.js';
import { escapeHeader, type StompVersion } from '../../frames/index.js';
import { startBroker, type TestBroker } from '../support/broker.js';
import { RawClient, connect, stompFrame, type HeaderList, type RawFrame, type TcpRawClient, type WsRawClient } from '../support/raw.js';
import { MIN_QUIET_MS, quietPeriod } from '../support/timing.js';

export interface Harness {
  readonly broker: Broker;
  readonly port: number;
  readonly wsUrl: string;
  /** A TCP client that has sent nothing yet. */
  raw(): Promise<TcpRawClient>;
  /** A TCP client past CONNECT (1.2, host localhost unless `headers` say otherwise). */
  client(headers?: HeaderList): Promise<TcpRawClient>;
  /** A WebSocket client offering `protocols`. */
  ws(protocols?: string | string[]): Promise<WsRawClient>;
}

/** Starts a broker before the enclosing `describe` and stops it after; closes every client after each test. */
export function useBroker(config: ConfigInput = {}, options: Omit<BrokerOptions, 'config'> = {}): Harness {
  let running: TestBroker | undefined;
  const open: RawClient[] = [];
  const track = <C extends RawClient>(c: C): C => {
    open.push(c);
    return c;
  };
  before(async () => {
    running = await startBroker(config, options);
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  after(async () => {
    await running?.close();
    running = undefined;
  });
  const get = (): TestBroker => {
    if (running === undefined) throw new Error('broker not started');
    return running;
  };
  return {
    get broker() {
      return get().broker;
    },
    get port() {
      return get().tcpPort;
    },
    get wsUrl() {
      return get().wsUrl;
    },
    raw: async () => track(await RawClient.tcp(get().tcpPort)),
    client: async (headers) => {
      const c = track(await RawClient.tcp(get().tcpPort));
      await connect(c, headers);
      return c;
    },
    ws: async (protocols) => track(await RawClient.ws(get().wsUrl, protocols)),
  };
}

export const V10: HeaderList = { 'accept-version': '1.0', host: 'localhost' };
export const V11: HeaderList = { 'accept-version': '1.1', host: 'localhost' };
export const V12: HeaderList = { 'accept-version': '1.2', host: 'localhost' };
/** A 1.0 CONNECT: no accept-version at all. */
export const LEGACY: HeaderList = {};

/** What every ERROR says its body is (with a charset: stompit 1.0.0 crashes on exactly `text/plain`). */
export const ERROR_CONTENT_TYPE = 'text/plain;charset=utf-8';

export interface ExpectedError {
  /** The `message` header, unescaped. */
  readonly message: string;
  /** The `receipt-id` header, when the offending frame asked for a receipt. */
  readonly receiptId?: string;
  /** Headers between `receipt-id` and `content-type` (e.g. `version`). */
  readonly extra?: ReadonlyArray<readonly [string, string]>;
  /** The body, exactly (a trailing LF is part of every detail), or a pattern it must match. */
  readonly body?: string | RegExp;
}

/**
 * The next frame must be exactly this ERROR (STOMP 1.2 §ERROR): `message`, `receipt-id` when asked, extra headers,
 * `content-type:text/plain;charset=utf-8`, the true `content-length`, a non-empty detail body; and the broker must then close the
 * connection without sending anything more.
 */
export async function expectError(client: RawClient, expected: ExpectedError, version: StompVersion = client.version): Promise<RawFrame> {
  const frame = await client.nextFrame();
  const body = frame.body.toString('utf8');
  expect(frame.command, frame.raw.toString('latin1')).to.equal('ERROR');
  const headers: (readonly [string, string])[] = [['message', expected.message]];
  if (expected.receiptId !== undefined) headers.push(['receipt-id', expected.receiptId]);
  headers.push(...(expected.extra ?? []), ['content-type', ERROR_CONTENT_TYPE], ['content-length', String(frame.body.length)]);
  let wire = 'ERROR\n';
  for (const [name, value] of headers) wire += `${escapeHeader(name, version)}:${escapeHeader(value, version)}\n`;
  expect(body).to.match(/^[^\0]+\n$/, 'a one-line-or-more text detail ending in LF');
  if (typeof expected.body === 'string') expect(body).to.equal(expected.body);
  else if (expected.body !== undefined) expect(body).to.match(expected.body);
  expect(frame.raw.toString('utf8')).to.equal(`${wire}\n${body}\0`);
  await client.closed();
  expect(client.closedByServer, 'the broker closed the connection').to.equal(true);
  const all = client.rawBytes;
  expect(all.subarray(all.length - frame.raw.length).equals(frame.raw), 'nothing follows the ERROR').to.equal(true);
  return frame;
}

/** The next frame must be exactly `RECEIPT\nreceipt-id:<id>\n\n\0` (escaped for the session's version). */
export async function expectReceipt(client: RawClient, receiptId: string, version: StompVersion = client.version): Promise<RawFrame> {
  const frame = await client.nextFrame();
  expect(frame.raw.toString('utf8')).to.equal(`RECEIPT\nreceipt-id:${escapeHeader(receiptId, version)}\n\n\0`);
  return frame;
}

/**
 * Sends a frame with a `receipt` header appended and waits for its RECEIPT. MESSAGEs the frame caused (a SUBSCRIBE
 * to a queue that holds messages, an ACK that frees a prefetch slot) may go out before the RECEIPT: they are left
 * for nextFrame, in order.
 */
export async function withReceipt(
  client: RawClient,
  command: string,
  headers: ReadonlyArray<readonly [string, string]>,
  body = '',
): Promise<void> {
  const receipt = `r-${command.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`;
  client.send(stompFrame(command, [...headers, ['receipt', receipt]], body));
  const before: RawFrame[] = [];
  for (;;) {
    const frame = await client.nextFrame();
    if (frame.command !== 'MESSAGE') {
      expect(frame.raw.toString('utf8')).to.equal(`RECEIPT\nreceipt-id:${receipt}\n\n\0`);
      break;
    }
    before.push(frame);
  }
  client.unread(...before);
}

/** SUBSCRIBE and wait until it is live (its RECEIPT). */
export function subscribe(
  client: RawClient,
  destination: string,
  id: string,
  extra: ReadonlyArray<readonly [string, string]> = [],
): Promise<void> {
  return withReceipt(client, 'SUBSCRIBE', [['destination', destination], ['id', id], ...extra]);
}

/** SEND and wait until it is processed (its RECEIPT). */
export function publish(
  client: RawClient,
  destination: string,
  body: string,
  extra: ReadonlyArray<readonly [string, string]> = [],
): Promise<void> {
  return withReceipt(client, 'SEND', [['destination', destination], ...extra], body);
}

/** The next frame must be a MESSAGE; returns it with its body as text. */
export async function nextMessage(client: RawClient, timeoutMs?: number): Promise<RawFrame & { text: string }> {
  const frame = await client.nextFrame(timeoutMs);
  expect(frame.command, frame.raw.toString('latin1')).to.equal('MESSAGE');
  return Object.assign(frame, { text: frame.body.toString('utf8') });
}

/** A header that must be present. */
export function header(frame: RawFrame, name: string): string {
  const value = frame.headers.get(name);
  expect(value, `header ${name} in ${JSON.stringify(frame.raw.toString('latin1'))}`).to.be.a('string');
  return value as string;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exactly the bytes of a MESSAGE the broker encodes: prefix headers, destination, message-id, the rest, length. */
export function messageWire(m: {
  subscription: string;
  ack?: string;
  destination: string;
  messageId: string;
  headers?: ReadonlyArray<readonly [string, string]>;
  body: string | Buffer;
}): Buffer {
  const body = typeof m.body === 'string' ? Buffer.from(m.body) : m.body;
  let head = `MESSAGE\nsubscription:${m.subscription}\n`;
  if (m.ack !== undefined) head += `ack:${m.ack}\n`;
  head += `destination:${m.destination}\nmessage-id:${m.messageId}\n`;
  for (const [k, v] of m.headers ?? []) head += `${k}:${v}\n`;
  head += `content-length:${body.length}\n\n`;
  return Buffer.concat([Buffer.from(head), body, Buffer.from([0])]);
}

let probes = 0;

/**
 * Nothing is on its way to `client`, and its connection is open. Proved by an event rather than by a silence
 * window: a BEGIN/ABORT pair (no state survives it, no permission applies) asks for a RECEIPT, which the session
 * writes after everything already written to this connection, so a frame that was due arrives first and fails the
 * check. It covers frames caused by work the broker has finished (a SEND whose RECEIPT came back, a closed
 * connection the broker has dropped: `closeAtBroker`); timers and pre-CONNECT checks use `expectSilence`.
 */
export async function expectQuiet(client: RawClient): Promise<void> {
  const id = `quiet-probe-${++probes}`;
  client.send(Buffer.concat([stompFrame('BEGIN', { transaction: id }), stompFrame('ABORT', { transaction: id, receipt: id })]));
  const frame = await client.nextFrame(10_000);
  expect(frame.raw.toString('latin1'), 'nothing before the probe RECEIPT').to.equal(`RECEIPT\nreceipt-id:${id}\n\n\0`);
  expect(client.isClosed, 'connection still open').to.equal(false);
}

/**
 * No frame arrives for `quietPeriod(minMs)` (at least 100 ms, more on a busy machine) and the connection stays
 * open. Only for what no RECEIPT can order: a timer that must not fire, a connection that has not CONNECTed.
 */
export async function expectSilence(client: RawClient, minMs = MIN_QUIET_MS): Promise<void> {
  await client.noFrame(await quietPeriod(minMs));
  expect(client.isClosed, 'connection still open').to.equal(false);
}

/** Closes `client` from the test's side and resolves once the broker has dropped its session. */
export async function closeAtBroker(broker: Broker, client: TcpRawClient, timeoutMs = 10_000): Promise<void> {
  // Taken before the close: a destroyed socket forgets its port.
  const address = `:${client.socket.localPort ?? -1}`;
  client.close();
  const deadline = Date.now() + timeoutMs;
  while ([...broker.sessions].some((s) => s.connection.remoteAddress.endsWith(address))) {
    if (Date.now() > deadline) throw new Error(`the broker still holds the session of ${address} after ${timeoutMs} ms`);
    await sleep(5);
  }
}

export { connect, stompFrame };
