import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FerryError } from '@ferry/protocol';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientAuthConfig } from '../config/types.js';
import { createAuthenticator, tokenFromAuthorization } from './index.js';

const now = () => Math.floor(Date.now() / 1000);

interface KeyPair {
  privateKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(alg: 'RS256' | 'EdDSA', kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg } };
}

function sign(
  key: KeyPair,
  alg: string,
  claims: Record<string, unknown>,
  { exp = now() + 600, aud = 'ferry' as string | null } = {},
) {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, kid: key.jwk.kid! }).setIssuedAt().setExpirationTime(exp);
  if (aud !== null) jwt = jwt.setAudience(aud);
  return jwt.sign(key.privateKey);
}

function config(overrides: Partial<ClientAuthConfig>): ClientAuthConfig {
  return { audience: ['ferry'], jwksUri: null, jwks: null, hs256Secret: null, ...overrides };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (FerryError.is(error)) return error.code;
    throw error;
  }
  throw new Error('expected a rejection');
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('authenticator', () => {
  let rsa: KeyPair;
  let ed: KeyPair;
  let impostor: KeyPair;
  let jwksServer: Server;
  let jwksUrl: string;
  let jwksFetches = 0;

  beforeAll(async () => {
    rsa = await keyPair('RS256', 'rsa-1');
    ed = await keyPair('EdDSA', 'ed-1');
    impostor = await keyPair('RS256', 'rsa-1');
    jwksServer = createServer((_req, res) => {
      jwksFetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [rsa.jwk, ed.jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  it('verifies RS256 and EdDSA tokens against an inline JWKS', async () => {
    const auth = createAuthenticator(config({ jwks: { keys: [rsa.jwk as never, ed.jwk as never] } }));
    const exp = now() + 300;
    const fromRsa = await auth.authenticate(`Token ${await sign(rsa, 'RS256', { sub: 'u1', role: 'x' }, { exp })}`);
    expect(fromRsa.userId).toBe('u1');
    expect(fromRsa.payload.role).toBe('x');
    expect(fromRsa.expiresAt.getTime()).toBe(exp * 1000);
    const fromEd = await auth.authenticate(`Bearer ${await sign(ed, 'EdDSA', { sub: 'u2' })}`);
    expect(fromEd.userId).toBe('u2');
  });

  it('verifies against a JWKS URL and caches the key set', async () => {
    const auth = createAuthenticator(config({ jwksUri: jwksUrl }));
    const before = jwksFetches;
    expect((await auth.verify(await sign(rsa, 'RS256', { sub: 'a' }))).userId).toBe('a');
    expect((await auth.verify(await sign(ed, 'EdDSA', { sub: 'b' }))).userId).toBe('b');
    expect(jwksFetches - before).toBe(1);
  });

  it('accepts HS256 only with a configured secret', async () => {
    const secret = 'dev-secret-with-enough-length-0123456789';
    const token = await new SignJWT({ sub: 'dev' })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience('ferry')
      .setExpirationTime(now() + 60)
      .sign(new TextEncoder().encode(secret));
    const warnings: unknown[] = [];
    const auth = createAuthenticator(config({ hs256Secret: secret }), {
      logger: { warn: (msg: unknown) => warnings.push(msg) } as never,
    });
    expect((await auth.verify(token)).userId).toBe('dev');
    expect(warnings).toHaveLength(1);
    const jwksOnly = createAuthenticator(config({ jwks: { keys: [rsa.jwk as never] } }));
    expect(await codeOf(jwksOnly.verify(token))).toBe('FERRY_S2006');
  });

  it('maps every failure to its code', async () => {
    const auth = createAuthenticator(config({ jwks: { keys: [rsa.jwk as never] } }));
    expect(await codeOf(auth.authenticate(undefined))).toBe('FERRY_S2001');
    expect(await codeOf(auth.authenticate('  '))).toBe('FERRY_S2001');
    expect(await codeOf(auth.authenticate('Basic abc'))).toBe('FERRY_S2002');
    expect(await codeOf(auth.verify('garbage'))).toBe('FERRY_S2002');
    expect(await codeOf(auth.verify(await sign(impostor, 'RS256', { sub: 'u' })))).toBe('FERRY_S2002');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u', aud: 'ferry', exp: now() + 60 })}.`;
    expect(await codeOf(auth.verify(unsigned))).toBe('FERRY_S2006');
    expect(await codeOf(auth.verify(await sign(rsa, 'RS256', { sub: 'u' }, { exp: now() - 60 })))).toBe('FERRY_S2003');
    expect(await codeOf(auth.verify(await sign(rsa, 'RS256', { sub: 'u' }, { aud: 'other' })))).toBe('FERRY_S2004');
    expect(await codeOf(auth.verify(await sign(rsa, 'RS256', { sub: 'u' }, { aud: null })))).toBe('FERRY_S2004');
    expect(await codeOf(auth.verify(await sign(rsa, 'RS256', { role: 'no-sub' })))).toBe('FERRY_S2005');
    const noExp = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setAudience('ferry')
      .sign(rsa.privateKey);
    expect(await codeOf(auth.verify(noExp))).toBe('FERRY_S2002');
    const notYet = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setAudience('ferry')
      .setNotBefore(now() + 3600)
      .setExpirationTime(now() + 7200)
      .sign(rsa.privateKey);
    expect(await codeOf(auth.verify(notYet))).toBe('FERRY_S2002');
    // EdDSA key not in the JWKS: no matching key.
    expect(await codeOf(auth.verify(await sign(ed, 'EdDSA', { sub: 'u' })))).toBe('FERRY_S2006');
  });

  it('reports an unreachable JWKS URL as FERRY_S2007', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const auth = createAuthenticator(config({ jwksUri: `http://127.0.0.1:${port}/jwks.json` }), {
      jwksTimeoutMs: 2000,
    });
    expect(await codeOf(auth.verify(await sign(rsa, 'RS256', { sub: 'u' })))).toBe('FERRY_S2007');
  });

  it('parses Token and Bearer schemes', () => {
    expect(tokenFromAuthorization('Token a.b.c')).toBe('a.b.c');
    expect(tokenFromAuthorization('bearer a.b.c')).toBe('a.b.c');
  });
});
