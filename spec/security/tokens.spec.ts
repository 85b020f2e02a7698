/**
 * Bearer tokens (issue #8 item 3): a JWT in `passcode`, verified against a JWKS file or URL with a locally generated
 * key pair; login from `sub`, rights from the `stompede` claim; expired, foreign-key and wrong-audience tokens refused.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { stompFrame } from '../support/raw.js';
import { expectError, header, publish, subscribe, useBroker, type Harness } from '../broker/harness.js';
import { as, writeUsers } from './support-auth.js';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'stompede';
const CHAT_RIGHTS = { vhosts: { '/': { read: ['/topic/chat.**'], write: ['/topic/chat.**'] } } };

interface Keys {
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

async function makeKeys(kid: string): Promise<Keys> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function token(
  keys: Keys,
  claims: Record<string, unknown>,
  options: { audience?: string; expiresIn?: string | number } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: keys.jwk.kid as string })
    .setIssuer(ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .sign(keys.privateKey);
}

const refused = (reason: string) => ({ message: 'Access refused', body: `Authentication failed: ${reason}.\n` });

/** The assertions both key sources must pass. */
function tokenCases(h: () => Harness, keys: () => Keys, foreign: () => Keys): void {
  it('connects with a valid token as its `sub`, with the rights of its claim', async () => {
    const jwt = await token(keys(), { sub: 'tina', stompede: CHAT_RIGHTS });
    const c = await h().client(as('', jwt));
    expect(c.frames[0]?.headers.get('user-name')).to.equal('tina');
    await subscribe(c, '/topic/chat.#', 's');
    await publish(c, '/topic/chat.lobby', 'hi');
    const m = await c.nextFrame();
    expect(header(m, 'user-id')).to.equal('tina');
    c.send(stompFrame('SEND', { destination: '/topic/admin' }, 'x'));
    await expectError(c, { message: 'access refused: user "tina" may not write /topic/admin' });
  });

  it('refuses an expired token', async () => {
    const jwt = await token(keys(), { sub: 'tina', stompede: CHAT_RIGHTS }, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const c = await h().raw();
    c.send(stompFrame('CONNECT', as('tina', jwt)));
    await expectError(c, refused('the token has expired'));
  });

  it('refuses a token signed by another key', async () => {
    const jwt = await token(foreign(), { sub: 'tina', stompede: CHAT_RIGHTS });
    const c = await h().raw();
    c.send(stompFrame('CONNECT', as('tina', jwt)));
    await expectError(c, refused('the token is not signed by a trusted key'));
  });

  it('refuses a token for another audience', async () => {
    const jwt = await token(keys(), { sub: 'tina', stompede: CHAT_RIGHTS }, { audience: 'someone-else' });
    const c = await h().raw();
    c.send(stompFrame('CONNECT', as('tina', jwt)));
    await expectError(c, refused('the token\'s "aud" claim is not accepted'));
  });

  it('grants nothing to a token without the permissions claim', async () => {
    const jwt = await token(keys(), { sub: 'tina' });
    const c = await h().raw();
    c.send(stompFrame('CONNECT', as('tina', jwt)));
    await expectError(c, { message: 'access refused: user "tina" may not use virtual host "/"' });
  });

  it('refuses a tampered token', async () => {
    const jwt = await token(keys(), { sub: 'tina', stompede: CHAT_RIGHTS });
    const [head, , signature] = jwt.split('.');
    const forged = Buffer.from(
      JSON.stringify({ sub: 'root', stompede: { vhosts: { '/': { read: ['**'], write: ['**'] } } }, iss: ISSUER, aud: AUDIENCE }),
    ).toString('base64url');
    const c = await h().raw();
    c.send(stompFrame('CONNECT', as('root', `${head}.${forged}.${signature}`)));
    await expectError(c, refused('the token is not signed by a trusted key'));
  });
}

describe('security › bearer tokens (JWT)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stompede-jwt-'));
  let keys: Keys;
  let foreign: Keys;
  const jwksFile = join(dir, 'jwks.json');
  const usersFile = join(dir, 'users.json');
  before(async () => {
    keys = await makeKeys('k1');
    foreign = await makeKeys('k1'); // same kid, different key: only the signature tells them apart
    writeFileSync(jwksFile, JSON.stringify({ keys: [keys.jwk] }));
    await writeUsers(usersFile, { alice: 'alice-pw' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const quick = { authFailureDelayMs: 0, authFailureDelayMaxMs: 0 };

  describe('from a JWKS file, beside a users file', () => {
    const h = useBroker({ jwksFile, usersFile, jwtIssuer: ISSUER, jwtAudience: AUDIENCE, ...quick });
    tokenCases(
      () => h,
      () => keys,
      () => foreign,
    );

    it('still lets password users in (a passcode that is not a JWT goes to the users file)', async () => {
      const c = await h.client(as('alice', 'alice-pw'));
      expect(c.frames[0]?.headers.get('user-name')).to.equal('alice');
    });
  });

  describe('from a JWKS URL (a local HTTP server)', () => {
    let server: Server;
    let url = '';
    before(async () => {
      server = createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [keys.jwk] }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    // The broker starts after the server: useBroker's `before` runs after this describe's earlier `before`.
    const h = useBroker({
      get jwksUrl() {
        return url;
      },
      jwtIssuer: ISSUER,
      jwtAudience: AUDIENCE,
      ...quick,
    });
    tokenCases(
      () => h,
      () => keys,
      () => foreign,
    );

    it('refuses a plain password when only tokens are configured', async () => {
      const c = await h.raw();
      c.send(stompFrame('CONNECT', as('alice', 'alice-pw')));
      await expectError(c, refused('login or passcode is wrong'));
    });
  });
});
