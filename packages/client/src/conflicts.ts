import { FerryError, parseJsonExact, type SqliteValue } from '@ferry/protocol';
import type { SqliteParam } from './driver.js';
import type { QueryContext } from './ferry-database.js';
import { quoteIdentifier, type ResolvedTable, type Schema } from './schema.js';

/**
 * Conflicts and violations on the client. The service records the values
 * that lost a field-level merge in `ferry_conflicts` and validation-hook
 * findings in `ferry_violations`; both reach the client through ordinary
 * sync rules as tables of the same names. Every client has them (empty
 * unless the app's sync rules select them), materialized like schema tables
 * and with upload triggers, so deleting a conflict row is a normal local
 * write: that is how a conflict is resolved. Apps read them through
 * {@link conflictsQuery} / {@link violationsQuery} (what
 * `FerryDatabase.getConflicts` and friends run) or with plain SQL.
 *
 * Columns are all TEXT, as the service sends them: values are JSON text in
 * SQLite form, `created_at` ISO-8601 UTC text, `row_keys` a JSON array of
 * `'<table>:<id>'`.
 */
export const CONFLICTS_TABLE = 'ferry_conflicts';
export const VIOLATIONS_TABLE = 'ferry_violations';

const CONFLICT_COLUMNS = [
  'table_name',
  'row_id',
  'column_name',
  'scope',
  'winner_value',
  'loser_value',
  'base_value',
  'winner_hlc',
  'loser_hlc',
  'winner_user_id',
  'loser_user_id',
  'winner_client_id',
  'loser_client_id',
  'policy',
  'created_at',
] as const;

const VIOLATION_COLUMNS = [
  'table_name',
  'row_id',
  'key',
  'code',
  'message',
  'row_keys',
  'scope',
  'user_id',
  'created_at',
] as const;

function builtinTable(name: string, columns: readonly string[]): ResolvedTable {
  return {
    name,
    columns: columns.map((column) => ({ name: column, type: 'TEXT' as const })),
    // The filters of getConflicts / getViolations look rows up by their subject row.
    indexes: [
      {
        name: 'by_row',
        columns: [
          { name: 'table_name', descending: false },
          { name: 'row_id', descending: false },
        ],
      },
    ],
    localOnly: false,
  };
}

/**
 * The synced tables every client has besides the app's schema. The schema
 * itself forbids `ferry_*` names; the database adds these where it resolves
 * its tables.
 */
export const BUILTIN_TABLES: readonly ResolvedTable[] = [
  builtinTable(CONFLICTS_TABLE, CONFLICT_COLUMNS),
  builtinTable(VIOLATIONS_TABLE, VIOLATION_COLUMNS),
];

/** How the server settled a concurrent edit: `deleted` = an edit to a row that was deleted. */
export type ConflictPolicy = 'lww' | 'server_wins' | 'client_wins' | 'deleted';

/** A value that lost a field-level merge on the server, kept so a user can review it. */
export interface Conflict {
  readonly id: string;
  /** The table (op type) of the row. */
  readonly table: string;
  readonly rowId: string;
  readonly column: string;
  /** The table's `conflicts.scope` column value, as text (for sync rules). */
  readonly scope: string | null;
  /** The value that stayed in the row (int8 beyond 2^53 as bigint). */
  readonly winnerValue: SqliteValue;
  /** The value that lost. */
  readonly loserValue: SqliteValue;
  /** The value the losing writer saw before its edit; undefined when unknown. */
  readonly baseValue: SqliteValue | undefined;
  /** The winning and losing edits' stamps (`encodeHlc` text: compares in clock order); '' when unknown. */
  readonly winnerHlc: string;
  readonly loserHlc: string;
  readonly winnerUserId: string | null;
  readonly loserUserId: string | null;
  readonly winnerClientId: string | null;
  readonly loserClientId: string | null;
  readonly policy: ConflictPolicy;
  /** When the server recorded it: ISO-8601 UTC text. */
  readonly createdAt: string;
}

/** A row named by a violation. */
export interface ViolationRowRef {
  readonly table: string;
  readonly id: string;
}

/** A finding of a server validation hook, kept until a later op on an involved row clears it. */
export interface Violation {
  /** `'<table>:<key>'`. */
  readonly id: string;
  /** The table whose hook raised it. */
  readonly table: string;
  /** The row whose op raised it. */
  readonly rowId: string;
  readonly key: string;
  readonly code: string;
  readonly message: string;
  /** Every row involved (the subject row among them, as the hook listed them). */
  readonly rows: ViolationRowRef[];
  readonly scope: string | null;
  /** Who wrote the op that raised it. */
  readonly userId: string | null;
  /** When the server recorded it: ISO-8601 UTC text. */
  readonly createdAt: string;
}

