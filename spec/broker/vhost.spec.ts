import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import { expectError, nextMessage, publish, subscribe, useBroker, type Harness } from './harness.js';

/** CONNECT headers for a 1.2 session on `host` (undefined: no host header). */
function on(host: string | undefined): Record<string, string> {
  return host === undefined ? { 'accept-version': '1.2' } : { 'accept-version': '1.2', host };
}

/** Publishes to a queue from `from` and reports whether a consumer connected with `to` receives it. */
async function crosses(h: Harness, from: string | undefined, to: string | undefined): Promise<boolean> {
  const q = `/queue/${uniqueName()}`;
  const pub = await h.client(on(from));
  await publish(pub, q, 'hello');
  const sub = await h.client(on(to));
  await subscribe(sub, q, 's');
  const got = await sub.nextFrame(150).catch(() => undefined);
  if (got !== undefined) {
    expect([got.command, got.body.toString()]).to.deep.equal(['MESSAGE', 'hello']);
    return true;
  }
  // The message is still in the sender's namespace: a consumer there gets it.
  const home = await h.client(on(from));
  await subscribe(home, q, 's');
  expect((await nextMessage(home)).text).to.equal('hello');
  return false;
}

describe('broker › wire › virtual hosts (S19)', () => {
  describe('without a virtualHosts list', () => {
    const h = useBroker();

    for (const host of ['127.0.0.1', '::1', undefined]) {
      it(`treats host ${JSON.stringify(host ?? 'absent')} as the default namespace, like localhost`, async () => {
        expect(await crosses(h, 'localhost', host)).to.equal(true);
      });
    }

    // Issue #8: a namespace per host value hid clients from each other (stomp.py sends the name it dialed) and let
    // 20,000 host values make 20,000 namespaces. Only configured names are virtual hosts.
    for (const host of ['tenant-a', 'broker.svc.cluster.local', '10.0.0.7', 'Tenant-A']) {
      it(`maps the unconfigured host ${JSON.stringify(host)} to the default namespace`, async () => {
        expect(await crosses(h, host, 'localhost')).to.equal(true);
        expect(await crosses(h, 'localhost', host)).to.equal(true);
      });
    }

    it('shares topics between clients naming different hosts', async () => {
      const topic = `/topic/${uniqueName()}`;
      const a = await h.client(on('tenant-a'));
      const b = await h.client(on('tenant-b'));
      await subscribe(a, topic, 's');
      await subscribe(b, topic, 's');
      const pub = await h.client(on('stomp.example'));
      await publish(pub, topic, 'for all');
      expect((await nextMessage(a)).text).to.equal('for all');
      expect((await nextMessage(b)).text).to.equal('for all');
    });

    it('creates no namespace per host value (20,000 distinct hosts leave one virtual host)', async () => {
      const before = h.broker.resolveVhost('localhost');
      for (let i = 0; i < 20_000; i++) expect(h.broker.resolveVhost(`h${i}.example`)).to.equal(before);
      const c = await h.client(on('yet-another'));
      await publish(c, `/queue/${uniqueName()}`, 'x');
    });
  });

  describe('with virtualHosts configured', () => {
    const h = useBroker({ virtualHosts: ['tenant1'] });

    it('accepts a listed host and the default names', async () => {
      for (const host of ['tenant1', 'localhost', undefined]) {
        const c = await h.client(on(host));
        expect(c.frames[0]?.command).to.equal('CONNECTED');
      }
    });

    it('keeps a listed host apart from the default namespace', async () => {
      expect(await crosses(h, 'tenant1', 'localhost')).to.equal(false);
    });

    it('refuses an unknown host with ERROR, then closes', async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', on('other')));
      // The reply names only what the client sent: the node's tenants are not told to unauthenticated clients.
      const error = await expectError(c, {
        message: 'unknown virtual host "other"',
        body: 'This broker does not serve that virtual host; ask its operator for the right name.\n',
      });
      expect(error.raw.toString()).to.not.include('tenant1');
    });

    it('refuses an unknown host on a 1.0 CONNECT too', async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', { host: 'nope' }));
      await expectError(c, { message: 'unknown virtual host "nope"' });
    });
  });
});
