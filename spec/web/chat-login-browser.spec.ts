/**
 * The chat page's login flow in a real browser (Debian's Chromium, headless, through playwright-core; installed
 * by infra/chromium.sh when missing; this spec fails, never skips, when it cannot get a browser) against ONE
 * in-process node with a users file: no Redis, Kafka or MongoDB.
 *
 * - The page learns from the node that it needs credentials and shows a login form instead of the nickname.
 * - A wrong passcode: one CONNECT, the ERROR shown in the form, and no more attempts (it used to retry every
 *   second forever).
 * - The right one: the page connects with it, and keeps it nowhere but in memory (not in the form, not in storage).
 * - `?servers=` URLs on another host are never contacted.
 * - The sender shown is the broker's `user-id` of each MESSAGE (as a raw subscriber sees it), never the nick a
 *   sender wrote in the body; markup in names and texts stays text.
 * - On open nodes (two in-process nodes, one on a custom `wsPath`): the nickname flow as before, the WebSocket
 *   path read from the node, and the fallback to another port of the same host when the page's node stops.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { addUser } from '../../broker/auth.js';
import { WEB_ROOT } from '../../broker/web.js';
import { until } from '../support/cluster.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { connectedTcp, stompFrame, type RawFrame, type TcpRawClient } from '../support/raw.js';
import { waitQuiet } from '../support/timing.js';
import { chatLines, launchChromium, systemLines, type Line } from './page.js';

/** What the page shows, on a node that needs a login, for a message that carries no `user-id`. */
const UNVERIFIED = '(unverified)';

async function statusState(page: Page): Promise<string> {
  return (await page.locator('#status').getAttribute('data-state')) ?? '';
}

/** The sender a message must show as: its `user-id` as the broker delivered it, or the unverified mark. */
function expectedSender(frame: RawFrame): string {
  const userId = frame.headers.get('user-id');
  return userId === undefined || userId === '' ? UNVERIFIED : userId;
}

/** The next MESSAGE a raw subscriber reads whose body text is `text`. */
async function messageWithText(client: TcpRawClient, text: string): Promise<RawFrame> {
  for (;;) {
    const frame = await client.nextFrame(10_000);
    if (frame.command !== 'MESSAGE') throw new Error(`expected MESSAGE, got ${frame.raw.toString('latin1')}`);
    const body: unknown = JSON.parse(frame.body.toString('utf8'));
    if (typeof body === 'object' && body !== null && 'text' in body && body.text === text) return frame;
  }
}

