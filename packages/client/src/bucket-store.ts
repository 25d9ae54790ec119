import { FerryError, normalizeChecksum, type BucketChecksum } from '@ferry/protocol';
import type { SqliteConnection } from './driver.js';
import { OPLOG_ROW_INDEX_DDL } from './internal-tables.js';
import {
  acknowledgeOverlay,
  hasLocalOps,
  markLocalRowsDirty,
  recordAckedWriteCheckpoint,
  replayLocalOps,
} from './overlay.js';
import { quoteIdentifier, type ResolvedTable } from './schema.js';

/** A bucket the client holds and where to resume it. */
export interface BucketPosition {
  name: string;
  /** Last op id received, decimal string ("0" = nothing). */
  after: string;
}

/** What one staging batch added, per bucket. */
export interface StagedSummary {
  /** Ops received in the batch (all kinds). */
  ops: number;
}

/** A bucket whose local checksum disagrees with the checkpoint's. */
export interface ChecksumMismatch {
  bucket: string;
  expected: number;
  actual: number;
}

const U32 = 4294967295;

const INSERT_BATCH = `INSERT INTO temp.ferry_batch (bucket, seq, op_id, op, row_type, row_id, subkey, data, checksum)
SELECT b.id, (?2 << 32) + e.key, CAST(e.value ->> 'op_id' AS INTEGER), e.value ->> 'op',
  e.value ->> 'object_type', CAST(e.value ->> 'object_id' AS TEXT), coalesce(e.value ->> 'subkey', ''),
  e.value ->> 'data', (e.value ->> 'checksum') & ${U32}
FROM ferry_buckets b, jsonb_each(?1, '$.data.data') e
WHERE b.name = ?3`;

const UPSERT_OPS = `INSERT INTO ferry_oplog (bucket, op_id, row_type, row_id, subkey, data, checksum)
SELECT bucket, op_id, row_type, row_id, subkey, CASE WHEN op = 'PUT' THEN coalesce(data, '{}') END, checksum
FROM temp.ferry_batch
WHERE op IN ('PUT', 'REMOVE') AND row_type IS NOT NULL AND row_id IS NOT NULL
ORDER BY bucket, seq
ON CONFLICT (bucket, row_type, row_id, subkey) DO UPDATE
SET op_id = excluded.op_id, data = excluded.data, checksum = excluded.checksum`;

/**
 * The client's bucket storage: staging of received ops, checksum
 * validation and application of complete checkpoints to the typed tables.
 * Pure SQL over a {@link SqliteConnection}: row data never passes through
 * `JSON.parse`, so int8 values keep every digit.
 *
 * Every method must run inside a write transaction the caller holds on the
 * writer connection (except {@link positions}, which only reads, and
 * {@link buildRowIndex}, which opens its own).
 */
export class BucketStore {
  /** True once {@link beginCheckpoint} dropped the row index, until {@link buildRowIndex} committed it again. */
  private rowIndexDropped = false;

  /** The buckets held and the `after` to resume each from. */
  async positions(conn: SqliteConnection): Promise<BucketPosition[]> {
    const { rows } = await conn.execute(`SELECT name, CAST(last_op AS TEXT) AS after FROM ferry_buckets ORDER BY id`);
    return rows.map((r) => ({ name: String(r['name']), after: String(r['after']) }));
  }

