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
 *   `fresh` = 1 while none of the bucket's stored ops has been applied to
 *   the typed tables yet (a new bucket, or one reset after a checksum
 *   mismatch): every row it holds is pending, so its PUTs need no
 *   `ferry_dirty` mark. Applying a checkpoint sets it to 0.
 * - `ferry_oplog`: the current op per (bucket, row_type, row_id, subkey),
 *   with the row data exactly as the service sent it. This is also the kept
 *   row data from which typed tables are (re)materialized. Keyed by bucket
 *   first (WITHOUT ROWID), so staging a bucket's ops writes one region of
 *   the table rather than pages all over it; `ferry_oplog_row` finds a
 *   row's ops across buckets.
 * - `ferry_dirty`: rows touched by staged ops of buckets that are not
 *   fresh (and rows whose op was removed) and not yet applied to the typed
 *   tables. Staged data is invisible until a checkpoint completes.
 */
export const FORMAT_VERSION = '2';

const OPLOG_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ferry_oplog (
    bucket INTEGER NOT NULL,
    row_type TEXT NOT NULL,
    row_id TEXT NOT NULL,
    subkey TEXT NOT NULL,
    op_id INTEGER NOT NULL,
    data TEXT,
    checksum INTEGER NOT NULL,
    PRIMARY KEY (bucket, row_type, row_id, subkey)
  ) WITHOUT ROWID`;

/**
 * Finds a row's ops across buckets. Maintaining it costs more than the
 * oplog's own key while staging (its keys are random), so a first sync
 * drops it and builds it in one pass when the checkpoint is applied (see
 * `BucketStore.beginCheckpoint`): every user of it runs this first.
 */
export const OPLOG_ROW_INDEX_DDL = `CREATE INDEX IF NOT EXISTS ferry_oplog_row ON ferry_oplog (row_type, row_id, op_id)`;

export const INTERNAL_TABLES_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ferry_kv (key TEXT PRIMARY KEY NOT NULL, value TEXT) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS ferry_buckets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_op INTEGER NOT NULL DEFAULT 0,
    add_checksum INTEGER NOT NULL DEFAULT 0,
    count_at_last INTEGER NOT NULL DEFAULT 0,
    count_since_last INTEGER NOT NULL DEFAULT 0,
    fresh INTEGER NOT NULL DEFAULT 1
  )`,
  OPLOG_TABLE_DDL,
  OPLOG_ROW_INDEX_DDL,
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

/**
 * Upgrades format 1 (rowid oplog with a unique key index, no `fresh`
 * column) to format 2, keeping every stored op, position and checksum, so
 * nothing is downloaded again. Runs before {@link INTERNAL_TABLES_DDL},
 * inside the caller's transaction. Existing buckets count as applied
 * (`fresh` = 0): their pending rows are already in `ferry_dirty`.
 */
export const MIGRATE_FORMAT_1_TO_2: readonly string[] = [
  `DROP TRIGGER IF EXISTS ferry_oplog_replaced`,
  `DROP INDEX IF EXISTS ferry_oplog_key`,
  `DROP INDEX IF EXISTS ferry_oplog_row`,
  `DROP INDEX IF EXISTS ferry_oplog_removed`,
  `ALTER TABLE ferry_oplog RENAME TO ferry_oplog_format1`,
  OPLOG_TABLE_DDL,
  `INSERT INTO ferry_oplog (bucket, row_type, row_id, subkey, op_id, data, checksum)
   SELECT bucket, row_type, row_id, subkey, op_id, data, checksum FROM ferry_oplog_format1`,
  `DROP TABLE ferry_oplog_format1`,
  `ALTER TABLE ferry_buckets ADD COLUMN fresh INTEGER NOT NULL DEFAULT 1`,
  `UPDATE ferry_buckets SET fresh = 0`,
];

/**
 * Per-connection scratch table for one staging transaction (writer
 * connection only). `seq` orders the ops as received (line index << 32 |
 * position in the line); keyed by bucket first, so the per-bucket summary
 * and the upsert in (bucket, seq) order need no sort.
 */
export const BATCH_TABLE_DDL = `CREATE TEMP TABLE IF NOT EXISTS ferry_batch (
  bucket INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  op_id INTEGER NOT NULL,
  op TEXT NOT NULL,
  row_type TEXT,
  row_id TEXT,
  subkey TEXT NOT NULL,
  data TEXT,
  checksum INTEGER NOT NULL,
  PRIMARY KEY (bucket, seq)
) WITHOUT ROWID`;

/** Tables whose content `disconnectAndClear` removes. */
export const SYNC_STATE_TABLES = ['ferry_oplog', 'ferry_buckets', 'ferry_dirty'] as const;

export const KV_CLIENT_ID = 'client_id';
export const KV_SCHEMA = 'schema';
export const KV_FORMAT = 'format_version';
export const KV_LAST_SYNCED_AT = 'last_synced_at';