describe("web: the chat page logs in to a node with a users file, and finds its node's path (Chromium)", function () {
  let browser: Browser | undefined;
  let node: TestBroker | undefined;
  let dir = '';
  let bob: TcpRawClient | undefined;
  const pageErrors: string[] = [];

  before(async function () {
    // The first run on a machine installs Chromium with apt.
    this.timeout(15 * 60_000);
    expect(existsSync(join(WEB_ROOT, 'chat.js')), `the chat page is not built in ${WEB_ROOT}: run make build`).to.equal(true);
    dir = mkdtempSync(join(tmpdir(), 'stompede-chat-login-'));
    const usersFile = join(dir, 'users.json');
    await addUser(usersFile, 'alice', 'wonderland');
    await addUser(usersFile, 'bob', 'builder');
    [browser, node] = await Promise.all([launchChromium(), startBroker({ usersFile })]);
  });

  after(async () => {
    bob?.close();
    await browser?.close().catch(() => undefined);
    await node?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('asks for a login, stops at Access refused, connects with the right passcode, and names senders by user-id', async function () {
    // Above the sum of its own waits (about 110 s: page load 30 s, form and refusal 20 s, the reconnect watch,
    // connect and join 30 s, frames and messages 20 s), so a slow run fails naming the wait, not mocha's timeout.
    this.timeout(3 * 60_000);
    if (browser === undefined || node === undefined) throw new Error('no browser or node');
    const wsPort = node.addresses.ws?.port ?? 0;
    const room = uniqueName('room');
    const topic = `/topic/chat.${room}`;
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // Every WebSocket the page opens, and every CONNECT it sends on them, as they went on the wire.
    const sockets: string[] = [];
    const connects: string[] = [];
    const errors: string[] = [];
    page.on('websocket', (ws) => {
      sockets.push(ws.url());
      ws.on('framesent', ({ payload }) => {
        const text = typeof payload === 'string' ? payload : payload.toString('utf8');
        if (text.startsWith('CONNECT\n')) connects.push(text);
      });
      ws.on('framereceived', ({ payload }) => {
        const text = typeof payload === 'string' ? payload : payload.toString('utf8');
        if (text.startsWith('ERROR\n')) errors.push(text);
      });
    });
    const own = `ws://127.0.0.1:${wsPort}/ws`;
    // A fallback on another host: the page must never send the credentials there.
    const elsewhere = 'ws://localhost:1/ws,ws://evil.example/ws';
    const response = await page.goto(`http://127.0.0.1:${wsPort}/?servers=${encodeURIComponent(elsewhere)}`);
    expect(response?.status()).to.equal(200);

    // The node needs credentials: login and passcode instead of the nickname.
    await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#passcode').getAttribute('type')).to.equal('password');
    expect(await page.locator('#nick').isVisible(), 'the nickname field on a node that needs a login').to.equal(false);

    // A wrong passcode: refused once, shown in the form, and not tried again.
    await page.fill('#login', 'alice');
    await page.fill('#passcode', 'not-her-passcode');
    await page.fill('#room', room);
    await page.click('#join button[type="submit"]');
    await until(async () => await page.locator('#join-error').isVisible(), 10_000, 'the refusal to show in the form');
    // The form shows the ERROR's message and body as the broker sent them.
    expect(errors).to.have.length(1);
    const [head = '', body = ''] = (errors[0] ?? '').replace(/\0[\r\n]*$/, '').split('\n\n');
    expect(head.split('\n')).to.include('message:Access refused');
    expect(await page.locator('#join-error').textContent()).to.equal(`Access refused: ${body.trim()}`);
    expect(await page.locator('#join').isVisible()).to.equal(true);
    expect(await page.locator('#chat').isVisible()).to.equal(false);
    expect(await page.inputValue('#passcode'), 'the refused passcode is cleared').to.equal('');
    expect(await page.inputValue('#login')).to.equal('alice');
    expect(await statusState(page)).to.equal('disconnected');
    // Three reconnect delays (1 s each) without a second attempt; longer when the machine is busy.
    await waitQuiet(3_500);
    expect(connects, 'CONNECT frames sent with the wrong passcode').to.have.length(1);
    expect(connects[0]).to.include('\nlogin:alice\n').and.include('\npasscode:not-her-passcode\n');
    expect(sockets).to.deep.equal([own]);

    // The right passcode.
    await page.fill('#passcode', 'wonderland');
    await page.click('#join button[type="submit"]');
    await until(async () => (await statusState(page)) === 'connected', 15_000, 'alice to connect');
    await until(async () => (await systemLines(page)).some((l) => l.startsWith('You joined')), 15_000, 'alice to join');
    expect(await systemLines(page)).to.include(`You joined #${room} as alice.`);
    expect(await page.locator('#join-error').isVisible()).to.equal(false);
    expect(connects).to.have.length(2);
    expect(connects[1]).to.include('\nlogin:alice\n').and.include('\npasscode:wonderland\n');
    // Kept in memory only: not in the form, not in any storage of the page.
    expect(await page.inputValue('#passcode')).to.equal('');
    const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, document.cookie]));
    expect(stored).not.to.include('wonderland').and.not.to.include('not-her-passcode');

    // Bob reads the room over raw STOMP, to see each MESSAGE's user-id as the broker delivers it.
    bob = await connectedTcp(node.tcpPort, { 'accept-version': '1.2', host: 'localhost', login: 'bob', passcode: 'builder' });
    bob.send(stompFrame('SUBSCRIBE', { destination: topic, id: 'room', receipt: 'subscribed' }));
    expect((await bob.nextFrame(5_000)).command).to.equal('RECEIPT');

    // Alice's own message.
    await page.fill('#text', 'hello, I am alice');
    await page.press('#text', 'Enter');
    const fromAlice = await messageWithText(bob, 'hello, I am alice');

    // Bob claims to be alice in the body, and sends markup: neither the claim nor the markup may show.
    const forged = 'trust me, I am alice';
    bob.send(
      stompFrame(
        'SEND',
        { destination: topic, 'content-type': 'application/json' },
        JSON.stringify({ nick: 'alice', text: forged, time: Date.now() }),
      ),
    );
    const fromBob = await messageWithText(bob, forged);
    const markup = '<img src=x onerror="document.title=\'pwned\'"><b>bold?</b>';
    bob.send(
      stompFrame(
        'SEND',
        { destination: topic, 'content-type': 'application/json', 'user-id': '<b>alice</b>' },
        JSON.stringify({ nick: '<i>alice</i>', text: markup, time: Date.now() }),
      ),
    );
    const fromBobMarkup = await messageWithText(bob, markup);

    const expected = [
      { nick: expectedSender(fromAlice), text: 'hello, I am alice' },
      { nick: expectedSender(fromBob), text: forged },
      { nick: expectedSender(fromBobMarkup), text: markup },
    ];
    let shown: { nick: string; text: string }[] = [];
    await until(
      async () => (shown = (await chatLines(page)).map(({ nick, text }) => ({ nick, text }))).length >= 3,
      10_000,
      'three messages',
      () => JSON.stringify(shown),
    );
    expect(shown).to.deep.equal(expected);
    expect(expected[1]?.nick, 'a body nick never becomes the sender on a node that needs a login').to.not.equal('alice');
    expect(await page.locator('#messages img, #messages b, #messages i').count(), 'elements made from message data').to.equal(0);
    expect(await page.title()).to.equal('Stompede chat');
    expect(sockets, 'WebSockets the page opened').to.deep.equal([own, own]);
    expect(pageErrors, 'uncaught errors in the page').to.deep.equal([]);
    await context.close();
  });

  it("on open nodes: nickname as sender, the node's wsPath, and a fallback on the same host when the node stops", async function () {
    // Above the sum of its own waits (about 85 s: page load 30 s, connect, join, message and fallback 55 s).
    this.timeout(3 * 60_000);
    if (browser === undefined) throw new Error('no browser');
    const a = await startBroker({ nodeId: 'open-a', wsPath: '/stomp' });
    const b = await startBroker({ nodeId: 'open-b' });
    try {
      const room = uniqueName('room');
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on('pageerror', (error) => pageErrors.push(error.message));
      const sockets: string[] = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      const fallback = `ws://127.0.0.1:${b.addresses.ws?.port ?? 0}/ws`;
      // `localhost` is another host name than the page's 127.0.0.1: dropped, though it is the same machine.
      const servers = [`ws://localhost:${b.addresses.ws?.port ?? 0}/ws`, fallback].join(',');
      const aPort = a.addresses.ws?.port ?? 0;
      expect((await page.goto(`http://127.0.0.1:${aPort}/?servers=${encodeURIComponent(servers)}`))?.status()).to.equal(200);

      await page.fill('#nick', 'carol');
      expect(await page.locator('#login').isVisible(), 'the login field on an open node').to.equal(false);
      await page.fill('#room', room);
      await page.click('#join button[type="submit"]');
      await until(async () => (await statusState(page)) === 'connected', 15_000, 'carol to connect');
      expect(await page.locator('#status').textContent()).to.equal('connected to node open-a');
      await until(async () => (await systemLines(page)).some((l) => l.startsWith('You joined')), 15_000, 'carol to join');
      await page.fill('#text', 'hi from carol');
      await page.press('#text', 'Enter');
      let shown: Line[] = [];
      await until(
        async () => (shown = await chatLines(page)).length === 1,
        10_000,
        "carol's message",
        () => JSON.stringify(shown),
      );
      expect(shown.map(({ nick, text }) => ({ nick, text }))).to.deep.equal([{ nick: 'carol', text: 'hi from carol' }]);

      // The page's node stops: the page goes on to the fallback on the same host.
      await a.close();
      await until(
        async () => (await page.locator('#status').textContent()) === 'connected to node open-b',
        15_000,
        'the page to reach node open-b',
      );
      expect(sockets.filter((url) => url !== sockets[0])).to.satisfy(
        (rest: string[]) => rest.length > 0 && rest.every((url) => url === fallback),
      );
      expect(sockets[0], "the first WebSocket: the page's node on its wsPath").to.equal(`ws://127.0.0.1:${aPort}/stomp`);
      expect(pageErrors, 'uncaught errors in the page').to.deep.equal([]);
      await context.close();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
