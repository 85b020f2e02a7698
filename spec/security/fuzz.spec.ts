/**
 * Live mutation fuzzer (issue #8, item 8): fast-check draws mutated frames and sequences (fuzz-corpus.ts) and
 * sends them to a running node over TCP and over WebSocket, while a control client on its own connection
 * publishes to itself every 100 ms.
 *
 * How inputs are driven: a few lanes per transport each keep one connection and send inputs on it one after
 * another. After each input a lane sends a probe (BEGIN + ABORT with a receipt: no routing, no state left) and
 * waits for the probe's RECEIPT (the session survived and is in step), for the broker to close the connection
 * (after an ERROR, a DISCONNECT, a WebSocket-level refusal), or for PROBE_WAIT_MS to pass (the input left the
 * parser mid-frame, e.g. a content-length that promises more than was sent: the lane drops that connection). An
 * input marked `fresh` goes first on a brand-new connection, so CONNECTs are fuzzed too; any other input goes on
 * the lane's live session, made with a valid CONNECT when there is none.
 *
 * What must hold, checked per batch of inputs (one fast-check run) and over the whole run:
 * - no uncaught exception or unhandled rejection in the process (the broker runs in it);
 * - no `internal error`: `broker.stats.errors` never counts ERR_INTERNAL, and no client sees that message;
 * - every ERROR a fuzzed connection receives parses, has a `message` header, is the last frame on its connection
 *   and is followed by the broker closing it;
 * - the control client receives every message it published, in order, and its connection stays open;
 * - `/healthz` answers 200 at the end; the longest event-loop stall stays under STALL_BOUND_MS, and the longest
 *   one spent working (not descheduled by a busy machine) under BUSY_BOUND_MS;
 * - once the fuzz connections are closed, `broker.sessions` holds only the control client's session.
 *
 * Reproduce: the seeds are printed at the start; STOMPEDE_FUZZ_SEED=<n> replays a run (the WebSocket test uses
 * n+1), STOMPEDE_FUZZ_PATH=<path from fast-check's report> jumps to the failing batch, STOMPEDE_FUZZ_SHRINK=1 lets
 * fast-check shrink it (slow: every shrink step is a live batch), and STOMPEDE_FUZZ_INPUTS=<n> (local runs only)
 * sets the inputs per transport (default 10,000, so 20,000 per run).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { BROKER_ERRORS, type ProtocolError } from '../../broker/errors.js';
import type { Session } from '../../broker/session.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { RawClient, connect, stompFrame, type RawFrame, type WsRawClient } from '../support/raw.js';
import { fuzzInputArb, inputBytes, inputPieces, showBytes, type FuzzInput } from './fuzz-corpus.js';
import { longestStallMs, until } from './support.js';

const INPUTS_PER_TRANSPORT = positiveEnv('STOMPEDE_FUZZ_INPUTS', 10_000);
const BATCH = 250;
/** Connections fuzzed at once per transport: enough to overlap round trips, few enough for a shared 2-core box. */
const LANES = 8;
/** A probe's RECEIPT takes well under 5 ms on an idle machine; this much silence means the parser waits mid-frame. */
const PROBE_WAIT_MS = 150;
/** After an ERROR the broker ends the connection at once; it destroys it after closeTimeoutMs (2 s) at the latest. */
const CLOSE_AFTER_ERROR_MS = 4_000;
/**
 * Two bounds on event-loop stalls. Measured here at load average 11-15 on the shared 2 cores: gaps of up to
 * 140-300 ms in which this process used 2-5 ms of CPU (the OS ran others), and busy gaps under 25 ms.
 * - STALL_BOUND_MS, wall time (`longestStallMs`): generous, because on a loaded machine a gap includes time the
 *   OS does not run us (870 ms seen with seven test sessions on the 2 cores, issue #10); the freezes issue #8
 *   found (6.8 s from one SUBSCRIBE + SEND, > 5 s to close a connection) still fail it more than twice over.
 * - BUSY_BOUND_MS, the worst gap counted only as far as this process spent CPU in it: the loop held by work.
 *   process.cpuUsage() counts every thread (V8's parallel GC, libuv's pool), and 16 fuzz clients share the loop
 *   with the broker, so one major GC under a CPU hog reads as ~110 ms of "work" (seen in a `make test` beside a
 *   busy loop). The bound is above that and still far below what a frame that holds the loop costs (seconds, in
 *   issue #8); the per-attack 50 ms bound is checked where one attack runs alone (spec/security/matching.spec.ts).
 */
