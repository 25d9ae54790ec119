import { FerryError, type ErrorCode } from '@ferry/protocol';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
} from 'jose';
import type { Logger } from 'pino';
import type { ClientAuthConfig } from '../config/types.js';

/** Asymmetric algorithms accepted with JWKS keys. */
export const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'] as const;
/** The only symmetric algorithm, accepted only when `hs256_secret` is configured. */
export const SECRET_ALGORITHM = 'HS256';

/** A verified client. */
export interface AuthenticatedClient {
  /** The token's `sub`. */
  userId: string;
  /** Every claim of the verified token. */
  payload: JWTPayload & Record<string, unknown>;
  /** When the token expires (its `exp`). */
  expiresAt: Date;
}

export interface Authenticator {
  /**
   * Verifies the token of an `Authorization` header (`Token <jwt>` or
   * `Bearer <jwt>`). Rejects with FerryError FERRY_S2001…S2007; never
   * resolves for an unverified token.
   */
  authenticate(authorization: string | undefined): Promise<AuthenticatedClient>;
  /** Verifies a bare JWT. Same contract as {@link authenticate}. */
  verify(token: string): Promise<AuthenticatedClient>;
}

export interface AuthenticatorOptions {
  /** Receives the development-only warning for `hs256_secret`. */
  logger?: Pick<Logger, 'warn'>;
  /** Timeout for fetching the JWKS URL, ms (default 5,000). */
  jwksTimeoutMs?: number;
  /** Clock for tests. */
  now?: () => Date;
}

/** Extracts the JWT from an `Authorization` header. Throws FERRY_S2001 when absent, S2002 for another scheme. */
export function tokenFromAuthorization(authorization: string | undefined): string {
  const value = authorization?.trim() ?? '';
  if (value === '') throw new FerryError('FERRY_S2001', 'missing token: send "Authorization: Token <jwt>"');
  const match = /^(Token|Bearer)\s+(\S+)$/i.exec(value);
  if (match === null)
    throw new FerryError('FERRY_S2002', 'invalid Authorization header: expected "Token <jwt>" or "Bearer <jwt>"');
  return match[2]!;
}

/**
 * Creates the verifier of client tokens for `client_auth`. Keys: inline
 * JWKS, a JWKS URL (fetched lazily, cached, refetched on an unknown `kid`),
 * and/or an HS256 secret (development only). Enforced: signature, algorithm
 * allow-list (never `none`), audience, `exp` (required), `nbf`, `sub`.
 */
export function createAuthenticator(config: ClientAuthConfig, options: AuthenticatorOptions = {}): Authenticator {
  const local = config.jwks === null ? null : createLocalJWKSet(config.jwks as Parameters<typeof createLocalJWKSet>[0]);
  const remote =
    config.jwksUri === null
      ? null
      : createRemoteJWKSet(new URL(config.jwksUri), { timeoutDuration: options.jwksTimeoutMs ?? 5000 });
  const secret = config.hs256Secret === null ? null : new TextEncoder().encode(config.hs256Secret);
  if (secret !== null) {
    options.logger?.warn('client_auth.hs256_secret is set: HS256 shared-secret tokens are for development only');
  }
  const algorithms: string[] = [
    ...(local !== null || remote !== null ? JWKS_ALGORITHMS : []),
    ...(secret !== null ? [SECRET_ALGORITHM] : []),
  ];

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === SECRET_ALGORITHM) {
      if (secret === null)
        throw new FerryError('FERRY_S2006', 'HS256 tokens are not accepted: no hs256_secret is configured');
      return secret;
    }
    if (local !== null) {
      try {
        return await local(header, token);
      } catch (error) {
        if (remote === null || !(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      }
    }
    if (remote !== null) {
      try {
        return await remote(header, token);
      } catch (error) {
        if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys)
          throw error;
        throw new FerryError(
          'FERRY_S2007',
          `cannot fetch the JWKS from client_auth.jwks_uri: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    }
    throw new FerryError('FERRY_S2006', `algorithm ${String(header.alg)} is not accepted`);
  };

  async function verify(token: string): Promise<AuthenticatedClient> {
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch (cause) {
      throw new FerryError('FERRY_S2002', 'invalid token: not a JWT', { cause });
    }
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      throw new FerryError(
        'FERRY_S2006',
        `token algorithm ${JSON.stringify(header.alg ?? null)} is not accepted (accepted: ${algorithms.join(', ')})`,
      );
    }
    let payload: JWTPayload;
    try {
      const verifyOptions = { audience: config.audience, algorithms, requiredClaims: ['exp', 'sub', 'aud'] };
      ({ payload } = await jwtVerify(
        token,
        getKey,
        options.now === undefined ? verifyOptions : { ...verifyOptions, currentDate: options.now() },
      ));
    } catch (error) {
      throw mapJoseError(error);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '')
      throw new FerryError('FERRY_S2005', 'token has no subject (sub)');
    if (typeof payload.exp !== 'number') throw new FerryError('FERRY_S2002', 'invalid token: exp is required');
    return {
      userId: payload.sub,
      payload: payload as AuthenticatedClient['payload'],
      expiresAt: new Date(payload.exp * 1000),
    };
  }

  return {
    verify,
    authenticate: (authorization) => {
      try {
        return verify(tokenFromAuthorization(authorization));
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
}

function mapJoseError(error: unknown): FerryError {
  if (FerryError.is(error)) return error;
  const fail = (code: ErrorCode, message: string) => new FerryError(code, message, { cause: error });
  if (error instanceof joseErrors.JWTExpired) return fail('FERRY_S2003', 'token expired');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return fail('FERRY_S2004', 'token audience is not accepted');
    if (error.claim === 'sub') return fail('FERRY_S2005', 'token has no subject (sub)');
    if (error.claim === 'exp') return fail('FERRY_S2002', `invalid token: exp is required`);
    if (error.claim === 'nbf') return fail('FERRY_S2002', 'invalid token: not valid yet (nbf)');
    return fail('FERRY_S2002', `invalid token: claim ${error.claim} ${error.reason}`);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed || error instanceof joseErrors.JOSENotSupported) {
    return fail('FERRY_S2006', 'token algorithm is not accepted');
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return fail('FERRY_S2006', 'no configured key matches the token (kid/alg)');
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return fail('FERRY_S2002', 'invalid token: signature verification failed');
  if (error instanceof joseErrors.JOSEError) return fail('FERRY_S2002', `invalid token: ${error.message}`);
  return fail('FERRY_S2002', `invalid token: ${(error as Error)?.message ?? String(error)}`);
}
