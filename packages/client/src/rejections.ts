import type { SqliteValue } from '@ferry/protocol';
import type { SqliteConnection } from './driver.js';
import { parseRowData, type CrudEntry, type CrudOp } from './upload-queue.js';

/**
 * Local writes the server rejected (guarantee 3: nothing is silently lost).
 * A rejected op leaves the queue into this table, in the transaction that
 * also reverts its row to server state. Apps read and `watch` it with plain
 * SQL (`SELECT * FROM ferry_rejections`), or through
 * `FerryDatabase.getRejections()`; rows stay until the app clears them.
 *
 * Columns: `id` (the op's queue id), `tx_id` (its local transaction), `op`
 * (PUT / PATCH / DELETE), `row_type` (table), `row_id`, `data` (the op's
 * column values as JSON text, int8 exact), `hlc`, `code` (the server's
 * `FERRY_S…` code), `message`, `rejected_at` (ms since the epoch).
 */
export const REJECTIONS_TABLE = 'ferry_rejections';

export const REJECTIONS_TABLE_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ferry_rejections (
    id INTEGER PRIMARY KEY,
    tx_id INTEGER,
    op TEXT NOT NULL,
    row_type TEXT NOT NULL,
    row_id TEXT NOT NULL,
    data TEXT,
    hlc TEXT,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    rejected_at INTEGER NOT NULL
  )`,
];

/** An op the uploader reports as rejected by the server. */
export interface RejectedOp {
  /** The queued op (an entry of the batch being completed). */
  readonly op: CrudEntry;
  /** Why, as the server said: a `FERRY_S6xxx` code (or another code the backend uses). */
  readonly code: string;
  readonly message: string;
}

/** A local write the server rejected, as kept in `ferry_rejections`. */
export interface RejectedWrite {
  /** The op's queue id (`CrudEntry.clientId`). */
  readonly id: number;
  readonly transactionId: number;
  readonly op: CrudOp;
  readonly table: string;
  /** The row's `id`. */
  readonly rowId: string;
  /** The column values the op carried (PUT, PATCH). */
  readonly opData?: Record<string, SqliteValue>;
  readonly hlc: string;
  readonly code: string;
  readonly message: string;
  readonly rejectedAt: Date;
}

/**
 * Moves rejected ops (still queued) from `ferry_crud` to `ferry_rejections`
 * with their reasons. Returns the rows they wrote, for rebuilding.
 */
export async function recordRejections(
  conn: SqliteConnection,
  rejected: readonly RejectedOp[],
  nowMs: number,
): Promise<{ type: string; id: string }[]> {
  if (rejected.length === 0) return [];
  await conn.executeBatch(
    `INSERT OR REPLACE INTO ferry_rejections (id, tx_id, op, row_type, row_id, data, hlc, code, message, rejected_at)
     SELECT id, tx_id, op, row_type, row_id, data, hlc, ?2, ?3, ?4 FROM ferry_crud WHERE id = ?1`,
    rejected.map((r) => [r.op.clientId, r.code, r.message, Math.floor(nowMs)]),
  );
  await conn.executeBatch(
    `DELETE FROM ferry_crud WHERE id = ?`,
    rejected.map((r) => [r.op.clientId]),
  );
  return rejected.map((r) => ({ type: r.op.table, id: r.op.id }));
}

/** Every kept rejection, oldest op first. */
export async function readRejections(conn: SqliteConnection): Promise<RejectedWrite[]> {
  const { rows } = await conn.execute(
    `SELECT id, tx_id, op, row_type, row_id, data, hlc, code, message, rejected_at FROM ferry_rejections ORDER BY id`,
  );
  return rows.map((row): RejectedWrite => {
    const base = {
      id: Number(row['id']),
      transactionId: Number(row['tx_id'] ?? row['id']),
      op: String(row['op']) as CrudOp,
      table: String(row['row_type']),
      rowId: String(row['row_id']),
      hlc: String(row['hlc'] ?? ''),
      code: String(row['code']),
      message: String(row['message']),
      rejectedAt: new Date(Number(row['rejected_at'])),
    };
    const data = row['data'];
    return typeof data === 'string' ? { ...base, opData: parseRowData(data) } : base;
  });
}

/** Deletes the named rejections (all when `ids` is undefined). Returns how many went. */
export async function clearRejections(conn: SqliteConnection, ids?: readonly number[]): Promise<number> {
  if (ids === undefined) return (await conn.execute(`DELETE FROM ferry_rejections`)).rowsAffected;
  if (ids.length === 0) return 0;
  return (
    await conn.execute(`DELETE FROM ferry_rejections WHERE id IN (SELECT value FROM json_each(?))`, [
      JSON.stringify(ids),
    ])
  ).rowsAffected;
}