const STALL_BOUND_MS = 2_000;
const BUSY_BOUND_MS = 400;
const CONTROL_INTERVAL_MS = 100;

const baseSeed =
  process.env.STOMPEDE_FUZZ_SEED !== undefined ? Number(process.env.STOMPEDE_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(baseSeed))
  throw new TypeError(`STOMPEDE_FUZZ_SEED must be an integer, got "${process.env.STOMPEDE_FUZZ_SEED ?? ''}"`);

function positiveEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new TypeError(`${name} must be a positive integer, got "${text}"`);
  return n;
}

type Transport = 'tcp' | 'ws';
/**
 * How a connection came out of an input: in step (probe answered), ERROR then close, closed by the broker without
 * an ERROR (a DISCONNECT in the input, or a WebSocket-level refusal such as invalid UTF-8 in a text message),
 * or stuck mid-frame.
 */
type Outcome = 'receipt' | 'error' | 'closed' | 'stuck';

/** What went wrong, with the input that was on the connection when it did. */
interface Finding {
  readonly what: string;
  readonly input: FuzzInput | undefined;
  readonly sent: Buffer | undefined;
}

class FuzzRun {
  readonly findings: Finding[] = [];
  readonly outcomes = new Map<Outcome, number>([
    ['receipt', 0],
    ['error', 0],
    ['closed', 0],
    ['stuck', 0],
  ]);
  /** A few inputs after which the broker closed without an ERROR, to show in the log. */
  readonly silent: string[] = [];
  /** ERROR `message` headers seen, to show what the inputs reached. */
  readonly errors = new Map<string, number>();
  inputs = 0;
  connections = 0;
  /** Every client opened, so all can be closed at the end whatever happened. */
  readonly open = new Set<RawClient>();
  /** Checks of "ERROR then close" still running; awaited at the end of each batch. */
  readonly closing: Promise<void>[] = [];
  /** Inputs sent and not yet answered: the suspects when the loop stalls. */
  readonly inflight = new Set<FuzzInput>();
  #probe = 0;

  constructor(
    readonly target: TestBroker,
    readonly transport: Transport,
  ) {}

  async client(): Promise<RawClient> {
    const c =
      this.transport === 'tcp'
        ? await RawClient.tcp(this.target.tcpPort)
        : await RawClient.ws(this.target.wsUrl, ['v12.stomp', 'v11.stomp', 'v10.stomp']);
    this.connections++;
    this.open.add(c);
    return c;
  }

  /** One lane: inputs in order on one connection at a time. */
  async lane(inputs: FuzzInput[]): Promise<void> {
    let c: RawClient | undefined;
    for (let input = inputs.shift(); input !== undefined; input = inputs.shift()) {
      if (input.fresh || c === undefined || c.isClosed) {
        this.drop(c);
        c = await this.client();
        if (!input.fresh) {
          const reply = await connect(c).catch((error: unknown) => error);
          if (reply instanceof Error) {
            this.findings.push({ what: `a valid CONNECT failed: ${reply.message}`, input: undefined, sent: undefined });
            this.drop(c);
            c = undefined;
            continue;
          }
        }
      }
      const outcome = await this.send(c, input);
      this.inputs++;
      this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
      if (outcome === 'closed' && this.silent.length < 3)
        this.silent.push(
          `${JSON.stringify(input)} ${showBytes(inputBytes(input), 200)}${input.text ? ' (text)' : ''} code ${(c as WsRawClient).closeCode} got ${showBytes(c.rawBytes.subarray(-300))}`,
        );
      if (outcome !== 'receipt') {
        this.drop(c);
        c = undefined;
      }
    }
    this.drop(c);
  }

  /** Sends one input and its probe; returns how the connection came out of it. */
  async send(c: RawClient, input: FuzzInput): Promise<Outcome> {
    this.inflight.add(input);
    try {
      return await this.#send(c, input);
    } finally {
      this.inflight.delete(input);
    }
  }