/** Narrows a list to one table and/or one row of it. */
export interface ConflictFilter {
  readonly table?: string;
  readonly rowId?: string;
}

/**
 * How to resolve a conflict: keep the value now in the row, write the lost
 * value back, or write a new value. Resolving deletes the conflict row.
 */
export type ConflictResolution =
  { readonly keep: 'current' } | { readonly keep: 'lost' } | { readonly value: SqliteValue };

/** A query and its parameters. */
export interface BuiltQuery {
  readonly sql: string;
  readonly params: SqliteParam[];
}

const CONFLICT_SELECT = `SELECT id, ${CONFLICT_COLUMNS.join(', ')} FROM ${CONFLICTS_TABLE}`;
const VIOLATION_SELECT = `SELECT id, ${VIOLATION_COLUMNS.join(', ')} FROM ${VIOLATIONS_TABLE} v`;

/** The conflicts matching `filter`, oldest first (`created_at`, then `id`). */
export function conflictsQuery(filter: ConflictFilter = {}): BuiltQuery {
  const where: string[] = [];
  const params: SqliteParam[] = [];
  if (filter.table !== undefined) {
    where.push('table_name = ?');
    params.push(filter.table);
  }
  if (filter.rowId !== undefined) {
    where.push('row_id = ?');
    params.push(filter.rowId);
  }
  const clause = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  return { sql: `${CONFLICT_SELECT}${clause} ORDER BY created_at, id`, params };
}

/**
 * The violations whose subject row or any involved row (`row_keys`, split
 * at the first ':') matches `filter`, oldest first.
 */
export function violationsQuery(filter: ConflictFilter = {}): BuiltQuery {
  if (filter.table === undefined && filter.rowId === undefined) {
    return { sql: `${VIOLATION_SELECT} ORDER BY created_at, id`, params: [] };
  }
  const subject: string[] = [];
  const involved: string[] = [`k.type = 'text'`, `instr(k.value, ':') > 0`];
  const params: SqliteParam[] = [];
  if (filter.table !== undefined) {
    subject.push('v.table_name = ?');
    involved.push(`substr(k.value, 1, instr(k.value, ':') - 1) = ?`);
  }
  if (filter.rowId !== undefined) {
    subject.push('v.row_id = ?');
    involved.push(`substr(k.value, instr(k.value, ':') + 1) = ?`);
  }
  const values = [filter.table, filter.rowId].filter((v): v is string => v !== undefined);
  params.push(...values, ...values);
  // A malformed row_keys matches nothing rather than failing the whole list.
  const keys = `json_each(CASE WHEN json_valid(v.row_keys) THEN v.row_keys ELSE '[]' END) k`;
  return {
    sql: `${VIOLATION_SELECT} WHERE (${subject.join(' AND ')})
  OR EXISTS (SELECT 1 FROM ${keys} WHERE ${involved.join(' AND ')})
ORDER BY created_at, id`,
    params,
  };
}

/**
 * One JSON value in SQLite form (int8 beyond 2^53 as bigint, booleans as
 * 0/1); undefined for SQL NULL. Text that is not a JSON scalar is returned
 * as it is, so one odd row never hides the others.
 */
function parseValue(text: unknown): SqliteValue | undefined {
  if (text === null || text === undefined) return undefined;
  const raw = String(text);
  let value: unknown;
  try {
    value = parseJsonExact(raw);
  } catch {
    return raw;
  }
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') {
    return value;
  }
  if (typeof value === 'boolean') return value ? 1 : 0;
  return raw;
}

function textOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** A `ferry_conflicts` row (all columns, as {@link conflictsQuery} selects them) as a {@link Conflict}. */
export function conflictFromRow(row: Record<string, unknown>): Conflict {
  return {
    id: String(row['id']),
    table: String(row['table_name']),
    rowId: String(row['row_id']),
    column: String(row['column_name']),
    scope: textOrNull(row['scope']),
    winnerValue: parseValue(row['winner_value']) ?? null,
    loserValue: parseValue(row['loser_value']) ?? null,
    baseValue: parseValue(row['base_value']),
    winnerHlc: textOrNull(row['winner_hlc']) ?? '',
    loserHlc: textOrNull(row['loser_hlc']) ?? '',
    winnerUserId: textOrNull(row['winner_user_id']),
    loserUserId: textOrNull(row['loser_user_id']),
    winnerClientId: textOrNull(row['winner_client_id']),
    loserClientId: textOrNull(row['loser_client_id']),
    policy: String(row['policy']) as ConflictPolicy,
    createdAt: String(row['created_at'] ?? ''),
  };
}

