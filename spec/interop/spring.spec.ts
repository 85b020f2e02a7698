import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';

/**
 * Spring's STOMP clients and a Spring broker-relay application against Stompede: runs the Maven project in
 * interop/spring (JUnit 5) against nodes started here, then checks every expected test case in the Surefire
 * reports. The first run downloads Spring and Maven plugins into .cache/m2 (a few minutes); later runs are
 * offline. Each run builds into its own interop/spring/target/runs/<id>/ (so concurrent runs of the suite never
 * mix their reports), kept when something failed: its stomp-frames.log has every frame the Java side exchanged.
 */

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PROJECT = join(REPO, 'interop', 'spring');
const MAVEN_REPO = join(REPO, '.cache', 'm2');
const BUILD_DIR = join(PROJECT, 'target', 'runs', `${process.pid}-${Date.now().toString(36)}`);
const REPORTS = join(BUILD_DIR, 'surefire-reports');
const PACKAGE = 'dev.stompede.interop.spring';

/** The cases of AbstractStompClientTest, run once per transport and STOMP version. */
const CLIENT_CASES = [
  'connectNegotiatesVersion',
  'topicRoundTripWithReceipts',
  'queueHoldsMessagesUntilASubscriberArrives',
  'queueDeliversEachMessageToOneConsumer',
  'clientIndividualAckAndNack',
  'clientAckIsCumulative',
  'unackedMessageIsRedeliveredAfterDisconnect',
  'unsubscribeStopsDelivery',
  'escapedHeadersRoundTrip',
  'binaryBodyWithNulRoundTrips',
  'heartbeatsKeepIdleSessionAlive',
  'errorFrameForInvalidDestination',
];

const EXPECTED: Readonly<Record<string, readonly string[]>> = {
  WebSocketStomp12Test: CLIENT_CASES,
  WebSocketStomp11Test: CLIENT_CASES,
  TcpStomp12Test: CLIENT_CASES,
  TcpStomp11Test: CLIENT_CASES,
  BrokerRelayTest: [
    'relaySystemSessionsConnect',
    'appDestinationReachesTopicSubscribersOnBothInstances',
    'sendToUserReachesTheSendingSession',
    'sendToUserCrossesInstances',
    'systemHeartbeatsKeepRelaysUpWhileIdle',
  ],
  ReadmeSnippetTest: ['springSnippetPrintsTheMessageItSent'],
};

type Outcome = 'passed' | 'failure' | 'error' | 'skipped';

interface TestCase {
  readonly className: string;
  readonly name: string;
  readonly outcome: Outcome;
  /** The failure's message and the start of its stack trace, when it did not pass. */
  readonly detail: string;
}

interface MavenRun {
  readonly code: number | null;
  readonly output: string;
  readonly seconds: number;
}

function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([\w.:-]+)="([^"]*)"/g)) out.set(m[1] as string, unescapeXml(m[2] as string));
  return out;
}