  async #send(c: RawClient, input: FuzzInput): Promise<Outcome> {
    for (const piece of inputPieces(input)) {
      if (c.isClosed) break;
      if (this.transport === 'ws') (c as WsRawClient).send(piece, !input.text);
      else c.send(piece);
      // Let the broker read each piece on its own: the parser must give the same answer however bytes are split.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const id = `fz-probe-${++this.#probe}`;
    if (!c.isClosed)
      c.send(
        Buffer.concat([
          stompFrame('BEGIN', [['transaction', id]]),
          stompFrame('ABORT', [
            ['transaction', id],
            ['receipt', id],
          ]),
        ]),
      );
    let outcome: Outcome = 'stuck';
    for (;;) {
      let frame: RawFrame;
      try {
        frame = await c.nextFrame(PROBE_WAIT_MS);
      } catch {
        if (c.isClosed) outcome = 'closed';
        break;
      }
      if (frame.command === 'ERROR') {
        this.checkError(c, frame, input);
        outcome = 'error';
        break;
      }
      if (frame.command === 'RECEIPT' && frame.headers.get('receipt-id') === id) {
        outcome = 'receipt';
        break;
      }
    }
    if (c.parseError !== undefined)
      this.findings.push({
        what: `the broker sent bytes that do not parse: ${c.parseError.message}`,
        input,
        sent: c.rawBytes.subarray(0, 2000),
      });
    return outcome;
  }

  /** STOMP 1.2 §ERROR: the frame parses and has `message`; the broker then closes and sends nothing more. */
  checkError(c: RawClient, error: RawFrame, input: FuzzInput): void {
    const message = error.headers.get('message');
    this.errors.set(message ?? '(none)', (this.errors.get(message ?? '(none)') ?? 0) + 1);
    if (message === undefined || message === '')
      this.findings.push({ what: `ERROR without a message header: ${showBytes(error.raw)}`, input, sent: inputBytes(input) });
    if (message === 'internal error')
      this.findings.push({ what: `internal error: ${showBytes(error.raw)}`, input, sent: inputBytes(input) });
    this.closing.push(
      c.closed(CLOSE_AFTER_ERROR_MS).then(
        () => {
          if (!c.closedByServer) return; // we closed it first (end of batch): nothing to say about the broker
          const last = c.frames[c.frames.length - 1];
          if (last !== error)
            this.findings.push({
              what: `a frame followed the ERROR: ${showBytes(last?.raw ?? Buffer.alloc(0))}`,
              input,
              sent: inputBytes(input),
            });
        },
        () => {
          this.findings.push({
            what: `connection still open ${CLOSE_AFTER_ERROR_MS} ms after ERROR ${showBytes(error.raw)}`,
            input,
            sent: inputBytes(input),
          });
        },
      ),
    );
  }

  drop(c: RawClient | undefined): void {
    if (c === undefined) return;
    // An ERROR's close is being watched: let the broker close it (the watch reports if it does not).
    if (!c.frames.some((f) => f.command === 'ERROR')) c.close();
    this.open.delete(c);
    if (c.isClosed) return;
    this.open.add(c);
    void c
      .closed(CLOSE_AFTER_ERROR_MS + 1000)
      .catch(() => undefined)
      .then(() => {
        c.close();
        this.open.delete(c);
      });
  }

  closeAll(): void {
    for (const c of this.open) c.close();
    this.open.clear();
  }
}

/** A client publishing to its own topic every 100 ms; it must get every message back, in order. */
class Control {
  readonly destination = `/topic/${uniqueName('fz-control')}`;
  sent = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly sentAt: number[] = [];

  private constructor(readonly client: RawClient) {}

