/**
 * The chat page in a real browser: Debian's Chromium, headless, driven by playwright-core (infra/chromium.sh
 * installs the browser with apt when it is missing; Playwright's browser downloads are not used).
 *
 * A cluster of three node processes (Redis fanout, Kafka routes, history in MongoDB: spec/support/cluster.ts).
 * Page A is served by node 1, page B by node 2 with `?servers=<node 3>,<node 1>` as fallbacks. They chat; node 2
 * is killed with SIGKILL; page B reconnects to a surviving node (node 3 or node 1) and, through `x-resume-after`,
 * gets every message sent while it was away, exactly once and in order.
 *
 * Page B's browser context is also taken offline for the outage (Chromium then fails every new WebSocket), so
 * that B comes back only after the outage messages are delivered and stored: B must then get them from the
 * history (`x-resume-after`), not live. Without that, B's reconnect (1 s) could race the messages and the
 * resume path would be exercised only sometimes.
 *
 * Screenshots: spec/artifacts/web/*.png (git-ignored).
 */
import { expect } from 'chai';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { connectedTcp, stompFrame } from '../support/raw.js';
import { requireServices } from '../support/services.js';
import { chatLines, launchChromium, systemLines } from './page.js';
import { ARTIFACTS, StompedeCluster, uniqueRunName, until, type StompedeNode } from '../support/cluster.js';

const SHOTS = resolve(ARTIFACTS, 'web');
async function status(page: Page): Promise<{ state: string; text: string }> {
  const s = page.locator('#status');
  return { state: (await s.getAttribute('data-state')) ?? '', text: (await s.textContent()) ?? '' };
}

/** Waits until the page shows exactly `texts` as its chat lines (in that order). */
async function waitForTexts(page: Page, texts: readonly string[], timeoutMs: number, who: string): Promise<void> {
  let last: string[] = [];
  await until(
    async () => {
      last = (await chatLines(page)).map((l) => l.text);
      return last.length >= texts.length;
    },
    timeoutMs,
    `${who} to show ${texts.length} messages`,
    () => `it shows ${JSON.stringify(last)}`,
  );
  expect(last, `${who}'s messages`).to.deep.equal(texts);
}

async function waitForStatus(page: Page, state: string, timeoutMs: number, who: string): Promise<void> {
  let last = { state: '', text: '' };
  await until(
    async () => (last = await status(page)).state === state,
    timeoutMs,
    `${who}'s status to be ${state}`,
    () => JSON.stringify(last),
  );
}

async function join(page: Page, nick: string, room: string): Promise<void> {
  await page.fill('#nick', nick);
  await page.fill('#room', room);
  await page.click('#join button[type="submit"]');
  await waitForStatus(page, 'connected', 15_000, nick);
  // The SUBSCRIBE's RECEIPT comes after its history replay: the page says so with "You joined".
  await until(async () => (await systemLines(page)).some((l) => l.startsWith('You joined')), 15_000, `${nick} to join ${room}`);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  // The input is cleared once the page handed the SEND to the connection.
  await until(async () => (await page.inputValue('#text')) === '', 5_000, `"${text}" to be sent`);
}

/**
 * What a fresh subscriber on `node` replays after `afterId` (or the last 50 without it): the history as the
 * cluster stored it, read over a raw STOMP connection. The RECEIPT of the SUBSCRIBE ends the replay.
 */
async function storedAfter(node: StompedeNode, destination: string, afterId: string | undefined): Promise<string[]> {
  const client = await connectedTcp(node.tcpPort);
  try {
    const query = afterId === undefined ? { 'x-history': '50' } : { 'x-resume-after': afterId };
    client.send(stompFrame('SUBSCRIBE', { destination, id: 'h', receipt: 'r', ...query }));
    const bodies: string[] = [];
    for (;;) {
      const f = await client.nextFrame(5_000);
      if (f.command === 'RECEIPT') return bodies;
      if (f.command !== 'MESSAGE') throw new Error(`expected MESSAGE or RECEIPT, got ${f.raw.toString('latin1')}`);
      const body: unknown = JSON.parse(f.body.toString('utf8'));
      bodies.push(typeof body === 'object' && body !== null && 'text' in body ? String(body.text) : '');
    }
  } finally {
    client.close();
  }
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: resolve(SHOTS, `${name}.png`), fullPage: true });
}