function unescapeXml(text: string): string {
  return text.replace(/&(lt|gt|quot|apos|amp|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) => {
    switch (e) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      case 'amp':
        return '&';
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

/** Test cases of one Surefire XML report (TEST-*.xml). */
function parseSurefireReport(xml: string): TestCase[] {
  const cases: TestCase[] = [];
  for (const m of xml.matchAll(/<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = attributes(m[1] as string);
    const body = m[2] ?? '';
    const problem = /<(failure|error|skipped)\b([^>]*?)(?:\/>|>([\s\S]*?)<\/\1>)/.exec(body);
    const outcome: Outcome = problem === null ? 'passed' : (problem[1] as Outcome);
    const trace = (problem?.[3] ?? '').trim().replace(/^<!\[CDATA\[([\s\S]*)\]\]>$/, '$1');
    const detail = problem === null ? '' : `${attributes(problem[2] as string).get('message') ?? ''}\n${trace.slice(0, 1500)}`;
    cases.push({ className: attrs.get('classname') ?? '', name: attrs.get('name') ?? '', outcome, detail });
  }
  return cases;
}

function readReports(): TestCase[] {
  if (!existsSync(REPORTS)) return [];
  return readdirSync(REPORTS)
    .filter((f) => f.startsWith('TEST-') && f.endsWith('.xml'))
    .flatMap((f) => parseSurefireReport(readFileSync(join(REPORTS, f), 'utf8')));
}

/** Runs Maven without blocking the event loop: the brokers under test live in this process. */
function runMaven(env: NodeJS.ProcessEnv): Promise<MavenRun> {
  const started = Date.now();
  return new Promise((done, fail) => {
    const args = ['-B', '-q', `-Dmaven.repo.local=${MAVEN_REPO}`, `-Dstompede.build.dir=${BUILD_DIR}`, 'test'];
    const child = spawn('mvn', args, { cwd: PROJECT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', fail);
    child.on('close', (code) => done({ code, output, seconds: (Date.now() - started) / 1000 }));
  });
}

function mavenAvailable(): boolean {
  const probe = spawnSync('mvn', ['-v'], { stdio: 'ignore' });
  return probe.status === 0;
}

describe('Spring interop (interop/spring, Maven + JUnit)', function () {
  // The first run downloads Spring Boot, Tomcat, Netty and the Maven plugins (about 60 MB).
  this.timeout(15 * 60_000);

  const nodes: TestBroker[] = [];
  let run: MavenRun | undefined;
  let cases: TestCase[] = [];

  before(async function () {
    // Fails rather than skips: a run without Maven would otherwise pass with every Spring check pending.
    if (!mavenAvailable()) {
      throw new Error(
        'required tool missing: mvn (Maven) is not on the PATH; the Spring interop checks need Java 17+ and Maven ' +
          '(`make test` installs both through infra/tools.sh)',
      );
    }
    // Short heart-beats so that idle tests span several intervals: Spring beats at max(its 1000 ms, ours). Not
    // shorter: Spring closes after 3 silent intervals, and a busy 2-core machine can hold the node's timers 1.5 s.
    // With Redis (always there in `make test`), two nodes form a cluster: relay instance B talks to node 2, so
    // BrokerRelayTest proves delivery across Stompede nodes, user queues included.
    const redis = process.env.STOMPEDE_TEST_REDIS_URL;
    const cluster = redis === undefined ? {} : { redis, clusterName: uniqueName('spring') };
    const config = { heartbeatMinMs: 1000, ...cluster };
    nodes.push(await startBroker(config));
    if (redis !== undefined) nodes.push(await startBroker(config));
    const [node1, node2] = nodes;
    if (node1 === undefined) throw new Error('node 1 did not start');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      STOMPEDE_TCP_PORT: String(node1.tcpPort),
      STOMPEDE_WS_URL: node1.wsUrl,
      STOMPEDE_TCP_PORT_2: node2 === undefined ? '' : String(node2.tcpPort),
    };
    run = await runMaven(env);
    cases = readReports();
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    const passed = run?.code === 0 && cases.length > 0 && cases.every((c) => c.outcome === 'passed');
    if (passed) rmSync(BUILD_DIR, { recursive: true, force: true });
    else if (run !== undefined) console.warn(`      (Spring interop build kept for inspection: ${BUILD_DIR})`);
  });

  it('mvn test exits 0', () => {
    expect(run, 'Maven ran').to.not.equal(undefined);
    expect(run?.code, `mvn test failed after ${run?.seconds ?? 0} s; output tail:\n${run?.output.slice(-6000) ?? ''}`).to.equal(0);
  });

  it('runs exactly the expected test cases', () => {
    const expected = Object.entries(EXPECTED)
      .flatMap(([cls, names]) => names.map((n) => `${PACKAGE}.${cls}#${n}`))
      .sort();
    const ran = cases.map((c) => `${c.className}#${c.name}`).sort();
    expect(ran.length, 'test cases in the Surefire reports').to.be.greaterThan(0);
    expect(ran).to.deep.equal(expected);
  });

  for (const [cls, names] of Object.entries(EXPECTED)) {
    describe(cls, () => {
      for (const name of names) {
        it(name, () => {
          const found = cases.find((c) => c.className === `${PACKAGE}.${cls}` && c.name === name);
          expect(found, `${cls}#${name} is missing from ${REPORTS}`).to.not.equal(undefined);
          expect(found?.outcome, `${cls}#${name}: ${found?.detail ?? ''}`).to.equal('passed');
        });
      }
    });
  }
});
