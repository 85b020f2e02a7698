import { expect } from 'chai';
import { join } from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.js';
import { watchSessionErrors, type SessionErrorLog } from './harness.js';
import { ensureVenv, REPO_ROOT, run, type RunResult } from './python-venv.js';

/**
 * stomp.py 8.2.0 (from PyPI, in .cache/venv) runs interop/python/check_stomp_py.py against this broker: the same
 * scenarios with stomp.Connection12 and Connection11 over TCP and WSStompConnection over WebSocket. The script
 * prints one JSON result per check; each check is one test here, so a missing or failed check names itself.
 */

const HEARTBEAT_MS = 250;
const SCRIPT = join(REPO_ROOT, 'interop', 'python', 'check_stomp_py.py');

const VARIANTS = {
  'tcp-1.2': 'stomp.Connection12 over TCP',
  'tcp-1.1': 'stomp.Connection11 over TCP',
  'ws-1.2': 'WSStompConnection (1.2, no subprotocol)',
} as const;

const SCENARIOS = {
  connect: 'connects with the STOMP command and one accept-version; CONNECTED headers exact',
  'send-subscribe': 'publishes to a topic subscriber with receipts; body and escaped headers exact',
  'nack-redelivery': 'NACK redelivers with redelivered:true and the same message-id; ACK settles it',
  'exactly-once': 'a queue with two consumers gives each of 40 messages to exactly one of them, none lost',
  'client-ack': 'client mode: one ACK covers earlier messages; the rest return on disconnect',
  transaction: 'SENDs take effect at COMMIT, in order; ABORT drops them',
  'transactional-ack': 'an ACK in an aborted transaction does not settle; in a committed one it does',
  'heart-beats': `heart-beats flow both ways every ${HEARTBEAT_MS} ms and the connection stays up`,
  disconnect: 'DISCONNECT gets its RECEIPT and the socket closes',
} as const;

interface CheckResult {
  readonly check: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
  readonly trace?: string;
  readonly detail?: unknown;
}

describe('interop › stomp.py 8.2.0 (TCP 1.2 and 1.1, WebSocket)', function () {
  let t: TestBroker | undefined;
  let log: SessionErrorLog | undefined;
  let outcome: RunResult;
  const results = new Map<string, CheckResult>();
  const unparsed: string[] = [];

  before(async function () {
    this.timeout(300_000); // a first run creates the venv and installs from PyPI; later runs only read a marker
    const python = await ensureVenv();
    t = await startBroker({ heartbeatMinMs: HEARTBEAT_MS });
    log = watchSessionErrors(t.broker);
    outcome = await run(
      python,
      [SCRIPT, '--host', '127.0.0.1', '--port', String(t.tcpPort), '--ws-url', t.wsUrl, '--heartbeat-ms', String(HEARTBEAT_MS)],
      {
        env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
        timeoutMs: 50_000,
      },
    );
    for (const line of outcome.stdout.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const r = JSON.parse(line) as CheckResult;
        results.set(r.check, r);
      } catch {
        unparsed.push(line);
      }
    }
  });

  after(async () => {
    log?.stop();
    await t?.close();
  });

  for (const [variant, label] of Object.entries(VARIANTS)) {
    describe(label, () => {
      for (const [scenario, title] of Object.entries(SCENARIOS)) {
        it(`${scenario}: ${title}`, () => {
          const r = results.get(`${variant}/${scenario}`);
          expect(r, `no result line for ${variant}/${scenario}; stderr:\n${outcome.stderr}`).to.not.equal(undefined);
          expect(r?.ok, `${r?.error ?? ''}\n${r?.trace ?? ''}`).to.equal(true);
        });
      }
    });
  }

  it('runs exactly those checks, exits 0, and the broker sent no ERROR', () => {
    const expected = Object.keys(VARIANTS).flatMap((v) => Object.keys(SCENARIOS).map((s) => `${v}/${s}`));
    expect([...results.keys()]).to.deep.equal(expected);
    expect(unparsed, 'lines that are not JSON').to.deep.equal([]);
    expect(outcome.code, outcome.stderr).to.equal(0);
    expect(log?.errors).to.deep.equal([]);
  });
});