describe('web: the chat page in Chromium against a three-node cluster', function () {
  let browser: Browser | undefined;
  let cluster: StompedeCluster | undefined;
  const contexts: BrowserContext[] = [];
  /** Uncaught exceptions in the pages: there must be none. */
  const pageErrors: string[] = [];
  /** Errors the pages logged (a refused script or style would show here); failed WebSocket attempts are expected. */
  const consoleErrors: string[] = [];

  before(async function () {
    requireServices(['redis', 'kafka', 'mongo']);
    // The first run on a machine installs Chromium with apt.
    this.timeout(15 * 60_000);
    mkdirSync(SHOTS, { recursive: true });
    [browser, cluster] = await Promise.all([launchChromium(), StompedeCluster.start({ name: 'web', size: 3, routes: 'kafka' })]);
  });

  beforeEach(() => cluster?.markLogs());
  afterEach(function () {
    cluster?.printLogsOnFailure(this.currentTest);
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await cluster?.close();
  });

  async function openPage(
    node: StompedeNode,
    fallbacks: readonly StompedeNode[],
    viewport: { width: number; height: number },
  ): Promise<{ page: Page; context: BrowserContext }> {
    if (browser === undefined) throw new Error('no browser');
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(`${node.id}: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`${node.id}: ${message.text()}`);
    });
    const servers = fallbacks.map((n) => n.wsUrl).join(',');
    const response = await page.goto(`http://127.0.0.1:${node.wsPort}/?servers=${encodeURIComponent(servers)}`);
    expect(response?.status()).to.equal(200);
    return { page, context };
  }

  it('two pages on two nodes chat; the page of a killed node reconnects to a survivor and misses nothing', async function () {
    // Its own bounded waits add up to about 425 s: 2 page loads (30 s each, Playwright's default), the joins
    // (2 × 30 s), 11 says (5 s each), the waits for texts, status and storage (about 250 s, 40 s of it for Kafka's
    // partition hand-over), the kill -9 (20 s). Mocha's timeout must be later, so a slow run fails naming what it
    // waited for instead of "timeout of 60000ms exceeded" halfway through a wait that would have succeeded.
    this.timeout(8 * 60_000);
    if (cluster === undefined) throw new Error('no cluster');
    const [n1, n2, n3] = [cluster.node(0), cluster.node(1), cluster.node(2)];
    const room = uniqueRunName('room');
    const topic = `/topic/chat.${room}`;
    const started = Date.now();
    const took = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

    // Page A on node 1 (desktop size), page B on node 2 (phone size), B falling back to node 3, then node 1.
    const { page: a } = await openPage(n1, [n2, n3], { width: 900, height: 640 });
    const { page: b, context: bContext } = await openPage(n2, [n3, n1], { width: 390, height: 760 });
    expect(await a.title()).to.equal('Stompede chat');
    // Every SUBSCRIBE page B sends, as it went on the wire.
    const bSubscribes: string[] = [];
    b.on('websocket', (ws) =>
      ws.on('framesent', ({ payload }) => {
        const text = typeof payload === 'string' ? payload : payload.toString('utf8');
        if (text.startsWith('SUBSCRIBE\n')) bSubscribes.push(text);
      }),
    );
    await b.fill('#nick', 'bob');
    await shoot(b, '0-bob-join-form-phone');

    // Before B joins: A's first messages, which B must get as history (x-history) on joining.
    await join(a, 'alice', room);
    const early = ['hello from node 1', 'anyone here?', 'third message'];
    for (const t of early) await say(a, t);
    await waitForTexts(a, early, 15_000, 'alice');
    await until(async () => (await storedAfter(n2, topic, undefined)).length === early.length, 15_000, 'the early messages to be stored');

    await join(b, 'bob', room);
    await waitForTexts(b, early, 10_000, 'bob');
    expect(await systemLines(b)).to.include(`You joined #${room} as bob (3 earlier messages above).`);
    expect((await status(b)).text).to.equal('connected to node n2');

    // Live both ways, across nodes. User text is text: markup in a message must not become elements.
    const evil = '<img src=x onerror="document.title=\'pwned\'"><b>bold?</b>';
    // Each waits for the other's message before answering: two senders on two nodes have no order otherwise.
    await say(b, 'hi alice, bob here on node 2');
    await waitForTexts(a, [...early, 'hi alice, bob here on node 2'], 15_000, 'alice');
    await say(a, evil);
    const live = [...early, 'hi alice, bob here on node 2', evil];
    await waitForTexts(a, live, 15_000, 'alice');
    await waitForTexts(b, live, 15_000, 'bob');
    for (const p of [a, b]) {
      expect(await p.locator('#messages img, #messages b').count(), 'elements made from message text').to.equal(0);
      expect(await p.title()).to.equal('Stompede chat');
    }
    const bobsLast = (await chatLines(b)).at(-1)?.id;
    expect(bobsLast, 'the message-id of the newest message B shows').to.be.a('string').and.not.equal('');
    await shoot(a, '1-alice-node1-chatting');
    await shoot(b, '1-bob-node2-chatting-phone');
    console.log(`      chatting across nodes after ${took()}`);

    // Node 2 dies. B's context is offline, so B stays away until the outage messages are delivered and stored.
    await bContext.setOffline(true);
    await cluster.kill9(n2);
    await waitForStatus(b, 'reconnecting', 10_000, 'bob');
    const outage = ['node 2 just died', 'bob, are you there?', 'message 3 while bob is away', 'message 4', 'message 5, the last one'];
    for (const t of outage) await say(a, t);
    // The partition of the room may have been node 2's: Kafka hands it to a survivor after the session timeout.
    await waitForTexts(a, [...live, ...outage], 40_000, 'alice');
    await until(async () => (await storedAfter(n3, topic, bobsLast)).length === outage.length, 15_000, 'the outage messages to be stored');
    expect(
      (await chatLines(b)).map((l) => l.text),
      'what bob saw while away',
    ).to.deep.equal(live);
    expect((await status(b)).state).to.equal('reconnecting');
    expect(await systemLines(b)).to.include('Connection lost. Reconnecting…');
    await shoot(b, '2-bob-reconnecting-phone');
    console.log(`      node 2 killed, outage messages stored after ${took()}`);

    // Back online: B reconnects to a survivor and resumes after the last message it had. Which one depends on how
    // many attempts its round robin (n2 → n3 → n1 → n2 …, one a second) made while offline: n3 after a short outage.
    await bContext.setOffline(false);
    await waitForStatus(b, 'connected', 15_000, 'bob');
    const survivor = (await status(b)).text;
    expect(survivor).to.be.oneOf(['connected to node n3', 'connected to node n1']);
    await waitForTexts(b, [...live, ...outage], 15_000, 'bob');
    await until(async () => (await systemLines(b)).some((l) => l.startsWith('Back in')), 10_000, 'bob to be back in the room');
    expect(await systemLines(b)).to.include(`Back in #${room}: ${outage.length} messages caught up.`);
    // On joining it asked for the history; on coming back, for what followed the last message it had.
    expect(bSubscribes.map((f) => f.split('\n').filter((h) => /^x-(history|resume-after):/.test(h)))).to.deep.equal([
      ['x-history:50'],
      [`x-resume-after:${bobsLast ?? ''}`],
    ]);

    // And B, now on a survivor, still talks to A on node 1.
    const back = `back, ${survivor.replace('connected to ', 'via ')}`;
    await say(b, back);
    const all = [...live, ...outage, back];
    await waitForTexts(a, all, 15_000, 'alice');
    await waitForTexts(b, all, 15_000, 'bob');
    for (const [who, p] of [
      ['alice', a],
      ['bob', b],
    ] as const) {
      const lines = await chatLines(p);
      expect(new Set(lines.map((l) => l.id)).size, `${who}: message ids are distinct`).to.equal(lines.length);
      expect(lines.map((l) => l.nick)).to.deep.equal([...early.map(() => 'alice'), 'bob', 'alice', ...outage.map(() => 'alice'), 'bob']);
    }
    // Both pages show the same messages with the same ids: the cluster's ids, whichever node delivered them.
    expect((await chatLines(b)).map((l) => l.id)).to.deep.equal((await chatLines(a)).map((l) => l.id));
    await shoot(a, '3-alice-node1-after');
    await shoot(b, '3-bob-survivor-after-phone');
    expect(pageErrors, 'uncaught errors in the pages').to.deep.equal([]);
    expect(
      consoleErrors.filter((e) => !/WebSocket connection to .* failed/.test(e)),
      'errors the pages logged',
    ).to.deep.equal([]);
    console.log(`      bob ${survivor}; done after ${took()}`);
  });
});
