import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addUser, type Authenticator } from '../../broker/index.js';
import { SERVER_VERSION } from '../../broker/version.js';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import { connect, expectError, expectQuiet, header, subscribe, useBroker } from './harness.js';

const REFUSED = { message: 'Access refused', body: 'Authentication failed: login or passcode is wrong.\n' };

describe('broker › wire › authentication (users file)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stompede-auth-'));
  const usersFile = join(dir, 'users.json');
  before(async () => {
    await addUser(usersFile, 'alice', 's3cret');
    // CONNECT is never unescaped (S6): this password is sent exactly as these bytes.
    await addUser(usersFile, 'bob', 'p\\cw:x\\t');
  });
  // No failure delay here: these specs refuse many CONNECTs in a row from one address (the delay itself is
  // specified in spec/security/auth-hardening.spec.ts).
  const h = useBroker({ usersFile, authFailureDelayMs: 0, authFailureDelayMaxMs: 0 });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts good credentials and names the user in CONNECTED', async () => {
    const c = await h.raw();
    const reply = await connect(c, { 'accept-version': '1.2', host: 'localhost', login: 'alice', passcode: 's3cret' });
    expect(reply.raw.toString()).to.equal(
      `CONNECTED\nversion:1.2\nsession:${header(reply, 'session')}\nserver:stompede/${SERVER_VERSION}\nheart-beat:0,0\nuser-name:alice\n\n\0`,
    );
  });

  it('accepts credentials on a STOMP frame and on a 1.0 CONNECT', async () => {
    const a = await h.raw();
    a.send(stompFrame('STOMP', { 'accept-version': '1.1', host: 'localhost', login: 'alice', passcode: 's3cret' }));
    expect(header(await a.nextFrame(), 'user-name')).to.equal('alice');
    const b = await h.raw();
    const reply = await connect(b, { login: 'alice', passcode: 's3cret' });
    expect([header(reply, 'version'), header(reply, 'user-name')]).to.deep.equal(['1.0', 'alice']);
  });

  it('takes the passcode literally, backslashes and colons included (S6)', async () => {
    const c = await h.raw();
    c.send('CONNECT\naccept-version:1.2\nhost:localhost\nlogin:bob\npasscode:p\\cw:x\\t\n\n\0');
    expect(header(await c.nextFrame(), 'user-name')).to.equal('bob');
  });

  const refusals: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ['a wrong passcode', { login: 'alice', passcode: 'wrong' }],
    ['an unknown login (same reply: logins are not revealed)', { login: 'mallory', passcode: 's3cret' }],
    ['no credentials', {}],
    ['a login without passcode', { login: 'alice' }],
    ['a passcode with a space added (never trimmed)', { login: 'alice', passcode: 's3cret ' }],
    ['an escaped passcode (CONNECT is not unescaped)', { login: 'bob', passcode: 'p\\\\cw:x\\\\t' }],
  ];
  for (const [label, credentials] of refusals) {
    it(`refuses ${label} with ERROR, then closes`, async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost', ...credentials }));
      await expectError(c, REFUSED);
    });
  }

  it('processes none of the frames pipelined behind a refused CONNECT', async () => {
    const topic = `/topic/${uniqueName()}`;
    const sub = await h.client({ 'accept-version': '1.2', host: 'localhost', login: 'alice', passcode: 's3cret' });
    await subscribe(sub, topic, 's');
    const c = await h.raw();
    c.send(
      Buffer.concat([
        stompFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost', login: 'alice', passcode: 'nope' }),
        stompFrame('SEND', { destination: topic, receipt: 'r' }, 'sneaky'),
      ]),
    );
    await expectError(c, REFUSED);
    expect(c.frames.map((f) => f.command)).to.deep.equal(['ERROR']);
    await expectQuiet(sub);
  });

  describe('an authenticator that fails', () => {
    const broken: Authenticator = { authenticate: () => Promise.reject(new Error('directory unreachable')) };
    const b = useBroker({}, { authenticator: broken });

    it('answers ERROR "internal error" without the cause, then closes', async () => {
      const c = await b.raw();
      c.send(stompFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost', login: 'alice', passcode: 's3cret' }));
      await expectError(c, { message: 'internal error', body: 'The broker failed to process the frame; see its log.\n' });
    });
  });
});
