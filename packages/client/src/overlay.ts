import type { SqliteConnection } from './driver.js';
import { OPLOG_ROW_INDEX_DDL } from './internal-tables.js';
import { quoteIdentifier, type ResolvedTable } from './schema.js';

/**
 * The overlay: local writes that were uploaded (`complete()`d) but whose
 * effect on the server has not come back through a checkpoint yet. Same
 * columns as `ferry_crud` (ids kept, so `ferry_overlay ∪ ferry_crud` in id
 * order is every local write not yet reflected in downloaded data) plus the
 * write checkpoint that covers the op, once the sync loop obtained one.
 *
 * Invariant (guarantee 2): every row of a synced table equals its server
 * state as of the last applied checkpoint (the latest op in `ferry_oplog`,
 * or absent) with its overlay and queued ops re-applied on top in id order.
 * Applying a checkpoint and rejecting an op both restore it through
 * {@link rebuildRows} / {@link replayLocalOps}; an op leaves the overlay
 * only in the transaction that applies a checkpoint at or past its write
 * checkpoint (see {@link acknowledgeOverlay}).
 */
export const OVERLAY_TABLE_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ferry_overlay (
    id INTEGER PRIMARY KEY,
    tx_id INTEGER,
    op TEXT NOT NULL,
    row_type TEXT NOT NULL,
    row_id TEXT NOT NULL,
    data TEXT,
    client_id TEXT,
    hlc TEXT,
    created_at INTEGER,
    write_checkpoint TEXT
  )`,
];

/** A row by table name and id. */
export interface RowRef {
  readonly type: string;
  readonly id: string;
}

const CRUD_COLUMNS = 'id, tx_id, op, row_type, row_id, data, client_id, hlc, created_at';

/**
 * Moves queued ops (by `ferry_crud.id`) to the overlay, keeping ids and
 * order; ops no longer queued are ignored. `writeCheckpoint`, when the
 * uploader already knows one covering these ops, is recorded with them.
 */
export async function moveToOverlay(
  conn: SqliteConnection,
  ids: readonly number[],
  writeCheckpoint: string | null = null,
): Promise<void> {
  if (ids.length === 0) return;
  const list = JSON.stringify(ids);
  await conn.execute(
    `INSERT OR REPLACE INTO ferry_overlay (${CRUD_COLUMNS}, write_checkpoint)
     SELECT ${CRUD_COLUMNS}, ?2 FROM ferry_crud WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id`,
    [list, writeCheckpoint],
  );
  await conn.execute(`DELETE FROM ferry_crud WHERE id IN (SELECT value FROM json_each(?1))`, [list]);
}

/** True when `ferry_overlay` or `ferry_crud` holds any op. */
export async function hasLocalOps(conn: SqliteConnection): Promise<boolean> {
  const { rows } = await conn.execute(
    `SELECT EXISTS (SELECT 1 FROM ferry_crud) OR EXISTS (SELECT 1 FROM ferry_overlay) AS x`,
  );
  return rows[0]?.['x'] === 1;
}

/** The highest overlay op id still waiting for a write checkpoint, or null when none waits. */
export async function overlayAwaitingCheckpoint(conn: SqliteConnection): Promise<number | null> {
  const { rows } = await conn.execute(`SELECT max(id) AS id FROM ferry_overlay WHERE write_checkpoint IS NULL`);
  const id = rows[0]?.['id'];
  return typeof id === 'number' ? id : null;
}

/**
 * Records `writeCheckpoint` on every overlay op up to `throughId` that has
 * none yet. Ops moved to the overlay after the checkpoint was requested
 * (higher ids) keep waiting for a later one: it might not cover them.
 */
export async function setOverlayCheckpoint(
  conn: SqliteConnection,
  throughId: number,
  writeCheckpoint: string,
): Promise<number> {
  const result = await conn.execute(
    `UPDATE ferry_overlay SET write_checkpoint = ?2 WHERE write_checkpoint IS NULL AND id <= ?1`,
    [throughId, writeCheckpoint],
  );
  return result.rowsAffected;
}

/** `ferry_kv` key of the highest write checkpoint a checkpoint applied so far has carried. */
export const KV_ACKED_WRITE_CHECKPOINT = 'acked_write_checkpoint';

/**
 * Remembers that an applied checkpoint carried `writeCheckpoint` (keeping
 * the highest). An upload's write checkpoint can be covered, and echoed by
 * the stream, before the client has recorded it on its overlay ops; this is
 * how {@link takeAcknowledgedOverlay} still lets those ops go.
 */
export async function recordAckedWriteCheckpoint(conn: SqliteConnection, writeCheckpoint: string): Promise<void> {
  if (!/^\d{1,19}$/.test(writeCheckpoint)) return;
  await conn.execute(
    `INSERT INTO ferry_kv (key, value) VALUES (?1, ?2)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value
     WHERE CAST(excluded.value AS INTEGER) > CAST(ferry_kv.value AS INTEGER)`,
    [KV_ACKED_WRITE_CHECKPOINT, writeCheckpoint],
  );
}

/**
 * Removes the overlay ops whose write checkpoint an already applied
 * checkpoint covered (see {@link recordAckedWriteCheckpoint}) and returns
 * their rows, which the caller rebuilds from server state.
 */
export async function takeAcknowledgedOverlay(conn: SqliteConnection): Promise<RowRef[]> {
  const acked = `write_checkpoint IS NOT NULL AND CAST(write_checkpoint AS INTEGER) <=
    (SELECT CAST(value AS INTEGER) FROM ferry_kv WHERE key = '${KV_ACKED_WRITE_CHECKPOINT}')`;
  const { rows } = await conn.execute(`SELECT DISTINCT row_type, row_id FROM ferry_overlay WHERE ${acked}`);
  if (rows.length === 0) return [];
  await conn.execute(`DELETE FROM ferry_overlay WHERE ${acked}`);
  return rows.map((row) => ({ type: String(row['row_type']), id: String(row['row_id']) }));
}

/**
 * Ops acknowledged by a checkpoint carrying `writeCheckpoint` (their write
 * checkpoint is at or below it, compared as integers) leave the overlay;
 * their rows are marked dirty so the apply rebuilds them from server state.
 * Runs inside the transaction that applies the checkpoint.
 */
export async function acknowledgeOverlay(conn: SqliteConnection, writeCheckpoint: string): Promise<number> {
  if (!/^\d{1,19}$/.test(writeCheckpoint)) return 0;
  const acked = `write_checkpoint IS NOT NULL AND CAST(write_checkpoint AS INTEGER) <= CAST(?1 AS INTEGER)`;
  await conn.execute(
    `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id) SELECT row_type, row_id FROM ferry_overlay WHERE ${acked}`,
    [writeCheckpoint],
  );
  return (await conn.execute(`DELETE FROM ferry_overlay WHERE ${acked}`, [writeCheckpoint])).rowsAffected;
}

/** Marks every row with a local op (overlay or queue) dirty. */
export async function markLocalRowsDirty(conn: SqliteConnection): Promise<void> {
  await conn.execute(
    `INSERT OR IGNORE INTO ferry_dirty (row_type, row_id)
     SELECT row_type, row_id FROM ferry_overlay UNION ALL SELECT row_type, row_id FROM ferry_crud`,
  );
}

interface LocalOp {
  op: string;
  rowType: string;
  rowId: string;
  data: string | null;
}

/**
 * Re-applies, in id order, the overlay and queued ops of every row in
 * `ferry_dirty` (the caller has just written those rows' server state).
 * Returns the tables written.
 */
export async function replayLocalOps(conn: SqliteConnection, tables: readonly ResolvedTable[]): Promise<Set<string>> {
  const { rows } = await conn.execute(
    `SELECT u.op, u.row_type, u.row_id, u.data FROM (
       SELECT id, op, row_type, row_id, data FROM ferry_overlay
       UNION ALL SELECT id, op, row_type, row_id, data FROM ferry_crud
     ) u
     WHERE EXISTS (SELECT 1 FROM ferry_dirty d WHERE d.row_type = u.row_type AND d.row_id = u.row_id)
     ORDER BY u.id`,
  );
  return applyLocalOps(conn, tables, rows.map(toLocalOp));
}

/**
 * Rebuilds rows: each becomes its server state (the latest op in
 * `ferry_oplog`, or absent when no bucket holds it), then its overlay and
 * queued ops are re-applied on top in id order. Rows whose downloaded data
 * is not applied yet (dirty, or held by a fresh bucket) are left alone: the
 * checkpoint that applies that data rebuilds them, and showing staged data
 * early would expose part of a checkpoint (guarantee 1). Must run with the
 * queue triggers off. Returns the tables written.
 */
export async function rebuildRows(
  conn: SqliteConnection,
  tables: readonly ResolvedTable[],
  rows: readonly RowRef[],
): Promise<Set<string>> {
  const byName = syncedTables(tables);
  const seen = new Set<string>();
  const rebuilt: [string, string][] = [];
  const changed = new Set<string>();
  if (rows.length > 0) await conn.execute(OPLOG_ROW_INDEX_DDL);
  for (const row of rows) {
    const table = byName.get(row.type);
    const key = JSON.stringify([row.type, row.id]);
    if (table === undefined || seen.has(key)) continue;
    seen.add(key);
    const state = await conn.execute(
      `SELECT EXISTS (SELECT 1 FROM ferry_dirty WHERE row_type = ?1 AND row_id = ?2)
         OR EXISTS (SELECT 1 FROM ferry_oplog o JOIN ferry_buckets b ON b.id = o.bucket
                    WHERE o.row_type = ?1 AND o.row_id = ?2 AND b.fresh = 1) AS pending,
         EXISTS (SELECT 1 FROM ferry_oplog WHERE row_type = ?1 AND row_id = ?2) AS held`,
      [row.type, row.id],
    );
    if (state.rows[0]?.['pending'] === 1) continue;
    if (state.rows[0]?.['held'] === 1) await conn.execute(serverStateSql(table), [row.type, row.id]);
    else await conn.execute(`DELETE FROM ${quoteIdentifier(table.name)} WHERE id = ?`, [row.id]);
    changed.add(table.name);
    rebuilt.push([row.type, row.id]);
  }
  if (rebuilt.length === 0) return changed;
  const { rows: ops } = await conn.execute(
    `SELECT u.op, u.row_type, u.row_id, u.data FROM (
       SELECT id, op, row_type, row_id, data FROM ferry_overlay
       UNION ALL SELECT id, op, row_type, row_id, data FROM ferry_crud
     ) u
     WHERE (u.row_type, u.row_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))
     ORDER BY u.id`,
    [JSON.stringify(rebuilt)],
  );
  for (const table of await applyLocalOps(conn, tables, ops.map(toLocalOp))) changed.add(table);
  return changed;
}

/** Every row with a local op (overlay or queue) in one of `tables`. */
export async function rowsWithLocalOps(conn: SqliteConnection, tables: readonly string[]): Promise<RowRef[]> {
  if (tables.length === 0) return [];
  const { rows } = await conn.execute(
    `SELECT DISTINCT row_type, row_id FROM (
       SELECT row_type, row_id FROM ferry_overlay UNION ALL SELECT row_type, row_id FROM ferry_crud
     ) WHERE row_type IN (SELECT value FROM json_each(?1))`,
    [JSON.stringify(tables)],
  );
  return rows.map((r) => ({ type: String(r['row_type']), id: String(r['row_id']) }));
}

function toLocalOp(row: Record<string, unknown>): LocalOp {
  const data = row['data'];
  return {
    op: String(row['op']),
    rowType: String(row['row_type']),
    rowId: String(row['row_id']),
    data: typeof data === 'string' ? data : null,
  };
}

function syncedTables(tables: readonly ResolvedTable[]): Map<string, ResolvedTable> {
  return new Map(tables.filter((t) => !t.localOnly).map((t) => [t.name, t]));
}

/**
 * Applies local ops to the typed tables, as the service applies them:
 * PUT upserts the columns it carries (a column added to the schema after
 * the write keeps its value), PATCH sets the columns it carries on an
 * existing row, DELETE deletes. Values come from the op's JSON text through
 * `json_extract`, so int8 values stay exact.
 */
async function applyLocalOps(
  conn: SqliteConnection,
  tables: readonly ResolvedTable[],
  ops: readonly LocalOp[],
): Promise<Set<string>> {
  const changed = new Set<string>();
  if (ops.length === 0) return changed;
  const byName = syncedTables(tables);
  for (const op of ops) {
    const table = byName.get(op.rowType);
    if (table === undefined) continue;
    const data = op.data ?? '{}';
    let sql: string;
    if (op.op === 'PUT') sql = putSql(table);
    else if (op.op === 'PATCH') sql = patchSql(table);
    else if (op.op === 'DELETE') sql = `DELETE FROM ${quoteIdentifier(table.name)} WHERE id = ?1`;
    else continue;
    const result = await conn.execute(sql, op.op === 'DELETE' ? [op.rowId] : [op.rowId, data]);
    if (result.rowsAffected > 0) changed.add(table.name);
  }
  return changed;
}

/** `json_extract(?2, '$.col')`; names are validated identifiers, safe inside the path. */
function extract(column: string): string {
  return `json_extract(?2, '$.${column}')`;
}

/** The column's value from the op when the op carries it, else `current`. */
function givenOr(column: string, current: string): string {
  return `CASE WHEN json_type(?2, '$.${column}') IS NULL THEN ${current} ELSE ${extract(column)} END`;
}

function putSql(table: ResolvedTable): string {
  const name = quoteIdentifier(table.name);
  const columns = table.columns.map((c) => quoteIdentifier(c.name));
  if (columns.length === 0) return `INSERT INTO ${name} (id) VALUES (?1) ON CONFLICT (id) DO NOTHING`;
  const values = table.columns.map((c) => extract(c.name));
  const sets = table.columns.map((c) => `${quoteIdentifier(c.name)} = ${givenOr(c.name, quoteIdentifier(c.name))}`);
  return `INSERT INTO ${name} (id, ${columns.join(', ')}) VALUES (?1, ${values.join(', ')})