  static async start(target: TestBroker): Promise<Control> {
    const client = await RawClient.tcp(target.tcpPort);
    await connect(client, { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '0,0' });
    const control = new Control(client);
    client.send(
      stompFrame('SUBSCRIBE', [
        ['destination', control.destination],
        ['id', 'ctl'],
        ['receipt', 'ctl-sub'],
      ]),
    );
    const receipt = await client.nextFrame();
    expect(receipt.command).to.equal('RECEIPT');
    control.#timer = setInterval(() => {
      control.sentAt.push(Date.now());
      client.send(stompFrame('SEND', [['destination', control.destination]], String(control.sent++)));
    }, CONTROL_INTERVAL_MS);
    return control;
  }

  get received(): RawFrame[] {
    return this.client.frames.filter((f) => f.command === 'MESSAGE');
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/**
 * Watches the loop like `longestStallMs`, and also reads the process CPU time at every tick. A gap with little CPU
 * in it is the OS not running us (a loaded machine); a gap full of CPU is work holding the loop. `busyMs` is the
 * worst gap counted only as far as CPU was spent in it (min of the two), with the inputs in flight at that moment.
 */
class GapWatch {
  worstMs = 0;
  worstCpuMs = 0;
  busyMs = 0;
  /** Inputs in flight when the busiest gap ended. */
  suspects: FuzzInput[] = [];
  #last = performance.now();
  #cpu = process.cpuUsage();
  #timer: NodeJS.Timeout;

  constructor(readonly inflight: ReadonlySet<FuzzInput>) {
    this.#timer = setInterval(() => {
      const now = performance.now();
      const cpu = process.cpuUsage();
      const gap = now - this.#last - 1;
      const cpuMs = (cpu.user - this.#cpu.user + cpu.system - this.#cpu.system) / 1000;
      if (gap > this.worstMs) {
        this.worstMs = gap;
        this.worstCpuMs = cpuMs;
      }
      const busy = Math.min(gap, cpuMs);
      if (busy > this.busyMs) {
        this.busyMs = busy;
        this.suspects = [...this.inflight];
      }
      this.#last = now;
      this.#cpu = cpu;
    }, 1);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

async function healthz(target: TestBroker): Promise<{ status: number; body: string }> {
  const url = new URL(target.wsUrl);
  const response = await fetch(`http://127.0.0.1:${url.port}/healthz`);
  return { status: response.status, body: await response.text() };
}

/**
 * A batch of inputs for one fast-check run. fast-check prints a failing batch by this name rather than all its
 * inputs: the error below it already names the inputs that were on the failing connections, with their bytes.
 */
const batchArb = fc
  .array(fuzzInputArb, { minLength: BATCH, maxLength: BATCH })
  .map((inputs) =>
    Object.assign(inputs, { [fc.toStringMethod]: () => `[${inputs.length} fuzz inputs; the failing ones are listed below]` }),
  );

describe('security: live mutation fuzzer over TCP and WebSocket', function () {
  // 10,000 inputs per transport take 15-40 s on a busy 2-core machine; the bound is for a far slower day.
  this.timeout(240_000);

  let target: TestBroker;
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown): void => {
    uncaught.push(error);
  };

  before(async () => {
    console.log(
      `      fuzz seeds: tcp ${baseSeed}, ws ${baseSeed + 1} (replay with STOMPEDE_FUZZ_SEED=${baseSeed}); ${INPUTS_PER_TRANSPORT} inputs per transport`,
    );
    // Default limits and timers, as a node runs out of the box: the fuzzer must find what a default node does.
    target = await startBroker({});
    process.on('uncaughtExceptionMonitor', onUncaught);
    process.on('unhandledRejection', onUncaught);
  });

  after(async () => {
    process.off('uncaughtExceptionMonitor', onUncaught);
    process.off('unhandledRejection', onUncaught);
    await target?.close();
  });

  for (const [index, transport] of (['tcp', 'ws'] as const).entries()) {
    it(`${transport}: ${INPUTS_PER_TRANSPORT} mutated frames and sequences get no internal error, only well-formed ERRORs then close, and leave no session`, async () => {
      const seed = baseSeed + index;
      const broker = target.broker;
      const internalBefore = broker.stats.errors.get(BROKER_ERRORS.ERR_INTERNAL) ?? 0;
      const internal: string[] = [];
      const onSessionError = (_session: Session, problem: ProtocolError): void => {
        if (problem.code === BROKER_ERRORS.ERR_INTERNAL)
          internal.push(String((problem.cause as Error | undefined)?.stack ?? problem.cause));
      };
      broker.events.on('session-error', onSessionError);
      const control = await Control.start(target);
      const run = new FuzzRun(target, transport);
      const started = Date.now();
      const gaps = new GapWatch(run.inflight);
      try {
        const { stallMs } = await longestStallMs(async () => {
          const shrink = process.env.STOMPEDE_FUZZ_SHRINK === '1';
          const path = process.env.STOMPEDE_FUZZ_PATH;
          await fc.assert(
            fc.asyncProperty(batchArb, async (batch) => {
              const before = run.findings.length;
              const queue = [...batch];
              await Promise.all(Array.from({ length: LANES }, () => run.lane(queue)));
              await Promise.all(run.closing.splice(0));
              const found = run.findings.slice(before);
              if (internal.length > 0)
                found.push({ what: `broker session-error ERR_INTERNAL: ${internal.join('\n')}`, input: undefined, sent: undefined });
              if (uncaught.length > 0)
                found.push({ what: `uncaught: ${uncaught.map(String).join('\n')}`, input: undefined, sent: undefined });
              if (found.length > 0) {
                throw new Error(
                  found
                    .slice(0, 5)
                    .map(
                      (f) =>
                        `${f.what}\n  input: ${f.input === undefined ? '-' : JSON.stringify(f.input)}\n  bytes: ${f.sent === undefined ? '-' : showBytes(f.sent)}`,
                    )
                    .join('\n'),
                );
              }
            }),
            {
              seed,
              numRuns: Math.ceil(INPUTS_PER_TRANSPORT / BATCH),
              endOnFailure: !shrink,
              ...(path !== undefined ? { path } : {}),
            },
          );
        });
        control.stop();
        gaps.stop();
        const elapsedS = (Date.now() - started) / 1000;

        // The control client: every message back, in order, on a connection that never closed.
        await until(() => control.received.length >= control.sent, 5_000, 'the control client to receive its last messages');
        expect(control.client.isClosed, 'control connection still open').to.equal(false);
        expect(control.received.map((f) => f.body.toString())).to.deep.equal(Array.from({ length: control.sent }, (_, i) => String(i)));
        const delays = control.received.map((f, i) => f.at - (control.sentAt[i] ?? f.at));
        const health = await healthz(target);

        run.closeAll();
        await until(() => broker.sessions.size === 1, 10_000, `fuzz sessions to close (${broker.sessions.size} left)`);

        const errors = [...run.errors]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8)
          .map(([m, n]) => `${n}× ${m}`)
          .join('; ');
        console.log(
          `      ${transport}: ${run.inputs} inputs on ${run.connections} connections in ${elapsedS.toFixed(1)} s; ` +
            `outcomes ${JSON.stringify(Object.fromEntries(run.outcomes))}; longest stall ${stallMs.toFixed(1)} ms ` +
            `(second watch: ${gaps.worstMs.toFixed(1)} ms with ${gaps.worstCpuMs.toFixed(1)} ms of process CPU in it; busiest gap ${gaps.busyMs.toFixed(1)} ms); ` +
            `control ${control.sent} messages, max delay ${Math.max(0, ...delays)} ms`,
        );
        console.log(`      ${transport}: top ERRORs: ${errors}`);
        if (gaps.busyMs > BUSY_BOUND_MS / 2) {
          console.log(
            `      ${transport}: in flight during the busiest gap: ${gaps.suspects.map((i) => showBytes(inputBytes(i), 300)).join(' | ')}`,
          );
        }
        console.log(`      ${transport}: closed without ERROR after e.g. ${run.silent.join(' | ')}`);

        expect(uncaught, 'uncaught exceptions').to.deep.equal([]);
        expect((broker.stats.errors.get(BROKER_ERRORS.ERR_INTERNAL) ?? 0) - internalBefore, 'ERR_INTERNAL answers').to.equal(0);
        expect(run.inputs).to.be.at.least(INPUTS_PER_TRANSPORT);
        expect(health).to.deep.equal({ status: 200, body: 'ok\n' });
        expect(stallMs, 'longest event-loop stall (ms)').to.be.below(STALL_BOUND_MS);
        expect(gaps.busyMs, 'longest event-loop stall spent working (ms)').to.be.below(BUSY_BOUND_MS);
      } finally {
        gaps.stop();
        control.stop();
        control.client.close();
        run.closeAll();
        broker.events.off('session-error', onSessionError);
      }
    });
  }
});
