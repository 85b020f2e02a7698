/**
 * `GET /chat/config.json` on the WebSocket port: what the chat page reads before it connects, so the WebSocket
 * path and the need for credentials come from the node instead of being written into the page.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addUser, type Authenticator } from '../../broker/auth.js';
import { CHAT_CONFIG_PATH } from '../../broker/web.js';
import { http, wsPort } from '../ops/http.js';
import { startBroker, type TestBroker } from '../support/broker.js';

async function config(b: TestBroker): Promise<unknown> {
  const reply = await http(wsPort(b), CHAT_CONFIG_PATH);
  expect(reply.status, reply.body).to.equal(200);
  expect(reply.headers['content-type']).to.equal('application/json; charset=utf-8');
  expect(reply.headers['cache-control']).to.equal('no-store');
  return JSON.parse(reply.body);
}

describe('web: the chat page config (/chat/config.json)', () => {
  let b: TestBroker | undefined;
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-chat-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await b?.close();
    b = undefined;
  });

  it('says an open node needs no login, and gives its WebSocket path', async () => {
    b = await startBroker();
    expect(await config(b)).to.deep.equal({ wsPath: '/ws', login: false });
  });

  it('follows wsPath', async () => {
    b = await startBroker({ wsPath: '/stomp/over/ws' });
    expect(await config(b)).to.deep.equal({ wsPath: '/stomp/over/ws', login: false });
  });

  it('says a node with a users file needs a login', async () => {
    const users = join(dir, 'users.json');
    await addUser(users, 'alice', 'wonderland');
    b = await startBroker({ usersFile: users });
    expect(await config(b)).to.deep.equal({ wsPath: '/ws', login: true });
  });

  it('says a node with any other authenticator than allow-all needs a login', async () => {
    const tokens: Authenticator = { authenticate: async () => ({ ok: false, reason: 'no' }) };
    b = await startBroker({}, { authenticator: tokens });
    expect(await config(b)).to.deep.equal({ wsPath: '/ws', login: true });
  });

  it('answers HEAD without a body, other methods with 405, and ignores a query string', async () => {
    b = await startBroker();
    const head = await http(wsPort(b), CHAT_CONFIG_PATH, 'HEAD');
    expect([head.status, head.body]).to.deep.equal([200, '']);
    const post = await http(wsPort(b), CHAT_CONFIG_PATH, 'POST');
    expect([post.status, post.headers.allow]).to.deep.equal([405, 'GET, HEAD']);
    expect(JSON.parse((await http(wsPort(b), `${CHAT_CONFIG_PATH}?v=1`)).body)).to.deep.equal({ wsPath: '/ws', login: false });
    expect((await http(wsPort(b), '/chat/other.json')).status).to.equal(404);
  });
});
