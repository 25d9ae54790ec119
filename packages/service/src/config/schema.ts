/**
 * The ferry.yaml schema: every option declared once, with its type, default
 * and help text (the `.meta({ description })`). `configJsonSchema()` exports
 * it for editors; `parseConfig` validates against it and normalizes.
 */
import { z } from 'zod';
import { LOG_LEVELS } from '../metrics/logger.js';

/** An integer, also accepted as a decimal string (so `!env PORT` works). */
function integer(min: number, max: number) {
  return z
    .union(
      [
        z.number(),
        z
          .string()
          .regex(/^-?\d+$/)
          .transform(Number),
      ],
      { error: 'expected an integer' },
    )
    .pipe(
      z
        .number()
        .int({ error: 'expected an integer' })
        .min(min, { error: `must be at least ${min}` })
        .max(max, { error: `must be at most ${max}` }),
    );
}

const nonEmpty = (what: string) =>
  z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}, got an empty string` });

const jwkSchema = z.looseObject({ kty: nonEmpty('a key type (kty)') });

export const replicationSchema = z.strictObject({
  connection: nonEmpty('a Postgres connection URI').meta({
    description: 'Source Postgres URI (postgres://user:pass@host:port/db).',
  }),
  slot_name: z
    .string()
    .regex(/^[a-z0-9_]{1,63}$/, { error: 'expected lowercase letters, digits and _ (at most 63)' })
    .optional()
    .meta({
      description: 'Logical replication slot name. Default: ferry_<storage schema>_<database>, unique per database.',
    }),
  publication: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, { error: 'expected a Postgres identifier' })
    .optional()
    .meta({ description: 'Publication name. Default: ferry_<storage schema>.' }),
});

export const storageSchema = z.strictObject({
  connection: nonEmpty('a Postgres connection URI')
    .optional()
    .meta({ description: 'Bucket storage Postgres URI. Defaults to replication.connection.' }),
  schema: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, { error: 'expected a Postgres identifier' })
    .default('ferry')
    .meta({ description: "Schema holding Ferry's bucket storage and bookkeeping." }),
  compact_interval_seconds: z.number({ error: 'expected a number of seconds' }).int().min(0).default(600).meta({
    description:
      'How often the replicating process compacts bucket op logs (superseded ops become MOVE/CLEAR; checksums never change). 0 turns it off.',
  }),
});

export const syncRulesSchema = z
  .strictObject({
    path: nonEmpty('a file path')
      .optional()
      .meta({ description: 'Sync rules YAML file, relative to this config file.' }),
    content: nonEmpty('sync rules YAML text')
      .optional()
      .meta({ description: 'Inline sync rules YAML (instead of path).' }),
  })
  .refine((value) => (value.path === undefined) !== (value.content === undefined), {
    error: 'set exactly one of path or content',
  });

export const writeRulesSchema = z
  .strictObject({
    path: nonEmpty('a file path')
      .optional()
      .meta({ description: 'Write rules YAML file, relative to this config file.' }),
    content: nonEmpty('write rules YAML text')
      .optional()
      .meta({ description: 'Inline write rules YAML (instead of path).' }),
    max_request_bytes: integer(1024, 1024 * 1024 * 1024)
      .default(8 * 1024 * 1024)
      .meta({ description: 'Largest accepted POST /write body in bytes; larger answers 413 (FERRY_S4002).' }),
    idempotency_retention_hours: integer(1, 24 * 3650)
      .default(24 * 30)
      .meta({
        description:
          'How long applied transactions are remembered by idempotency key, and deleted rows by their tombstone. A client resending a transaction after this (its answer lost, then offline that long) would have it applied again; an edit of a row deleted longer ago is dropped instead of kept as a conflict.',
      }),
    hooks: nonEmpty('a file path').optional().meta({
      description:
        'Write hooks module (.ts, .mts, .cts, .js, .mjs or .cjs), relative to this config file: validation hooks and the merge functions the write rules name. TypeScript is compiled on load (types are not checked).',
    }),
    max_clock_skew_ms: integer(0, 24 * 60 * 60 * 1000)
      .default(60_000)
      .meta({
        description:
          "How far ahead of the service's clock a client's HLC stamp may count, in milliseconds; stamps further ahead are lowered to now + this bound, so a client with a fast clock cannot win every conflict.",
      }),
  })
  .refine((value) => (value.path === undefined) !== (value.content === undefined), {
    error: 'set exactly one of path or content',
  });

export const clientAuthSchema = z
  .strictObject({
    audience: z
      .union([nonEmpty('a string'), z.array(nonEmpty('a string')).min(1)], {
        error: 'expected a string or list of strings',
      })
      .meta({ description: 'Accepted token audience(s) (`aud`).' }),
    jwks_uri: z
      .url({ error: 'expected an http(s) URL' })
      .optional()
      .meta({ description: 'URL of a JWKS with the signing keys.' }),
    jwks: z
      .object(
        {
          keys: z.array(jwkSchema).min(1, { error: 'expected at least one key' }).meta({
            description: 'Public JSON Web Keys (RSA, EC or OKP/Ed25519), each with kty and ideally kid and alg.',
          }),
        },
        { error: 'expected a JWKS object { keys: [...] }' },
      )
      .optional()
      .meta({ description: 'Inline JWKS (RS256, ES256, EdDSA, ...).' }),
    hs256_secret: nonEmpty('a secret')
      .optional()
      .meta({ description: 'Shared HS256 secret. Development only: logs a warning.' }),
  })
  .refine((value) => value.jwks_uri !== undefined || value.jwks !== undefined || value.hs256_secret !== undefined, {
    error: 'set at least one of jwks_uri, jwks or hs256_secret',
  });

export const apiSchema = z.strictObject({
  host: nonEmpty('a host name or address').default('127.0.0.1').meta({ description: 'Address to listen on.' }),
  port: integer(0, 65535).default(8080).meta({ description: 'Port to listen on (0 = any free port).' }),
  max_buckets_per_client: integer(1, 1_000_000)
    .default(1000)
    .meta({ description: 'Most buckets one client may hold; more is an error (FERRY_S4007).' }),
  keepalive_seconds: integer(1, 3600)
    .default(20)
    .meta({ description: 'Seconds between keepalive lines on an idle sync stream.' }),
  cors_origin: nonEmpty('an origin or *')
    .default('*')
    .meta({ description: 'Access-Control-Allow-Origin sent to browsers.' }),
});

export const configSchema = z.strictObject({
  replication: replicationSchema.meta({ description: 'Source database.' }),
  storage: storageSchema.prefault({}).meta({ description: 'Bucket storage.' }),
  sync_rules: syncRulesSchema.meta({ description: 'Sync rules.' }),
  write_rules: writeRulesSchema.optional().meta({
    description:
      'Write rules for POST /write (which tables and columns tokens may write). Without them POST /write answers 404.',
  }),
  client_auth: clientAuthSchema.meta({ description: 'How client tokens are verified.' }),
  api: apiSchema.prefault({}).meta({ description: 'HTTP API.' }),
  log_level: z
    .enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` })
    .default('info')
    .meta({ description: 'Log level.' }),
});

/** The config file as written (after defaults), snake_case. */
export type RawFerryConfig = z.output<typeof configSchema>;

/** JSON Schema of ferry.yaml, for editor validation. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
