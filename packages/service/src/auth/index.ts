export { createAuthenticator, JWKS_ALGORITHMS, SECRET_ALGORITHM, tokenFromAuthorization } from './authenticator.js';
export type { AuthenticatedClient, Authenticator, AuthenticatorOptions } from './authenticator.js';