  /**
   * Stores the ops of `data` lines (raw NDJSON text, each `{"data":{…}}`)
   * invisibly: the oplog, positions and checksums advance, the rows they
   * touch are marked dirty, and no typed table changes. Returns the number
   * of ops staged per bucket name.
   */
  async stageData(conn: SqliteConnection, lines: readonly string[]): Promise<Map<string, StagedSummary>> {
    const named = lines.map((line, index) => [line, index, dataLineBucket(line)] as const);
    await conn.executeBatch(
      `INSERT OR IGNORE INTO ferry_buckets (name) VALUES (?)`,
      uniqueBuckets(named.map(([, , bucket]) => bucket)).map((bucket) => [bucket]),
    );
    await conn.executeBatch(INSERT_BATCH, named);
    const summary = await conn.execute(
      `SELECT f.bucket AS id, b.name AS name, count(*) AS ops, CAST(max(f.op_id) AS TEXT) AS max_op,
         max(CASE WHEN f.op = 'CLEAR' THEN f.seq END) AS clear_seq,
         max(CASE WHEN f.op = 'MOVE' THEN 1 ELSE 0 END) AS has_move,
         max(CASE WHEN f.op = 'REMOVE' OR b.fresh = 0 THEN 1 ELSE 0 END) AS needs_dirty
       FROM temp.ferry_batch f JOIN ferry_buckets b ON b.id = f.bucket GROUP BY f.bucket`,
    );
    const result = new Map<string, StagedSummary>();
    let needsDirty = false;
    for (const row of summary.rows) {
      if (row['needs_dirty'] === 1) needsDirty = true;
      const id = row['id'] as number;
      const clearSeq = row['clear_seq'];
      if (clearSeq !== null && clearSeq !== undefined) {
        // CLEAR: everything before it goes; its checksum becomes the running checksum.
        await conn.execute(
          `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id) SELECT row_type, row_id FROM ferry_oplog WHERE bucket = ?`,
          [id],
        );
        await conn.execute(`DELETE FROM ferry_oplog WHERE bucket = ?`, [id]);
        await conn.execute(
          `UPDATE ferry_buckets SET add_checksum = (SELECT checksum FROM temp.ferry_batch WHERE bucket = ?1 AND seq = ?2) WHERE id = ?1`,
          [id, clearSeq as number],
        );
        await conn.execute(`DELETE FROM temp.ferry_batch WHERE bucket = ? AND seq <= ?`, [id, clearSeq as number]);
      }
      if (row['has_move'] === 1) {
        await conn.execute(
          `UPDATE ferry_buckets SET add_checksum = (add_checksum +
             coalesce((SELECT sum(checksum) FROM temp.ferry_batch WHERE bucket = ?1 AND op = 'MOVE'), 0)) & ${U32}
           WHERE id = ?1`,
          [id],
        );
      }
      await conn.execute(
        `UPDATE ferry_buckets SET last_op = max(last_op, CAST(?2 AS INTEGER)), count_since_last = count_since_last + ?3 WHERE id = ?1`,
        [id, String(row['max_op']), row['ops'] as number],
      );
      result.set(String(row['name']), { ops: row['ops'] as number });
    }
    await conn.execute(UPSERT_OPS);
    // Rows of fresh buckets are all pending anyway (see applyDirty); only a REMOVE there needs a mark,
    // as its entry is gone by the time the checkpoint is applied.
    if (needsDirty) {
      await conn.execute(
        `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id)
         SELECT f.row_type, f.row_id FROM temp.ferry_batch f JOIN ferry_buckets b ON b.id = f.bucket
         WHERE (f.op = 'REMOVE' OR (f.op = 'PUT' AND b.fresh = 0)) AND f.row_type IS NOT NULL AND f.row_id IS NOT NULL`,
      );
    }
    await this.dropRemoved(conn);
    await conn.execute(`DELETE FROM temp.ferry_batch`);
    return result;
  }

  /** Entries whose last op was a REMOVE: their checksum moves to add_checksum and they go. */
  private async dropRemoved(conn: SqliteConnection): Promise<void> {
    const removed = await conn.execute(
      `SELECT bucket, sum(checksum) AS total FROM ferry_oplog WHERE data IS NULL GROUP BY bucket`,
    );
    if (removed.rows.length === 0) return;
    await conn.executeBatch(
      `UPDATE ferry_buckets SET add_checksum = (add_checksum + ?2) & ${U32} WHERE id = ?1`,
      removed.rows.map((r) => [r['bucket'] as number, r['total'] as number]),
    );
    await conn.execute(`DELETE FROM ferry_oplog WHERE data IS NULL`);
  }

