/**
 * The one registry of Ferry's error codes. Codes are `FERRY_<side><4 digits>`:
 * side `S` for the service (and the tools around it), `C` for client SDKs.
 * Ranges: 1xxx configuration and sync rules, 2xxx authentication,
 * 3xxx replication, 4xxx requests and the sync stream, 5xxx storage,
 * 6xxx per-op answers of the write API,
 * 9xxx internal. A code never changes meaning once released.
 *
 * Each entry documents what happened and what to do; `docs/errors.md` is
 * generated from this table (`npm run docs:errors`).
 */
export const ERROR_CODES = {
  // ── configuration & rules ────────────────────────────────────────────────
  /** The config file could not be read or parsed as YAML. Fix the file at the reported line. */
  FERRY_S1001: { status: 500, title: 'Config file unreadable' },
  /** A config key is missing, unknown or has the wrong type. The message names the key and line. */
  FERRY_S1002: { status: 500, title: 'Invalid config value' },
  /** `!env VAR` names an environment variable that is not set. Set it or remove the reference. */
  FERRY_S1003: { status: 500, title: 'Missing environment variable' },
  /** The sync rules file is not valid YAML or has the wrong shape. Fix it at the reported line. */
  FERRY_S1101: { status: 500, title: 'Invalid sync rules file' },
  /** A sync rules query has a SQL syntax error. The message gives file, line and column. */
  FERRY_S1102: { status: 500, title: 'Sync rules SQL syntax error' },
  /** A sync rules query uses a construct Ferry does not support. Rewrite it as the message suggests. */
  FERRY_S1103: { status: 500, title: 'Unsupported sync rules construct' },
  /** A sync rules query references something that does not exist (bucket parameter, function). */
  FERRY_S1104: { status: 500, title: 'Invalid sync rules reference' },
  /** The write rules file is not valid YAML or has the wrong shape. Fix it at the reported line. */
  FERRY_S1201: { status: 500, title: 'Invalid write rules file' },
  /** The write rules name a table or column that does not exist in Postgres (or a table without an `id` column). */
  FERRY_S1202: { status: 500, title: 'Write rules reference unknown schema' },
  /** The write hooks module could not be loaded, or does not export what the write rules name (a merge function, a table's validator). */
  FERRY_S1203: { status: 500, title: 'Invalid write hooks module' },
  /** The write API could not create its tables (`write_transactions`, `field_clocks`, `ferry_conflicts`, `ferry_violations`): the database role may not create them. Grant it CREATE on the schema named in the message, or create them beforehand (docs/conflicts.md). */
  FERRY_S1204: { status: 500, title: 'Cannot create write API tables' },

  // ── authentication ───────────────────────────────────────────────────────
  /** No token was sent. Send `Authorization: Token <jwt>` (or `Bearer`). */
  FERRY_S2001: { status: 401, title: 'Missing token' },
  /** The token is not a well-formed JWT, or its signature does not verify against the configured keys. */
  FERRY_S2002: { status: 401, title: 'Invalid token' },
  /** The token has expired (`exp` is in the past). Fetch a fresh token. */
  FERRY_S2003: { status: 401, title: 'Token expired' },
  /** The token's `aud` does not match the configured audience. Issue tokens for the audience in ferry.yaml. */
  FERRY_S2004: { status: 401, title: 'Wrong token audience' },
  /** The token has no `sub` claim; Ferry uses it as the user id. */
  FERRY_S2005: { status: 401, title: 'Token has no subject' },
  /** The token's algorithm or key id is not accepted by the configured keys. */
  FERRY_S2006: { status: 401, title: 'Token key not accepted' },
  /** The JWKS URL could not be fetched. Check `client_auth.jwks_uri` and that the server is reachable. */
  FERRY_S2007: { status: 503, title: 'JWKS unavailable' },

  // ── replication ──────────────────────────────────────────────────────────
  /** Postgres is not configured for logical replication. Set `wal_level=logical` and restart Postgres. */
  FERRY_S3001: { status: 500, title: 'Logical replication unavailable' },
  /** A table the sync rules read does not exist in Postgres. Create it or fix the rules. */
  FERRY_S3002: { status: 500, title: 'Source table missing' },
  /** A replicated table has no primary key and no replica identity. Add a primary key or `REPLICA IDENTITY FULL`. */
  FERRY_S3003: { status: 500, title: 'No replica identity' },
  /** The replication slot was lost (dropped or invalidated). Ferry re-snapshots from scratch. */
  FERRY_S3004: { status: 500, title: 'Replication slot lost' },
  /** The replication connection failed; Ferry retries with backoff. */
  FERRY_S3005: { status: 503, title: 'Replication connection failed' },

  // ── requests & sync stream ───────────────────────────────────────────────
  /** The request body is not valid JSON or does not match the endpoint's schema. */
  FERRY_S4001: { status: 400, title: 'Malformed request' },
  /** The request body is larger than the endpoint accepts. */
  FERRY_S4002: { status: 413, title: 'Request too large' },
  /** No such endpoint. */
  FERRY_S4004: { status: 404, title: 'Not found' },
  /** The endpoint does not accept this HTTP method. */
  FERRY_S4005: { status: 405, title: 'Method not allowed' },
  /** The service is starting or its initial copy is not complete; retry shortly. */
  FERRY_S4006: { status: 503, title: 'Not ready' },
  /** The token grants more buckets than the configured limit. Narrow the sync rules or raise `max_buckets_per_client`. */
  FERRY_S4007: { status: 400, title: 'Too many buckets' },

  // ── storage ──────────────────────────────────────────────────────────────
  /** Bucket storage could not be read or written; the operation is retried. */
  FERRY_S5001: { status: 503, title: 'Storage unavailable' },

  // ── writes (per-op answers of the write API) ─────────────────────────────
  /** The write rules do not allow this operation (insert, update or delete) on this table for this token. */
  FERRY_S6001: { status: 403, title: 'Write not allowed' },
  /** The op sets a column the write rules do not make writable. */
  FERRY_S6002: { status: 403, title: 'Column not writable' },
  /** The op changes a column the write rules declare immutable. */
  FERRY_S6003: { status: 403, title: 'Immutable column changed' },
  /** The row is not one this token may write (owner or row condition of the write rules). */
  FERRY_S6004: { status: 403, title: 'Row not writable' },
  /** Postgres refused the value (type, NOT NULL, foreign key, unique or check constraint). The message says which. */
  FERRY_S6005: { status: 422, title: 'Value rejected' },
  /** Another op of the same transaction was rejected, so none of the transaction was applied. */
  FERRY_S6006: { status: 409, title: 'Transaction aborted' },
  /** The op names a table or column that is not in the write rules or not in Postgres. */
  FERRY_S6007: { status: 400, title: 'Unknown table or column' },
  /** A transient database error (serialization failure, deadlock, lost connection). Retry later; nothing was applied. */
  FERRY_S6008: { status: 503, title: 'Write temporarily failed' },
  /** The op is malformed (missing id, data on a DELETE, bad HLC stamp). */
  FERRY_S6009: { status: 400, title: 'Malformed op' },
  /** A validation hook rejected the op (its message says why). Retryable when the hook said so. */
  FERRY_S6010: { status: 422, title: 'Rejected by validation hook' },
  /** A validation hook or merge function threw; the transaction was rolled back and nothing of it was applied. */
  FERRY_S6011: { status: 500, title: 'Write hook failed' },

  // ── internal ─────────────────────────────────────────────────────────────
  /** An unexpected internal error. This is a bug: please report it with the log line. */
  FERRY_S9001: { status: 500, title: 'Internal error' },

  // ── client ───────────────────────────────────────────────────────────────
  /** The connector's `fetchCredentials()` returned nothing or threw. */
  FERRY_C1001: { status: 0, title: 'No credentials' },
  /** The service rejected the client's credentials (401). The client fetches fresh credentials and retries. */
  FERRY_C1002: { status: 0, title: 'Credentials rejected' },
  /** The sync stream sent something the client could not understand. */
  FERRY_C1003: { status: 0, title: 'Protocol error' },
  /** A bucket's checksum did not match after a checkpoint; the bucket is re-downloaded. */
  FERRY_C1004: { status: 0, title: 'Checksum mismatch' },
  /** The client schema is invalid (bad table or column name, duplicate column). */
  FERRY_C1005: { status: 0, title: 'Invalid schema' },
  /** The database was closed while an operation was pending. */
  FERRY_C1006: { status: 0, title: 'Database closed' },
  /** A query returned no row where one was required (`get`). */
  FERRY_C1007: { status: 0, title: 'No result' },
  /** The sync service answered with a server error (5xx) or could not be reached; the client retries with backoff. */
  FERRY_C1008: { status: 0, title: 'Sync service unavailable' },
  /** The connector's `uploadData()` failed (network error, 5xx, or it threw). Nothing is dropped; the upload is retried with backoff. */
  FERRY_C1009: { status: 0, title: 'Upload failed' },
  /** The server rejected a local write. The op left the queue, the row returned to the server's state, and the reason is in `ferry_rejections`. */
  FERRY_C1010: { status: 0, title: 'Write rejected' },
  /** A React hook of `@ferry/react` ran outside `<FerryProvider db={db}>`. Wrap the tree in the provider. */
  FERRY_C1011: { status: 0, title: 'No Ferry database in context' },
  /** The browser database worker failed to load or died; pending and later requests fail. Reload the page; check that the worker and .wasm files are served. */
  FERRY_C1012: { status: 0, title: 'Database worker failed' },
  /** The options given to open a database contradict each other or need a browser API that is missing (e.g. `exclusive` with `multiTab`). */
  FERRY_C1013: { status: 0, title: 'Invalid database options' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
