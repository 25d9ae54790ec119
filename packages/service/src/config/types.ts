import type { LogLevel } from '../metrics/logger.js';

/** One JSON Web Key, as in a JWKS. */
export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  [key: string]: unknown;
}

/** How client tokens are verified (normalized `client_auth`). */
export interface ClientAuthConfig {
  /** Accepted audiences; a token must carry at least one. Never empty. */
  audience: string[];
  /** JWKS URL, fetched and cached. */
  jwksUri: string | null;
  /** Inline JWKS. */
  jwks: { keys: Jwk[] } | null;
  /** HS256 shared secret; development only. */
  hs256Secret: string | null;
}

/** The HTTP API (normalized `api`). */
export interface ApiConfig {
  host: string;
  port: number;
  maxBucketsPerClient: number;
  keepaliveSeconds: number;
  corsOrigin: string;
}

/**
 * The normalized configuration: every default applied, every path absolute,
 * camelCase. Nothing downstream re-checks or re-defaults it.
 */
export interface FerryConfig {
  /** Absolute path of the config file, or null when parsed from text without a file. */
  file: string | null;
  /** Slot and publication names; null = derived from the database and storage schema. */
  replication: { connection: string; slotName: string | null; publication: string | null };
  /** `connection` defaults to `replication.connection`. */
  storage: { connection: string; schema: string; compactIntervalSeconds: number };
  /** Exactly one of `path` (absolute) and `content` is set. */
  syncRules: { path: string | null; content: string | null };
  /** Write rules for `POST /write`; null when not configured (the endpoint answers 404). Exactly one of `path` (absolute) and `content` is set. */
  writeRules: {
    path: string | null;
    content: string | null;
    maxRequestBytes: number;
    /** Applied transactions are remembered by key this long (pruned with compaction). */
    idempotencyRetentionHours: number;
    /** Absolute path of the write hooks module, or null without one. */
    hooks: string | null;
    /** Client HLC stamps more than this many ms ahead of the service's clock are lowered to now + this. */
    maxClockSkewMs: number;
  } | null;
  clientAuth: ClientAuthConfig;
  api: ApiConfig;
  logLevel: LogLevel;
}