  /**
   * Called when a checkpoint starts downloading. With nothing stored (a
   * first sync, or after every bucket went), drops the row index: staging a
   * large checkpoint is much cheaper without it, and {@link ensureRowIndex}
   * builds it again in one sorted pass once the checkpoint is applied.
   */
  async beginCheckpoint(conn: SqliteConnection): Promise<void> {
    const stored = await conn.execute(`SELECT 1 AS x FROM ferry_oplog LIMIT 1`);
    if (stored.rows.length === 0) {
      await conn.execute(`DROP INDEX IF EXISTS ferry_oplog_row`);
      this.rowIndexDropped = true;
    }
  }

  /**
   * Builds the row index if {@link beginCheckpoint} dropped it, in the
   * caller's transaction, which must be its own: the flag is only cleared
   * after it committed.
   */
  async buildRowIndex(commit: (fn: (conn: SqliteConnection) => Promise<void>) => Promise<void>): Promise<void> {
    if (!this.rowIndexDropped) return;
    await commit((conn) => this.ensureRowIndex(conn));
    this.rowIndexDropped = false;
  }

  /** Makes sure the named buckets exist locally (new buckets start at after "0"). */
  async ensureBuckets(conn: SqliteConnection, names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    await conn.executeBatch(
      `INSERT OR IGNORE INTO ferry_buckets (name) VALUES (?)`,
      names.map((n) => [n]),
    );
  }

  /**
   * Deletes buckets locally: their ops go, their rows are marked dirty (they
   * disappear at the next applied checkpoint unless another bucket holds them).
   * With `keep`, deletes every bucket NOT in it; with `remove`, those named.
   */
  async deleteBuckets(
    conn: SqliteConnection,
    which: { keep: readonly string[] } | { remove: readonly string[] },
  ): Promise<string[]> {
    const { rows } = await conn.execute(`SELECT id, name FROM ferry_buckets`);
    const doomed =
      'keep' in which
        ? rows.filter((r) => !new Set(which.keep).has(String(r['name'])))
        : rows.filter((r) => new Set(which.remove).has(String(r['name'])));
    for (const row of doomed) {
      await conn.execute(
        `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id) SELECT row_type, row_id FROM ferry_oplog WHERE bucket = ?`,
        [row['id'] as number],
      );
      await conn.execute(`DELETE FROM ferry_oplog WHERE bucket = ?`, [row['id'] as number]);
      await conn.execute(`DELETE FROM ferry_buckets WHERE id = ?`, [row['id'] as number]);
    }
    return doomed.map((r) => String(r['name']));
  }

  /**
   * Compares each bucket's local checksum (add_checksum + the sum of its
   * stored ops) with the checkpoint's. A bucket of the checkpoint that the
   * client does not hold counts as checksum 0.
   */
  async validate(conn: SqliteConnection, buckets: readonly BucketChecksum[]): Promise<ChecksumMismatch[]> {
    const { rows } = await conn.execute(
      `SELECT b.name AS name, (b.add_checksum + coalesce(s.total, 0)) & ${U32} AS checksum
       FROM ferry_buckets b LEFT JOIN (SELECT bucket, sum(checksum) AS total FROM ferry_oplog GROUP BY bucket) s ON s.bucket = b.id`,
    );
    const local = new Map(rows.map((r) => [String(r['name']), Number(r['checksum'])]));
    const mismatches: ChecksumMismatch[] = [];
    for (const bucket of buckets) {
      const expected = normalizeChecksum(bucket.checksum);
      const actual = local.get(bucket.bucket) ?? 0;
      if (expected !== actual) mismatches.push({ bucket: bucket.bucket, expected, actual });
    }
    return mismatches;
  }

