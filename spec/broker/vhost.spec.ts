import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { stompFrame } from '../support/raw.js';
import { expectError, expectQuiet, header, nextMessage, publish, subscribe, useBroker, type Harness } from './harness.js';

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

    it('keeps other host names apart from the default namespace', async () => {
      expect(await crosses(h, 'tenant-a', 'localhost')).to.equal(false);
      expect(await crosses(h, 'localhost', 'tenant-a')).to.equal(false);
    });

    it('keeps two named hosts apart from each other', async () => {
      expect(await crosses(h, 'tenant-a', 'tenant-b')).to.equal(false);
    });

    it('shares one namespace between connections naming the same host', async () => {
      expect(await crosses(h, 'tenant-a', 'tenant-a')).to.equal(true);
    });

    it('isolates topics too', async () => {
      const topic = `/topic/${uniqueName()}`;
      const a = await h.client(on('tenant-a'));
      const b = await h.client(on('tenant-b'));
      await subscribe(a, topic, 's');
      await subscribe(b, topic, 's');
      const pub = await h.client(on('tenant-a'));
      await publish(pub, topic, 'for a');
      expect((await nextMessage(a)).text).to.equal('for a');
      await expectQuiet(b, 60);
    });

    it('treats host names as case-sensitive opaque strings', async () => {
      expect(await crosses(h, 'Tenant-A', 'tenant-a')).to.equal(false);
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
      const error = await expectError(c, { message: 'unknown virtual host "other"', body: 'This broker serves the virtual hosts: /, tenant1.\n' });
      expect(header(error, 'message')).to.equal('unknown virtual host "other"');
    });

    it('refuses an unknown host on a 1.0 CONNECT too', async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', { host: 'nope' }));
      await expectError(c, { message: 'unknown virtual host "nope"' });
    });
  });
});
