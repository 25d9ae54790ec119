import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A development signing key (Ed25519), generated once per project under
 * `.ferry/dev-key.json`. `ferry dev` trusts its public half through an inline
 * JWKS; `ferry token` signs with the private half. Never use it in production.
 */
export interface DevKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export const DEV_AUDIENCE = 'ferry-dev';

export async function loadOrCreateDevKey(file: string): Promise<DevKey> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as DevKey;
    if (parsed.kid && parsed.privateJwk && parsed.publicJwk) return parsed;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = `ferry-dev-${randomUUID().slice(0, 8)}`;
  const key: DevKey = {
    kid,
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA', use: 'sig' },
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' },
  };
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(key, null, 2) + '\n', { mode: 0o600 });
  return key;
}

export interface TokenOptions {
  userId: string;
  audience?: string;
  /** Lifetime in seconds (default 1 hour). */
  expiresInSeconds?: number;
  /** Extra claims, e.g. `{ org_id: 'acme' }`. */
  claims?: Record<string, unknown>;
}

/** Signs a development token for `userId` with the dev key. */
export async function signDevToken(key: DevKey, options: TokenOptions): Promise<string> {
  const privateKey = await importJWK(key.privateJwk, 'EdDSA');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
    .setSubject(options.userId)
    .setAudience(options.audience ?? DEV_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSeconds ?? 3600))
    .sign(privateKey);
}
