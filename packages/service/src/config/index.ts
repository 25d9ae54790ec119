export { loadConfig, parseConfig } from './load-config.js';
export type { ConfigIssue, ParseConfigOptions } from './load-config.js';
export { configJsonSchema, configSchema } from './schema.js';
export type { RawFerryConfig } from './schema.js';
export type { ApiConfig, ClientAuthConfig, FerryConfig, Jwk } from './types.js';