ON CONFLICT (id) DO UPDATE SET ${sets.join(', ')}`;
}

function patchSql(table: ResolvedTable): string {
  if (table.columns.length === 0) return `SELECT ?1, ?2 WHERE false`;
  const sets = table.columns.map((c) => `${quoteIdentifier(c.name)} = ${givenOr(c.name, quoteIdentifier(c.name))}`);
  return `UPDATE ${quoteIdentifier(table.name)} SET ${sets.join(', ')} WHERE id = ?1`;
}

/** Writes a row's server state: its latest op in the oplog (the caller checked there is one). */
function serverStateSql(table: ResolvedTable): string {
  const columns = ['id', ...table.columns.map((c) => c.name)].map(quoteIdentifier).join(', ');
  const values = table.columns.map((c) => `, json_extract(o.data, '$.${c.name}')`).join('');
  const conflict =
    table.columns.length === 0
      ? 'ON CONFLICT (id) DO NOTHING'
      : `ON CONFLICT (id) DO UPDATE SET ${table.columns
          .map((c) => `${quoteIdentifier(c.name)} = excluded.${quoteIdentifier(c.name)}`)
          .join(', ')}`;
  return `INSERT INTO ${quoteIdentifier(table.name)} (${columns})
SELECT ?2${values} FROM (
  SELECT data FROM ferry_oplog WHERE row_type = ?1 AND row_id = ?2 ORDER BY op_id DESC LIMIT 1
) o WHERE true
${conflict}`;
}