/** `'<table>:<id>'` keys as rows (split at the first ':'); anything else in the list is skipped. */
function parseRowKeys(text: unknown): ViolationRowRef[] {
  if (typeof text !== 'string') return [];
  let keys: unknown;
  try {
    keys = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(keys)) return [];
  const rows: ViolationRowRef[] = [];
  for (const key of keys) {
    if (typeof key !== 'string') continue;
    const at = key.indexOf(':');
    if (at > 0) rows.push({ table: key.slice(0, at), id: key.slice(at + 1) });
  }
  return rows;
}

/** A `ferry_violations` row (as {@link violationsQuery} selects it) as a {@link Violation}. */
export function violationFromRow(row: Record<string, unknown>): Violation {
  return {
    id: String(row['id']),
    table: String(row['table_name']),
    rowId: String(row['row_id']),
    key: String(row['key']),
    code: String(row['code']),
    message: String(row['message']),
    rows: parseRowKeys(row['row_keys']),
    scope: textOrNull(row['scope']),
    userId: textOrNull(row['user_id']),
    createdAt: String(row['created_at'] ?? ''),
  };
}

function isSqliteValue(value: unknown): value is SqliteValue {
  return value === null || ['string', 'number', 'bigint'].includes(typeof value);
}

/**
 * Resolves conflict `id` inside the caller's write transaction: for
 * `lost` / `value`, sets the conflict's column of its row (both checked
 * against `schema`), then deletes the conflict row. Both are local writes,
 * so they are queued for upload together (a PATCH of the column, if the
 * value changes, and a DELETE of the conflict).
 *
 * Throws FERRY_C1007 when there is no such conflict or, for `lost` /
 * `value`, when the row no longer exists locally (nothing is re-inserted);
 * FERRY_C1005 when the conflict names a table or column that the schema
 * does not declare as synced.
 */
export async function resolveConflict(
  tx: QueryContext,
  schema: Schema,
  id: string,
  resolution: ConflictResolution,
): Promise<void> {
  const keepCurrent = 'keep' in resolution && resolution.keep === 'current';
  const keepLost = 'keep' in resolution && resolution.keep === 'lost';
  if (!keepCurrent && !keepLost && !('value' in resolution && isSqliteValue(resolution.value))) {
    throw new RangeError(
      `resolveConflict: the resolution must be { keep: 'current' }, { keep: 'lost' } or { value } with a SQLite value`,
    );
  }
  const conflict = await tx.getOptional<Record<string, unknown>>(
    `SELECT table_name, row_id, column_name, loser_value FROM ${CONFLICTS_TABLE} WHERE id = ?`,
    [id],
  );
  if (conflict === null) {
    throw new FerryError(
      'FERRY_C1007',
      `there is no conflict with id ${JSON.stringify(id)} (already resolved, or not synced to this client)`,
    );
  }
  if (!keepCurrent) {
    const tableName = String(conflict['table_name']);
    const columnName = String(conflict['column_name']);
    const rowId = String(conflict['row_id']);
    const table = schema.table(tableName);
    const column = table?.columns.find((c) => c.name.toLowerCase() === columnName.toLowerCase());
    if (table === undefined || table.localOnly || column === undefined) {
      throw new FerryError(
        'FERRY_C1005',
        `conflict ${JSON.stringify(id)} is about ${tableName}.${columnName}, which the client schema does not declare as a synced column`,
      );
    }
    const value = keepLost
      ? (parseValue(conflict['loser_value']) ?? null)
      : (resolution as { value: SqliteValue }).value;
    // Names come from the schema (validated identifiers), never from the synced row.
    const updated = await tx.execute(
      `UPDATE ${quoteIdentifier(table.name)} SET ${quoteIdentifier(column.name)} = ? WHERE id = ?`,
      [value, rowId],
    );
    if (updated.rowsAffected === 0) {
      throw new FerryError(
        'FERRY_C1007',
        `cannot resolve conflict ${JSON.stringify(id)}: the row ${table.name}/${rowId} no longer exists locally, and resolving never re-inserts it`,
      );
    }
  }
  await tx.execute(`DELETE FROM ${CONFLICTS_TABLE} WHERE id = ?`, [id]);
}