  /**
   * Forgets everything about the named buckets (ops, position, checksum) so
   * they are downloaded again from the start; their rows are marked dirty
   * and stay visible until a later checkpoint is applied.
   */
  async resetBuckets(conn: SqliteConnection, names: readonly string[]): Promise<void> {
    for (const name of names) {
      await conn.execute(
        `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id)
         SELECT row_type, row_id FROM ferry_oplog WHERE bucket = (SELECT id FROM ferry_buckets WHERE name = ?1)`,
        [name],
      );
      await conn.execute(`DELETE FROM ferry_oplog WHERE bucket = (SELECT id FROM ferry_buckets WHERE name = ?1)`, [
        name,
      ]);
      await conn.execute(
        `UPDATE ferry_buckets SET last_op = 0, add_checksum = 0, count_at_last = 0, count_since_last = 0, fresh = 1
         WHERE name = ?`,
        [name],
      );
    }
  }

  /**
   * Applies every pending row to the typed tables: a row's data is that of
   * the latest op (highest op id) of any bucket holding it; a row no bucket
   * holds is deleted. Pending rows are those in `ferry_dirty` and every row
   * of a fresh bucket. Rows of types the schema does not declare stay in the
   * oplog (materialized if a later schema adds the table). Returns the
   * tables that changed.
   *
   * When every stored op is pending (a first sync, or after every applied
   * bucket went), the whole oplog is applied in one pass over it instead of
   * row by row through `ferry_dirty`. That pass needs the row index only
   * when some row was written twice (held by several buckets, or already
   * present); otherwise the index may still be missing afterwards (see
   * {@link beginCheckpoint}) and {@link ensureRowIndex} builds it.
   *
   * Local writes (guarantee 2): overlay ops acknowledged by the
   * checkpoint's `writeCheckpoint` leave the overlay first and their rows
   * are rebuilt from server state; every pending row the apply writes gets
   * its overlay and queued ops re-applied on top, in this transaction, so
   * no reader ever sees a local write revert. With no local op at all
   * (checked once) none of this costs anything.
   */
  async applyDirty(
    conn: SqliteConnection,
    tables: readonly ResolvedTable[],
    counts: ReadonlyMap<string, number>,
    options: { writeCheckpoint?: string | null } = {},
  ): Promise<Set<string>> {
    let local = await hasLocalOps(conn);
    if (options.writeCheckpoint != null) await recordAckedWriteCheckpoint(conn, options.writeCheckpoint);
    if (local && options.writeCheckpoint != null) {
      if ((await acknowledgeOverlay(conn, options.writeCheckpoint)) > 0) local = await hasLocalOps(conn);
    }
    const fresh = (await conn.execute(`SELECT 1 AS x FROM ferry_buckets WHERE fresh = 1 LIMIT 1`)).rows.length > 0;
    let whole = false;
    if (fresh) {
      const applied = await conn.execute(
        `SELECT 1 AS x FROM ferry_buckets b WHERE b.fresh = 0 AND EXISTS (SELECT 1 FROM ferry_oplog o WHERE o.bucket = b.id) LIMIT 1`,
      );
      whole = applied.rows.length === 0;
      // The one-pass apply writes every row of the oplog: rows with local ops become dirty, to be rebuilt.
      if (whole && local) await markLocalRowsDirty(conn);
      if (!whole) {
        await conn.execute(
          `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id)
           SELECT o.row_type, o.row_id FROM ferry_buckets b JOIN ferry_oplog o ON o.bucket = b.id WHERE b.fresh = 1`,
        );
      }
    }
    // Row-by-row work (dirty rows, rows written twice) goes through the row index.
    const dirty = (await conn.execute(`SELECT 1 AS x FROM ferry_dirty LIMIT 1`)).rows.length > 0;
    if (!whole || dirty) await this.ensureRowIndex(conn);
    const changed = new Set<string>();
    for (const table of tables) {
      if (table.localOnly) continue;
      let upserted = 0;
      if (whole) {
        const name = quoteIdentifier(table.name);
        const before = await conn.execute(`SELECT count(*) AS n FROM ${name}`);
        upserted = (await conn.execute(upsertAllSql(table), [table.name])).rowsAffected;
        const after = await conn.execute(`SELECT count(*) AS n FROM ${name}`);
        // Every op inserted a new row unless some row was written twice: then its latest op must win.
        if (Number(after.rows[0]!['n']) - Number(before.rows[0]!['n']) !== upserted) {
          await this.ensureRowIndex(conn);
          await conn.execute(upsertSharedSql(table), [table.name]);
        }
      } else {
        upserted = (await conn.execute(upsertDirtySql(table), [table.name])).rowsAffected;
      }
      if (dirty) {
        const deleted = await conn.execute(
          `DELETE FROM ${quoteIdentifier(table.name)} WHERE id IN (
             SELECT d.row_id FROM ferry_dirty d WHERE d.row_type = ?1
             AND NOT EXISTS (SELECT 1 FROM ferry_oplog x WHERE x.row_type = d.row_type AND x.row_id = d.row_id))`,
          [table.name],
        );
        upserted += deleted.rowsAffected;
      }
      if (upserted > 0) changed.add(table.name);
    }
    if (dirty && local) for (const table of await replayLocalOps(conn, tables)) changed.add(table);
    if (dirty) await conn.execute(`DELETE FROM ferry_dirty`);
    if (fresh) await conn.execute(`UPDATE ferry_buckets SET fresh = 0 WHERE fresh = 1`);
    if (counts.size > 0) {
      await conn.executeBatch(
        `UPDATE ferry_buckets SET count_at_last = ?2, count_since_last = 0 WHERE name = ?1`,
        [...counts].map(([name, count]) => [name, count]),
      );
    }
    return changed;
  }

