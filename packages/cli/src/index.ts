export { startEmbeddedPostgres, freePort, quoteIdent } from './embedded-postgres.js';
export type { EmbeddedPostgresOptions, RunningPostgres } from './embedded-postgres.js';
export { MIME_TYPES } from './dev/static-files.js';
