import { decodeHlc, encodeHlc, HLC_MAX_COUNTER, hlcNow, type Hlc, type SqliteValue } from '@ferry/protocol';
import type { SqliteConnection, SqliteParam } from './driver.js';
import type { RejectedOp } from './rejections.js';
import { quoteIdentifier, type ResolvedTable } from './schema.js';

/**
 * The upload queue: `ferry_crud` holds every local write to a synced table
 * not yet uploaded, one row per op, in commit order. Triggers on each
 * synced table append the op in the writing transaction itself (so a
 * rolled-back write queues nothing); before that transaction commits, the
 * client stamps the new ops with their transaction id, client id and HLC
 * (see {@link stampPendingOps}). Ops are unstamped only inside that window.
 * A PATCH also records in `old` the row's previous values of the columns it
 * changes (same JSON encoding as `data`), for the server's conflict check.
 *
 * Applying downloaded data must not queue anything: the triggers are off
 * while the `ferry_kv` row {@link KV_CRUD_SUPPRESSED} exists (see
 * {@link withCrudSuppressed}).
 */
export const CRUD_TABLE_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ferry_crud (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id INTEGER,
    op TEXT NOT NULL,
    row_type TEXT NOT NULL,
    row_id TEXT NOT NULL,
    data TEXT,
    client_id TEXT,
    hlc TEXT,
    created_at INTEGER,
    old TEXT
  )`,
  // Finds the unstamped ops (tx_id IS NULL) and the ops of one transaction.
  `CREATE INDEX IF NOT EXISTS ferry_crud_tx ON ferry_crud (tx_id)`,
];

/**
 * Adds `old` to a `ferry_crud` created before the column existed (ops
 * queued then keep NULL: no previous values). Runs after
 * {@link CRUD_TABLE_DDL}, in the caller's transaction.
 */
export async function upgradeCrudTable(conn: SqliteConnection): Promise<void> {
  const { rows } = await conn.execute(`SELECT name FROM pragma_table_info('ferry_crud')`);
  if (!rows.some((r) => r['name'] === 'old')) await conn.execute(`ALTER TABLE ferry_crud ADD COLUMN old TEXT`);
}

export const KV_CRUD_SUPPRESSED = 'crud_suppressed';
export const KV_HLC = 'hlc';

const TRIGGER_PREFIX = 'ferry_crud__';
/** A JSON object key no column can have (column names are identifiers). */
const NO_KEY_PATH = `'$."-"'`;
/** Pairs per json_object/json_set/json_remove call, below SQLite's default argument limit (127). */
const CHUNK = 50;

export type CrudOp = 'PUT' | 'PATCH' | 'DELETE';

/** One queued local write. */
export interface CrudEntry {
  /** Position in the queue (increasing). */
  readonly clientId: number;
  readonly op: CrudOp;
  readonly table: string;
  /** The row's `id`. */
  readonly id: string;
  /** PUT: every column; PATCH: the changed columns; DELETE: none. int8 beyond 2^53 as bigint. */
  readonly opData?: Record<string, SqliteValue>;
  /**
   * The values the row had before the op, for exactly the columns of
   * `opData` (PowerSync's name; sent as the write API's `old`). Set on
   * PATCHes queued by an UPDATE; absent on PUT and DELETE, and on ops
   * queued before the client recorded them. A compacted op carries, per
   * column, the value from before the first edit it absorbed.
   */
  readonly previousValues?: Record<string, SqliteValue>;
  /** Shared by all ops of one local write transaction. */
  readonly transactionId: number;
  /** Hybrid logical clock stamp (`encodeHlc` text; its node is the client id). */
  readonly hlc: string;
  /**
   * Per-column stamps overriding `hlc` (the write API's `hlcs`). Only on
   * compacted ops (see `compactCrud`): each column's stamp is that of the
   * edit that set it last. Absent when every column has `hlc`.
   */
  readonly hlcs?: Record<string, string>;
}

/**
 * How an uploader reports what happened to a batch. `complete()` without
 * options means PowerSync's "every op was applied".
 */
export interface CompleteOptions {
  /**
   * Only the ops up to and including this entry (one of the batch's) were
   * handled, applied or rejected; the later ones stay queued, in order, and
   * are offered again. Default: the whole batch.
   */
  through?: CrudEntry;
  /**
   * Handled ops the server rejected. They leave the queue into
   * `ferry_rejections` with their reason, and their rows return to server
   * state (with later pending ops re-applied on top), in one transaction.
   * Every other handled op counts as applied.
   */
  rejected?: readonly RejectedOp[];
  /**
   * A write checkpoint covering the applied ops, if the backend returned
   * one; otherwise the sync loop requests one after the upload.
   */
  writeCheckpoint?: string;
}

/**
 * A run of queued ops. `complete()` settles them: applied ops move to the
 * overlay (they stay visible and are re-applied over downloaded data until
 * a checkpoint reflects them), rejected ones to `ferry_rejections`.
 */
export interface CrudBatch {
  readonly crud: CrudEntry[];
  /** More ops are queued after this batch. */
  readonly haveMore: boolean;
  complete(options?: CompleteOptions): Promise<void>;
}

/** The ops of one local write transaction; `complete()` settles them as for {@link CrudBatch}. */
export interface CrudTransaction {
  readonly crud: CrudEntry[];
  readonly transactionId: number;
  complete(options?: CompleteOptions): Promise<void>;
}

function chunks<T>(items: readonly T[]): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) result.push(items.slice(i, i + CHUNK));
  return result;
}

/** `{"col": NEW.col, …}` as SQL, for any number of columns. */
function jsonOfColumns(table: ResolvedTable, alias: 'NEW' | 'OLD'): string {
  const parts = chunks(table.columns.map((c) => [`'${c.name}'`, `${alias}.${quoteIdentifier(c.name)}`] as const));
  if (parts.length === 0) return `json_object()`;
  let sql = `json_object(${parts[0]!.map(([k, v]) => `${k}, ${v}`).join(', ')})`;
  for (const part of parts.slice(1)) {
    sql = `json_set(${sql}, ${part.map(([k, v]) => `'$.' || ${k}, ${v}`).join(', ')})`;
  }
  return sql;
}

/**
 * `alias`'s columns minus those where OLD and NEW are equal (same value and
 * type): with NEW, the changed values; with OLD, what they were before.
 */
function changedColumnsJson(table: ResolvedTable, alias: 'NEW' | 'OLD'): string {
  let sql = jsonOfColumns(table, alias);
  for (const part of chunks(table.columns)) {
    const paths = part.map((c) => {
      const q = quoteIdentifier(c.name);
      return `CASE WHEN OLD.${q} IS NEW.${q} AND typeof(OLD.${q}) = typeof(NEW.${q}) THEN '$.${c.name}' ELSE ${NO_KEY_PATH} END`;
    });
    sql = `json_remove(${sql}, ${paths.join(', ')})`;
  }
  return sql;
}

function triggerName(table: string, kind: string): string {
  return quoteIdentifier(`${TRIGGER_PREFIX}${table}__${kind}`);
}

/** The triggers queueing writes to one synced table. */
export function crudTriggerSqls(table: ResolvedTable): string[] {
  const t = quoteIdentifier(table.name);
  const name = `'${table.name}'`; // a validated identifier: no quote inside
  const enabled = `NOT EXISTS (SELECT 1 FROM ferry_kv WHERE key = '${KV_CRUD_SUPPRESSED}')`;
  const put = (alias: 'NEW') =>
    `INSERT INTO ferry_crud (op, row_type, row_id, data) VALUES ('PUT', ${name}, ${alias}.id, ${jsonOfColumns(table, alias)});`;
  const del = `INSERT INTO ferry_crud (op, row_type, row_id) VALUES ('DELETE', ${name}, OLD.id);`;
  return [
    `CREATE TRIGGER ${triggerName(table.name, 'insert')} AFTER INSERT ON ${t} WHEN ${enabled} BEGIN ${put('NEW')} END`,
    // `old` is computed in the outer SELECT: only for updates that changed something.
    `CREATE TRIGGER ${triggerName(table.name, 'update')} AFTER UPDATE ON ${t} WHEN ${enabled} AND OLD.id IS NEW.id BEGIN
      INSERT INTO ferry_crud (op, row_type, row_id, data, old)
      SELECT 'PATCH', ${name}, NEW.id, d, ${changedColumnsJson(table, 'OLD')}
      FROM (SELECT ${changedColumnsJson(table, 'NEW')} AS d) WHERE d <> '{}';
    END`,
    // A changed primary key: the old row goes, the new one is put.
    `CREATE TRIGGER ${triggerName(table.name, 'rekey')} AFTER UPDATE ON ${t} WHEN ${enabled} AND OLD.id IS NOT NEW.id BEGIN
      ${del} ${put('NEW')}
    END`,
    `CREATE TRIGGER ${triggerName(table.name, 'delete')} AFTER DELETE ON ${t} WHEN ${enabled} BEGIN ${del} END`,
  ];
}

/**
 * Drops every queue trigger and creates them for the synced tables of the
 * schema (local-only tables get none), in the caller's transaction.
 */
export async function installCrudTriggers(conn: SqliteConnection, tables: readonly ResolvedTable[]): Promise<void> {
  await dropCrudTriggers(conn);
  for (const table of tables) {
    if (table.localOnly) continue;
    for (const sql of crudTriggerSqls(table)) await conn.execute(sql);
  }
}

export async function dropCrudTriggers(conn: SqliteConnection): Promise<void> {
  const { rows } = await conn.execute(
    `SELECT name FROM sqlite_schema WHERE type = 'trigger' AND substr(name, 1, ?) = ?`,
    [TRIGGER_PREFIX.length, TRIGGER_PREFIX],
  );
  for (const row of rows) await conn.execute(`DROP TRIGGER IF EXISTS ${quoteIdentifier(String(row['name']))}`);
}

/** Runs `fn` with the queue triggers off (in the caller's transaction). */
export async function withCrudSuppressed<T>(conn: SqliteConnection, fn: () => Promise<T>): Promise<T> {
  await conn.execute(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES (?, '1')`, [KV_CRUD_SUPPRESSED]);
  try {
    return await fn();
  } finally {
    await conn.execute(`DELETE FROM ferry_kv WHERE key = ?`, [KV_CRUD_SUPPRESSED]);
  }
}