  /** Creates the row index if it is missing (one sorted pass; a no-op otherwise). */
  async ensureRowIndex(conn: SqliteConnection): Promise<void> {
    await conn.execute(OPLOG_ROW_INDEX_DDL);
  }

  /**
   * Materializes every applied row of `table` from the kept row data (used
   * when a table or column is added to the schema). Rows with staged,
   * unapplied ops (dirty, or held by a fresh bucket) are left for the next
   * applied checkpoint.
   */
  async materializeTable(conn: SqliteConnection, table: ResolvedTable): Promise<void> {
    await this.ensureRowIndex(conn);
    await conn.execute(
      `INSERT INTO ${quoteIdentifier(table.name)} (${columnList(table)})
       SELECT o.row_id${extractList(table, 'o')} FROM ferry_oplog o
       WHERE o.row_type = ?1
         AND NOT EXISTS (SELECT 1 FROM ferry_oplog x WHERE x.row_type = o.row_type AND x.row_id = o.row_id AND x.op_id > o.op_id)
         AND NOT EXISTS (SELECT 1 FROM ferry_dirty d WHERE d.row_type = o.row_type AND d.row_id = o.row_id)
         AND NOT EXISTS (SELECT 1 FROM ferry_oplog y JOIN ferry_buckets b ON b.id = y.bucket
                         WHERE y.row_type = o.row_type AND y.row_id = o.row_id AND b.fresh = 1)
       ${onConflict(table)}`,
      [table.name],
    );
  }

  /** Progress towards a checkpoint: ops received since the last applied one, and ops expected. */
  async progress(
    conn: SqliteConnection,
    buckets: readonly BucketChecksum[],
  ): Promise<{ downloadedOps: number; totalOps: number }> {
    const { rows } = await conn.execute(`SELECT name, count_at_last, count_since_last FROM ferry_buckets`);
    const local = new Map(rows.map((r) => [String(r['name']), r]));
    let downloadedOps = 0;
    let totalOps = 0;
    for (const bucket of buckets) {
      const row = local.get(bucket.bucket);
      const atLast = row === undefined ? 0 : Number(row['count_at_last']);
      const since = row === undefined ? 0 : Number(row['count_since_last']);
      const needed = Math.max(0, bucket.count - atLast);
      totalOps += needed;
      downloadedOps += Math.min(since, needed);
    }
    return { downloadedOps, totalOps };
  }

