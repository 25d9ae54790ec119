/**
 * Compaction of bucket op logs.
 *
 * Invariant kept: for every checkpoint C >= the compacted range, each bucket's
 * checksum (sum of its op checksums <= C) and the rows a client ends with are
 * unchanged, whatever position it resumes from.
 *
 * 1. MOVE: a PUT or REMOVE of (object_type, object_id, subkey) followed by a
 *    later PUT/REMOVE of the same object (<= the latest checkpoint) is
 *    superseded: it becomes a MOVE with the same op id and checksum and no
 *    data. Clients treat MOVE as a no-op that only counts for the checksum.
 * 2. CLEAR: the prefix of the log before the first remaining PUT holds no
 *    live row (only MOVE, REMOVE, CLEAR). If it has at least two ops, it is
 *    replaced by one CLEAR at the prefix's last op id, with the sum of their
 *    checksums. A client positioned inside the prefix receives the CLEAR,
 *    empties the bucket (it had no live row there to keep) and continues.
 *    A client positioned at a checkpoint older than the CLEAR's op id that is
 *    still reading an old checkpoint may see a checksum mismatch and simply
 *    re-downloads the bucket, which the protocol allows.
 *
 * Each bucket is compacted in its own short transaction, all in SQL (the
 * window function sorts server-side), so memory stays bounded.
 */
import type pg from 'pg';
import { CHECKSUM_MODULUS, OP_CODE, quoteIdent } from './sql.js';

export interface CompactOptions {
  /** Only these buckets (default: all). */
  buckets?: readonly string[];
  /** Collapse fully superseded prefixes into a CLEAR (default true). */
  clear?: boolean;
  /** Buckets per page when scanning all buckets (default 200). */
  pageSize?: number;
}

export interface CompactResult {
  /** The checkpoint compaction was bounded by (null: nothing published yet). */
  checkpoint: bigint | null;
  buckets: number;
  /** Ops turned into MOVE. */
  moved: number;
  /** Ops removed by CLEARs (each CLEAR replaces at least two). */
  cleared: number;
}

export async function compactBuckets(
  client: pg.PoolClient,
  schema: string,
  options: CompactOptions = {},
): Promise<CompactResult> {
  const s = quoteIdent(schema);
  const { rows: stateRows } = await client.query<{ checkpoint: string | null }>(
    `SELECT checkpoint FROM ${s}.state WHERE id = 1`,
  );
  const cp = stateRows[0]?.checkpoint;
  const result: CompactResult = { checkpoint: cp == null ? null : BigInt(cp), buckets: 0, moved: 0, cleared: 0 };
  if (cp == null) return result;

  const compactOne = async (bucket: string) => {
    await client.query('BEGIN');
    try {
      const moved = await client.query(
        `UPDATE ${s}.ops o SET op = ${OP_CODE.MOVE}, data = NULL
           FROM (SELECT op_id FROM (
                   SELECT op_id, row_number() OVER (PARTITION BY object_type, object_id, subkey ORDER BY op_id DESC) AS rn
                     FROM ${s}.ops WHERE bucket = $1 AND op_id <= $2::int8 AND op IN (${OP_CODE.PUT}, ${OP_CODE.REMOVE})) x
                 WHERE rn > 1) superseded
          WHERE o.bucket = $1 AND o.op_id = superseded.op_id`,
        [bucket, cp],
      );
      result.moved += moved.rowCount ?? 0;
      if (options.clear !== false) {
        const { rows } = await client.query<{ n: string; last: string | null; sum: string | null }>(
          `SELECT count(*) AS n, max(op_id) AS last, sum(checksum) % ${CHECKSUM_MODULUS} AS sum FROM ${s}.ops
            WHERE bucket = $1 AND op_id <= $2::int8
              AND op_id < coalesce((SELECT min(op_id) FROM ${s}.ops WHERE bucket = $1 AND op = ${OP_CODE.PUT}), 9223372036854775807)`,
          [bucket, cp],
        );
        const n = Number(rows[0]?.n ?? 0);
        if (n >= 2) {
          const last = rows[0]!.last!;
          await client.query(`DELETE FROM ${s}.ops WHERE bucket = $1 AND op_id <= $2::int8`, [bucket, last]);
          await client.query(
            `INSERT INTO ${s}.ops (bucket, op_id, op, checksum) VALUES ($1, $2::int8, ${OP_CODE.CLEAR}, $3::int8)`,
            [bucket, last, rows[0]!.sum],
          );
          await client.query(`UPDATE ${s}.bucket_state SET count = count - $2 WHERE bucket = $1`, [bucket, n - 1]);
          result.cleared += n;
        }
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
    result.buckets++;
  };

  if (options.buckets) {
    for (const bucket of options.buckets) await compactOne(bucket);
    return result;
  }
  let after = '';
  const pageSize = options.pageSize ?? 200;
  for (;;) {
    const { rows } = await client.query<{ bucket: string }>(
      `SELECT bucket FROM ${s}.bucket_state WHERE bucket > $1 ORDER BY bucket LIMIT $2`,
      [after, pageSize],
    );
    if (rows.length === 0) break;
    for (const { bucket } of rows) await compactOne(bucket);
    after = rows[rows.length - 1]!.bucket;
  }
  return result;
}
