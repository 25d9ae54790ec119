import { quoteIdentifier, type RowOf, type Schema, type SqliteParam } from '@ferry/client';
import { FerryError } from '@ferry/protocol';
import { useMemo } from 'react';
import { useLiveQuery, type QueryResult } from './use-query.js';

/** Names of the tables of a schema: `TableName<typeof schema>`. */
export type TableName<S extends Schema> = keyof S['tables'] & string;

/**
 * The row type of one table of a schema, for typed queries:
 * `useQuery<SchemaRow<typeof schema, 'tasks'>>('SELECT * FROM tasks')`.
 * `id` is a string; TEXT columns are `string | null`, INTEGER and REAL
 * columns `number | bigint | null` (bigint for integers beyond 2^53).
 */
export type SchemaRow<S extends Schema, N extends TableName<S>> = RowOf<S['tables'][N]>;

export interface TableQuery {
  /** A SQL condition over the table's columns, with `?` placeholders: `'project_id = ? AND done = 0'`. */
  readonly where?: string;
  /** Values for the placeholders of `where`. */
  readonly params?: readonly SqliteParam[];
  /** An ORDER BY clause without the keywords: `'rank, id'`. */
  readonly orderBy?: string;
  /** At most this many rows. */
  readonly limit?: number;
  /** `false` runs no query. Default true. */
  readonly enabled?: boolean;
}

/** The SELECT {@link useTable} runs: every column of the table by name, so the rows match {@link SchemaRow}. */
export function tableQuerySql(schema: Schema, table: string, query: TableQuery = {}): string {
  const resolved = schema.table(table);
  if (resolved === undefined) {
    // TODO(code): FERRY_C1005 (invalid schema) is the closest code for "no such table in the schema".
    throw new FerryError('FERRY_C1005', `Table "${table}" is not in the schema`);
  }
  const columns = ['id', ...resolved.columns.map((c) => c.name)].map(quoteIdentifier).join(', ');
  let sql = `SELECT ${columns} FROM ${quoteIdentifier(resolved.name)}`;
  if (query.where !== undefined && query.where.trim() !== '') sql += ` WHERE ${query.where}`;
  if (query.orderBy !== undefined && query.orderBy.trim() !== '') sql += ` ORDER BY ${query.orderBy}`;
  if (query.limit !== undefined) {
    if (!Number.isSafeInteger(query.limit) || query.limit < 0) {
      throw new RangeError(`limit must be a non-negative integer, got ${query.limit}`);
    }
    sql += ` LIMIT ${query.limit}`;
  }
  return sql;
}

const NO_PARAMS: readonly SqliteParam[] = Object.freeze([]);

/**
 * A live, typed query over one table of the schema: {@link useQuery} with
 * rows typed from the table's declaration.
 *
 * @example
 * const { data: tasks } = useTable(schema, 'tasks', { where: 'project_id = ?', params: [projectId], orderBy: 'rank' });
 * // tasks: { id: string; title: string | null; rank: number | bigint | null; ... }[]
 */
export function useTable<S extends Schema, N extends TableName<S>>(
  schema: S,
  table: N,
  query: TableQuery = {},
): QueryResult<SchemaRow<S, N>> {
  const { where, orderBy, limit } = query;
  const sql = useMemo(
    () => tableQuerySql(schema, table, { ...opt('where', where), ...opt('orderBy', orderBy), ...opt('limit', limit) }),
    [schema, table, where, orderBy, limit],
  );
  return useLiveQuery<SchemaRow<S, N>>(sql, query.params ?? NO_PARAMS, query.enabled ?? true, undefined);
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