  /** Deletes all sync state (oplog, buckets, dirty marks). The overlay and rejections are the caller's. */
  async clear(conn: SqliteConnection): Promise<void> {
    await conn.execute(`DELETE FROM ferry_oplog`);
    await conn.execute(`DELETE FROM ferry_buckets`);
    await conn.execute(`DELETE FROM ferry_dirty`);
  }
}

const BUCKET_PREFIX = /^\{"data":\{"bucket":("(?:[^"\\]|\\.)*")/;

/**
 * The bucket of a `data` line. Services write `{"data":{"bucket":…` first,
 * so a prefix match avoids parsing the whole (large) line; anything else is
 * parsed in full.
 */
export function dataLineBucket(line: string): string {
  const match = BUCKET_PREFIX.exec(line);
  const bucket: unknown =
    match === null ? (JSON.parse(line) as { data?: { bucket?: unknown } }).data?.bucket : JSON.parse(match[1]!);
  if (typeof bucket !== 'string') throw new FerryError('FERRY_C1003', 'a data line has no bucket name');
  return bucket;
}

function uniqueBuckets(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function columnList(table: ResolvedTable): string {
  return ['id', ...table.columns.map((c) => c.name)].map(quoteIdentifier).join(', ');
}

function extractList(table: ResolvedTable, alias: string): string {
  // Names are validated identifiers, so they are safe inside the JSON path.
  return table.columns.map((c) => `, json_extract(${alias}.data, '$.${c.name}')`).join('');
}

function onConflict(table: ResolvedTable): string {
  if (table.columns.length === 0) return 'ON CONFLICT (id) DO NOTHING';
  const sets = table.columns.map((c) => `${quoteIdentifier(c.name)} = excluded.${quoteIdentifier(c.name)}`).join(', ');
  return `ON CONFLICT (id) DO UPDATE SET ${sets}`;
}

/** Upserts the latest op of every dirty row of the table. */
function upsertDirtySql(table: ResolvedTable): string {
  return `INSERT INTO ${quoteIdentifier(table.name)} (${columnList(table)})
SELECT d.row_id${extractList(table, 'o')}
FROM ferry_dirty d
CROSS JOIN ferry_oplog o ON o.row_type = d.row_type AND o.row_id = d.row_id
  AND o.op_id = (SELECT max(x.op_id) FROM ferry_oplog x WHERE x.row_type = d.row_type AND x.row_id = d.row_id)
WHERE d.row_type = ?1
${onConflict(table)}`;
}

/**
 * Upserts every stored op of the table in one pass over the oplog in
 * storage order (a row held by several buckets is written more than once:
 * {@link upsertSharedSql} then writes its latest op).
 */
function upsertAllSql(table: ResolvedTable): string {
  // `+o.row_type`: a plain scan; the row index would add a random lookup per op.
  return `INSERT INTO ${quoteIdentifier(table.name)} (${columnList(table)})
SELECT o.row_id${extractList(table, 'o')}
FROM ferry_oplog o
WHERE +o.row_type = ?1
${onConflict(table)}`;
}

/** Upserts the latest op of every row of the table that has more than one stored op. */
function upsertSharedSql(table: ResolvedTable): string {
  return `INSERT INTO ${quoteIdentifier(table.name)} (${columnList(table)})
SELECT o.row_id${extractList(table, 'o')}
FROM (SELECT row_type, row_id FROM ferry_oplog WHERE row_type = ?1 GROUP BY row_type, row_id HAVING count(*) > 1) d
CROSS JOIN ferry_oplog o ON o.row_type = d.row_type AND o.row_id = d.row_id
  AND o.op_id = (SELECT max(x.op_id) FROM ferry_oplog x WHERE x.row_type = d.row_type AND x.row_id = d.row_id)
WHERE true
${onConflict(table)}`;
}
