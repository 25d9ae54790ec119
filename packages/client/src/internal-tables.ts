/**
 * Ferry's own tables in the client database (all prefixed `ferry_`).
 *
 * - `ferry_kv`: small settings (client id, applied schema, last sync time).
 * - `ferry_buckets`: one row per bucket the client holds: the last op id
 *   received (`last_op`, sent back as `after` on reconnect) and
 *   `add_checksum`, the wrapping sum of the checksums of every op of the
 *   bucket that is no longer stored (superseded PUTs, REMOVEs, MOVEs, and
 *   since the last CLEAR the CLEAR itself). Invariant: a bucket's checksum =
 *   `add_checksum + sum(ferry_oplog.checksum of the bucket)` (mod 2^32).
 * - `ferry_oplog`: the current op per (bucket, row_type, row_id, subkey),
 *   with the row data exactly as the service sent it. This is also the kept
 *   row data from which typed tables are (re)materialized.
 * - `ferry_dirty`: rows touched by staged ops and not yet applied to the
 *   typed tables. Staged data is invisible until a checkpoint completes.
 */
export const FORMAT_VERSION = '1';

export const INTERNAL_TABLES_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ferry_kv (key TEXT PRIMARY KEY NOT NULL, value TEXT) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS ferry_buckets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_op INTEGER NOT NULL DEFAULT 0,
    add_checksum INTEGER NOT NULL DEFAULT 0,
    count_at_last INTEGER NOT NULL DEFAULT 0,
    count_since_last INTEGER NOT NULL DEFAULT 0
  )`,
  `CREATE TABLE IF NOT EXISTS ferry_oplog (
    bucket INTEGER NOT NULL,
    op_id INTEGER NOT NULL,
    row_type TEXT NOT NULL,
    row_id TEXT NOT NULL,
    subkey TEXT NOT NULL,
    data TEXT,
    checksum INTEGER NOT NULL
  )`,
  `CREATE UNIQUE INDEX IF NOT EXISTS ferry_oplog_key ON ferry_oplog (bucket, row_type, row_id, subkey)`,
  `CREATE INDEX IF NOT EXISTS ferry_oplog_row ON ferry_oplog (row_type, row_id, op_id)`,
  // Entries of REMOVE ops live only inside one staging transaction; this keeps finding them cheap.
  `CREATE INDEX IF NOT EXISTS ferry_oplog_removed ON ferry_oplog (bucket) WHERE data IS NULL`,
  // A PUT or REMOVE replacing an entry moves the replaced op's checksum into add_checksum.
  `CREATE TRIGGER IF NOT EXISTS ferry_oplog_replaced AFTER UPDATE OF op_id ON ferry_oplog BEGIN
    UPDATE ferry_buckets SET add_checksum = (add_checksum + OLD.checksum) & 4294967295 WHERE id = OLD.bucket;
  END`,
  `CREATE TABLE IF NOT EXISTS ferry_dirty (
    row_type TEXT NOT NULL,
    row_id TEXT NOT NULL,
    PRIMARY KEY (row_type, row_id)
  ) WITHOUT ROWID`,
];

/** Per-connection scratch table for one staging transaction (writer connection only). */
export const BATCH_TABLE_DDL = `CREATE TEMP TABLE IF NOT EXISTS ferry_batch (
  bucket INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  op_id INTEGER NOT NULL,
  op TEXT NOT NULL,
  row_type TEXT,
  row_id TEXT,
  subkey TEXT NOT NULL,
  data TEXT,
  checksum INTEGER NOT NULL
)`;

/** Tables whose content `disconnectAndClear` removes. */
export const SYNC_STATE_TABLES = ['ferry_oplog', 'ferry_buckets', 'ferry_dirty'] as const;

export const KV_CLIENT_ID = 'client_id';
export const KV_SCHEMA = 'schema';
export const KV_FORMAT = 'format_version';
export const KV_LAST_SYNCED_AT = 'last_synced_at';
