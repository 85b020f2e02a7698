/**
 * Authorization on the wire (issue #8 item 2): per user and per virtual host, read (SUBSCRIBE, history included)
 * and write (SEND, transactions included) by glob, deny winning; the broker stamps `user-id`; the users file is
 * reloaded on request and on change, applying to open sessions.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import { expectError, expectQuiet, header, nextMessage, publish, subscribe, useBroker } from '../broker/harness.js';
import { as, captureLogger, writeUsers } from './support-auth.js';
import { until } from './support.js';

const BOB = {
  password: 'bob-pw',
  admin: false,
  vhosts: {
    '/': {
      read: ['/topic/chat.**', '/queue/bob.*'],
      write: { allow: ['/topic/chat.**', '/queue/bob.*'], deny: ['/topic/chat.secret'] },
    },
    'tenant-a': { read: ['**'], write: ['**'] },
  },
};
const DAVE = {
  password: 'dave-pw',
  vhosts: { '/': { read: { allow: ['/topic/chat.**'], deny: ['/topic/chat.secret'] }, write: [] } },
};
const CAROL = { password: 'carol-pw', vhosts: { 'tenant-a': { read: ['**'], write: ['**'] } } };

const refused = (user: string, permission: string, destination: string): string =>
  `access refused: user "${user}" may not ${permission} ${destination}`;

describe('security › authorization on the wire', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stompede-authz-'));
  const usersFile = join(dir, 'users.json');
  const logger = captureLogger();
  before(async () => {
    await writeUsers(usersFile, { alice: 'alice-pw', bob: BOB, carol: CAROL, dave: DAVE });
  });
  const h = useBroker({ usersFile, virtualHosts: ['tenant-a', 'tenant-b'], authFailureDelayMs: 0, authFailureDelayMaxMs: 0 }, { logger });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const hits = (): number => h.broker.stats.limitHits.get('permission') ?? 0;

  it('lets a legacy (hash-only) user read and write anything, on any virtual host', async () => {
    for (const host of ['localhost', 'tenant-a']) {
      const alice = await h.client(as('alice', 'alice-pw', host));
      await subscribe(alice, '/topic/#', 's');
      await publish(alice, `/queue/${uniqueName()}`, 'x');
    }
  });

  it('refuses a SEND outside the write rules: ERROR naming destination and permission, then close; counted', async () => {
    const before = hits();
    const bob = await h.client(as('bob', 'bob-pw'));
    bob.send(stompFrame('SEND', { destination: '/queue/alice.inbox', receipt: 'r1' }, 'hi'));
    await expectError(bob, {
      message: refused('bob', 'write', '/queue/alice.inbox'),
      receiptId: 'r1',
      body: 'The user has no write permission on this destination.\n',
    });
    expect(hits()).to.equal(before + 1);
  });

  it('lets deny win over allow', async () => {
    const bob = await h.client(as('bob', 'bob-pw'));
    await publish(bob, '/topic/chat.lobby', 'fine');
    bob.send(stompFrame('SEND', { destination: '/topic/chat.secret' }, 'leak'));
    await expectError(bob, { message: refused('bob', 'write', '/topic/chat.secret') });
  });

  it('refuses a SEND inside a transaction at SEND time, before COMMIT, and delivers nothing', async () => {
    const watcher = await h.client(as('alice', 'alice-pw'));
    await subscribe(watcher, '/topic/chat.secret', 's');
    const bob = await h.client(as('bob', 'bob-pw'));
    bob.send(stompFrame('BEGIN', { transaction: 't1' }));
    bob.send(stompFrame('SEND', { destination: '/topic/chat.lobby', transaction: 't1' }, 'ok'));
    bob.send(stompFrame('SEND', { destination: '/topic/chat.secret', transaction: 't1', receipt: 'in-tx' }, 'leak'));
    await expectError(bob, { message: refused('bob', 'write', '/topic/chat.secret'), receiptId: 'in-tx' });
    await expectQuiet(watcher);
  });

  it('refuses a SUBSCRIBE outside the read rules', async () => {
    const bob = await h.client(as('bob', 'bob-pw'));
    await subscribe(bob, '/queue/bob.inbox', 'mine');
    bob.send(stompFrame('SUBSCRIBE', { destination: '/queue/alice.inbox', id: 's2' }));
    await expectError(bob, { message: refused('bob', 'read', '/queue/alice.inbox') });
  });

  it('refuses a wildcard SUBSCRIBE that no allow rule contains (`/topic/#`)', async () => {
    const bob = await h.client(as('bob', 'bob-pw'));
    await subscribe(bob, '/topic/chat.#', 'ok');
    bob.send(stompFrame('SUBSCRIBE', { destination: '/topic/#', id: 'all' }));
    await expectError(bob, { message: refused('bob', 'read', '/topic/#') });
  });

  it('refuses a wildcard SUBSCRIBE that a deny rule overlaps, and allows one it cannot reach', async () => {
    const dave = await h.client(as('dave', 'dave-pw'));
    await subscribe(dave, '/topic/chat.room.*', 'rooms');
    dave.send(stompFrame('SUBSCRIBE', { destination: '/topic/chat.*', id: 'chat' }));
    await expectError(dave, { message: refused('dave', 'read', '/topic/chat.*') });
  });

  it('refuses history of a denied destination (x-history, x-resume-after, x-stream-offset are reads)', async () => {
    const alice = await h.client(as('alice', 'alice-pw'));
    await publish(alice, '/topic/chat.secret', 'the plan');
    for (const [name, value] of [
      ['x-history', '10'],
      ['x-resume-after', 'nothing'],
      ['x-stream-offset', 'first'],
    ]) {
      const dave = await h.client(as('dave', 'dave-pw'));
      dave.send(stompFrame('SUBSCRIBE', { destination: '/topic/chat.secret', id: 'h', [name as string]: value as string }));
      const error = await expectError(dave, { message: refused('dave', 'read', '/topic/chat.secret') });
      expect(dave.frames.map((f) => f.command)).to.deep.equal(['CONNECTED', 'ERROR']);
      expect(error.body.toString()).to.not.include('the plan');
    }
  });

  it('confines an object-form user to the virtual hosts it lists, without naming the others', async () => {
    const bob = await h.client(as('bob', 'bob-pw', 'tenant-a'));
    await publish(bob, '/topic/anything', 'x'); // read/write ** there
    const c = await h.raw();
    c.send(stompFrame('CONNECT', as('bob', 'bob-pw', 'tenant-b')));
    const error = await expectError(c, {
      message: 'access refused: user "bob" may not use virtual host "tenant-b"',
      body: 'The user has no permissions on this virtual host.\n',
    });
    expect(error.raw.toString()).to.not.match(/tenant-a/);
    const carol = await h.raw();
    carol.send(stompFrame('CONNECT', as('carol', 'carol-pw', 'localhost')));
    await expectError(carol, { message: 'access refused: user "carol" may not use virtual host "/"' });
  });

  it('stamps the login as user-id on every MESSAGE, dropping the one the sender wrote', async () => {
    const topic = `/topic/chat.${uniqueName()}`;
    const sub = await h.client(as('alice', 'alice-pw'));
    await subscribe(sub, topic, 's');
    const bob = await h.client(as('bob', 'bob-pw'));
    await publish(bob, topic, 'hello', [
      ['user-id', 'alice'],
      ['user-name', 'alice'],
    ]);
    const m = await nextMessage(sub);
    expect(header(m, 'user-id')).to.equal('bob');
    expect(m.raw.toString().match(/^user-id:/gm)).to.have.length(1);
  });

  describe('reloading the users file', () => {
    it("applies new rules to open sessions on reloadAuth (SIGHUP), and refuses a removed user's next frame", async () => {
      const bob = await h.client(as('bob', 'bob-pw'));
      const dave = await h.client(as('dave', 'dave-pw'));
      await publish(bob, '/topic/chat.lobby', 'before');
      await subscribe(dave, '/topic/chat.lobby', 'first');
      const narrower = { ...BOB, vhosts: { '/': { read: [], write: ['/queue/bob.*'] } } };
      await writeUsers(usersFile, { alice: 'alice-pw', bob: narrower, carol: CAROL });
      await h.broker.reloadAuth();
      bob.send(stompFrame('SEND', { destination: '/topic/chat.lobby' }, 'after'));
      await expectError(bob, { message: refused('bob', 'write', '/topic/chat.lobby') });
      // dave is gone from the file: the open connection stays until its next SEND or SUBSCRIBE.
      await expectQuiet(dave);
      dave.send(stompFrame('SUBSCRIBE', { destination: '/topic/chat.lobby', id: 'second' }));
      await expectError(dave, {
        message: refused('dave', 'read', '/topic/chat.lobby'),
        body: 'The user no longer exists; it may not publish or subscribe.\n',
      });
    });

    it('keeps the previous users when the new file is invalid', async () => {
      const alice = await h.client(as('alice', 'alice-pw'));
      await writeFile(usersFile, '{"users": {"alice": 42}}');
      let failure: unknown;
      await h.broker.reloadAuth().catch((error: unknown) => (failure = error));
      expect(String(failure)).to.include('user "alice" must be a hash string');
      await publish(alice, '/topic/chat.lobby', 'still allowed');
      const again = await h.client(as('alice', 'alice-pw'));
      expect(again.frames[0]?.headers.get('user-name')).to.equal('alice');
    });

    it('reloads by itself when the file changes, logging an error for an invalid version', async () => {
      const errorsBefore = logger.lines.filter((l) => l.level === 'error').length;
      await writeFile(usersFile, 'not json');
      await until(() => logger.lines.filter((l) => l.level === 'error').length > errorsBefore, 5000, 'an error log for the invalid file');
      expect(logger.lines.at(-1)?.msg).to.match(/users file not reloaded/);
      const reloads = logger.lines.filter((l) => l.msg === 'users file reloaded').length;
      await writeUsers(usersFile, { alice: 'alice-pw', erin: { password: 'erin-pw', vhosts: { '/': { read: ['**'], write: [] } } } });
      await until(() => logger.lines.filter((l) => l.msg === 'users file reloaded').length > reloads, 5000, 'the reload');
      const erin = await h.client(as('erin', 'erin-pw'));
      await subscribe(erin, '/topic/x', 's');
      erin.send(stompFrame('SEND', { destination: '/topic/x', receipt: 'w' }, 'no'));
      await expectError(erin, { message: refused('erin', 'write', '/topic/x'), receiptId: 'w' });
    });
  });
});

describe('security › no authentication configured', () => {
  const h = useBroker();

  it('leaves MESSAGE bytes as sent: no user-id stamped, a sent user-id kept', async () => {
    const topic = `/topic/${uniqueName()}`;
    const sub = await h.client();
    await subscribe(sub, topic, 's');
    const pub = await h.client();
    await publish(pub, topic, 'x', [['user-id', 'whoever']]);
    const m = await nextMessage(sub);
    expect(m.raw.toString()).to.equal(
      `MESSAGE\nsubscription:s\ndestination:${topic}\nmessage-id:${header(m, 'message-id')}\nuser-id:whoever\ncontent-length:1\n\nx\0`,
    );
  });
});
