/**
 * Bearer tokens: a CONNECT `passcode` holding a JWT, verified against a JWKS (a file, or a URL fetched and cached
 * by `jose`), as RabbitMQ's OAuth 2 plugin accepts tokens as passwords. The login is one claim, the rights another
 * claim holding the same object as a users-file entry without its password.
 */
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { AuthResult, Authenticator, Credentials } from './auth.js';
import { parseRights, type UserRights } from './permissions.js';

export interface TokenSettings {
  readonly jwksFile: string;
  readonly jwksUrl: string;
  /** Empty: not checked. */
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
  readonly jwtUserClaim: string;
  readonly jwtPermissionsClaim: string;
}

/** Three base64url parts separated by dots: the compact JWS form. Anything else is a password. */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function looksLikeJwt(passcode: string | undefined): passcode is string {
  return passcode !== undefined && COMPACT_JWT.test(passcode);
}

/** Why a token was refused, in words a client may see (no key material, no claim values). */
function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `the token's "${error.claim}" claim is not accepted`;
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'the token is not signed by a trusted key';
  if (error instanceof joseErrors.JOSEError) return 'the token is not valid';
  throw error;
}

export class TokenAuthenticator implements Authenticator {
  #settings: TokenSettings;
  #keys: JWTVerifyGetKey;
  #options: JWTVerifyOptions;

  private constructor(settings: TokenSettings, keys: JWTVerifyGetKey) {
    this.#settings = settings;
    this.#keys = keys;
    const options: JWTVerifyOptions = {};
    if (settings.jwtIssuer !== '') options.issuer = settings.jwtIssuer;
    if (settings.jwtAudience !== '') options.audience = settings.jwtAudience;
    this.#options = options;
  }

  static async open(settings: TokenSettings): Promise<TokenAuthenticator> {
    return new TokenAuthenticator(settings, await TokenAuthenticator.#keySet(settings));
  }

  static async #keySet(s: TokenSettings): Promise<JWTVerifyGetKey> {
    if (s.jwksFile !== '')
      return createLocalJWKSet(JSON.parse(await readFile(s.jwksFile, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
    if (s.jwksUrl !== '') return createRemoteJWKSet(new URL(s.jwksUrl));
    throw new TypeError('token authentication needs jwksFile or jwksUrl');
  }

  /** Reads the JWKS file again (SIGHUP); a URL key set refreshes itself when it meets an unknown key id. */
  async reload(): Promise<void> {
    if (this.#settings.jwksFile !== '') this.#keys = await TokenAuthenticator.#keySet(this.#settings);
  }

  async authenticate(c: Credentials): Promise<AuthResult> {
    if (!looksLikeJwt(c.passcode)) return { ok: false, reason: 'the passcode is not a token' };
    let payload: Record<string, unknown>;
    try {
      payload = (await jwtVerify(c.passcode, this.#keys, this.#options)).payload;
    } catch (error) {
      return { ok: false, reason: reasonOf(error) };
    }
    const user = payload[this.#settings.jwtUserClaim];
    if (typeof user !== 'string' || user === '')
      return { ok: false, reason: `the token has no "${this.#settings.jwtUserClaim}" claim naming the user` };
    // Any `login` header is ignored, as RabbitMQ's OAuth 2 plugin does: the token alone names the user.
    let rights: UserRights;
    try {
      // No claim: no virtual host, so the CONNECT is refused. Rights are never granted by omission.
      rights = parseRights(payload[this.#settings.jwtPermissionsClaim] ?? {}, `token claim "${this.#settings.jwtPermissionsClaim}"`);
    } catch {
      return { ok: false, reason: `the token's "${this.#settings.jwtPermissionsClaim}" claim is malformed` };
    }
    // Fixed for the session: a token's rights are what it said when it was presented.
    return { ok: true, user, rights: () => rights };
  }
}

/**
 * Users file and tokens side by side: a passcode that looks like a JWT goes to the token path, any other to the
 * users file. With only one configured, the other kind of passcode is simply wrong.
 */
export class EitherAuthenticator implements Authenticator {
  #passwords: Authenticator | undefined;
  #tokens: Authenticator | undefined;

  constructor(passwords: Authenticator | undefined, tokens: Authenticator | undefined) {
    if (passwords === undefined && tokens === undefined) throw new TypeError('EitherAuthenticator needs a users file or tokens');
    this.#passwords = passwords;
    this.#tokens = tokens;
  }

  authenticate(c: Credentials): Promise<AuthResult> {
    if (this.#tokens !== undefined && looksLikeJwt(c.passcode)) return this.#tokens.authenticate(c);
    if (this.#passwords !== undefined) return this.#passwords.authenticate(c);
    return Promise.resolve({ ok: false, reason: 'login or passcode is wrong' });
  }

  async reload(): Promise<void> {
    await this.#passwords?.reload?.();
    await this.#tokens?.reload?.();
  }

  close(): void {
    this.#passwords?.close?.();
    this.#tokens?.close?.();
  }
}