/**
 * Stamps the ops queued by the caller's (still open) transaction: one
 * transaction id (the first op's id), the client id, a fresh HLC per op
 * from the clock persisted in `ferry_kv`, and the time. Returns the number
 * of ops stamped.
 */
export async function stampPendingOps(
  conn: SqliteConnection,
  getClientId: () => Promise<string>,
  nowMs: number,
): Promise<number> {
  const span = (
    await conn.execute(`SELECT min(id) AS first, max(id) AS last, count(*) AS n FROM ferry_crud WHERE tx_id IS NULL`)
  ).rows[0]!;
  const count = Number(span['n']);
  if (count === 0) return 0;
  const first = span['first'] as number;
  const last = span['last'] as number;
  const clientId = await getClientId();
  const stored = (await conn.execute(`SELECT value FROM ferry_kv WHERE key = ?`, [KV_HLC])).rows[0]?.['value'];
  const start = hlcNow(typeof stored === 'string' ? decodeHlc(stored) : null, nowMs, clientId);
  const created = Math.floor(nowMs);
  let clock: Hlc;
  if (start.counter + (last - first) <= HLC_MAX_COUNTER) {
    // One statement: op i of the transaction gets counter start + (id - first), in encodeHlc's format.
    await conn.execute(
      `UPDATE ferry_crud SET tx_id = ?1, client_id = ?2, created_at = ?3,
         hlc = printf('%012x%08x', ?4, ?5 + (id - ?1)) || ?2
       WHERE tx_id IS NULL`,
      [first, clientId, created, start.wallMs, start.counter],
    );
    clock = { wallMs: start.wallMs, counter: start.counter + (last - first), node: clientId };
  } else {
    // The counter would overflow: stamp one by one (hlcNow carries into wallMs).
    const { rows } = await conn.execute(`SELECT id FROM ferry_crud WHERE tx_id IS NULL ORDER BY id`);
    const params: SqliteParam[][] = [];
    clock = start;
    for (const [index, row] of rows.entries()) {
      if (index > 0) clock = hlcNow(clock, nowMs, clientId);
      params.push([encodeHlc(clock), row['id'] as number, first, clientId, created]);
    }
    await conn.executeBatch(
      `UPDATE ferry_crud SET tx_id = ?3, client_id = ?4, created_at = ?5, hlc = ?1 WHERE id = ?2`,
      params,
    );
  }
  await conn.execute(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES (?, ?)`, [KV_HLC, encodeHlc(clock)]);
  return count;
}

/** The number of queued ops and when the oldest was queued. */
export async function queueSummary(conn: SqliteConnection): Promise<{ count: number; oldestAt: Date | null }> {
  const count = Number((await conn.execute(`SELECT count(*) AS n FROM ferry_crud`)).rows[0]!['n']);
  const oldest = (await conn.execute(`SELECT created_at FROM ferry_crud ORDER BY id LIMIT 1`)).rows[0]?.['created_at'];
  return { count, oldestAt: typeof oldest === 'number' ? new Date(oldest) : null };
}

/**
 * Reads queued ops in order: the first `limit` (with `wholeTransactions`,
 * fewer so that no transaction is cut, but at least the whole first one),
 * or those of the first transaction.
 */
export async function readQueuedOps(
  conn: SqliteConnection,
  which: { limit: number; wholeTransactions?: boolean } | { firstTransaction: true },
): Promise<{ entries: CrudEntry[]; haveMore: boolean }> {
  const columns = `id, tx_id, op, row_type, row_id, data, hlc, old`;
  const firstTransaction = `SELECT ${columns} FROM ferry_crud WHERE tx_id IS (SELECT tx_id FROM ferry_crud ORDER BY id LIMIT 1) ORDER BY id`;
  if (!('limit' in which))
    return { entries: (await conn.execute(firstTransaction)).rows.map(toEntry), haveMore: false };
  const { rows } = await conn.execute(`SELECT ${columns} FROM ferry_crud ORDER BY id LIMIT ?`, [which.limit + 1]);
  if (rows.length <= which.limit) return { entries: rows.map(toEntry), haveMore: false };
  let batch = rows.slice(0, -1);
  if (which.wholeTransactions === true) {
    // The op after the batch belongs to the batch's last transaction: leave that transaction out.
    const cut = rows.at(-1)!['tx_id'];
    let end = batch.length;
    while (end > 0 && batch[end - 1]!['tx_id'] === cut) end--;
    // The first transaction alone is larger than the limit: it goes whole.
    batch = end > 0 ? batch.slice(0, end) : (await conn.execute(firstTransaction)).rows;
    const next = await conn.execute(`SELECT 1 AS x FROM ferry_crud WHERE id > ? LIMIT 1`, [
      batch.at(-1)!['id'] as number,
    ]);
    return { entries: batch.map(toEntry), haveMore: next.rows.length > 0 };
  }
  return { entries: batch.map(toEntry), haveMore: true };
}

function toEntry(row: Record<string, unknown>): CrudEntry {
  const entry = {
    clientId: row['id'] as number,
    op: row['op'] as CrudOp,
    table: String(row['row_type']),
    id: String(row['row_id']),
    transactionId: (row['tx_id'] ?? row['id']) as number,
    hlc: String(row['hlc'] ?? ''),
  };
  const data = row['data'];
  const old = row['old'];
  return {
    ...entry,
    ...(typeof data === 'string' ? { opData: parseRowData(data) } : {}),
    ...(typeof old === 'string' ? { previousValues: parseRowData(old) } : {}),
  };
}

/**
 * Parses a flat JSON object of SQLite values (as the queue triggers write
 * it), keeping integers beyond 2^53 exact (as bigint).
 */
export function parseRowData(text: string): Record<string, SqliteValue> {
  const result: Record<string, SqliteValue> = {};
  // Tokens: strings, numbers, literals and punctuation of a flat object.
  const token = /\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|null|true|false|[{}:,])/y;
  const next = (): string => {
    const match = token.exec(text);
    if (match === null) throw new SyntaxError(`ferry_crud data is not a flat JSON object: ${text.slice(0, 100)}`);
    return match[1]!;
  };
  if (next() !== '{') throw new SyntaxError('ferry_crud data is not a JSON object');
  let t = next();
  while (t !== '}') {
    if (t === ',') t = next();
    const key = JSON.parse(t) as string;
    if (next() !== ':') throw new SyntaxError('ferry_crud data: expected ":"');
    const raw = next();
    let value: SqliteValue;
    if (raw === 'null') value = null;
    else if (raw === 'true' || raw === 'false') value = raw === 'true' ? 1 : 0;
    else if (raw.startsWith('"')) value = JSON.parse(raw) as string;
    else if (/^-?\d+$/.test(raw) && !Number.isSafeInteger(Number(raw))) value = BigInt(raw);
    else value = Number(raw);
    result[key] = value;
    t = next();
  }
  return result;
}
