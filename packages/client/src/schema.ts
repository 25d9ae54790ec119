import { FerryError } from '@ferry/protocol';

/** The SQLite storage classes a schema column can declare. */
export const COLUMN_TYPES = ['TEXT', 'INTEGER', 'REAL'] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];

/** A column declaration: its SQLite type. */
export interface ColumnDefinition {
  readonly type: ColumnType;
}

/** Column types for {@link Table} declarations: `{ title: column.text, done: column.integer }`. */
export const column = {
  text: { type: 'TEXT' },
  integer: { type: 'INTEGER' },
  real: { type: 'REAL' },
} as const satisfies Record<string, ColumnDefinition>;

/**
 * An index over some columns of a table. A column name prefixed with `-`
 * sorts descending (`['list_id', '-created_at']`).
 */
export type IndexDefinition = readonly string[];

export interface TableOptions {
  /** Indexes by name. Ferry creates them as `<table>__<name>` and drops them when removed here. */
  readonly indexes?: Readonly<Record<string, IndexDefinition>>;
  /** A local-only table is never synced: a plain table that sync never touches and `disconnectAndClear` keeps. */
  readonly localOnly?: boolean;
}

/** Identifiers Ferry accepts for tables, columns and indexes. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const RESERVED_PREFIXES = ['ferry_', 'sqlite_'];

/** One table of a {@link Schema}. Every table has an implicit `id TEXT PRIMARY KEY`. */
export class Table<Columns extends Record<string, ColumnDefinition> = Record<string, ColumnDefinition>> {
  readonly columns: Readonly<Columns>;
  readonly indexes: Readonly<Record<string, IndexDefinition>>;
  readonly localOnly: boolean;

  constructor(columns: Columns, options: TableOptions = {}) {
    this.columns = columns;
    this.indexes = options.indexes ?? {};
    this.localOnly = options.localOnly ?? false;
  }
}

/** A validated table with its name, as the rest of the client uses it. */
export interface ResolvedTable {
  readonly name: string;
  readonly columns: readonly { readonly name: string; readonly type: ColumnType }[];
  readonly indexes: readonly {
    readonly name: string;
    readonly columns: readonly { name: string; descending: boolean }[];
  }[];
  readonly localOnly: boolean;
}

/** Row type of a table: `id` plus each declared column. */
export type RowOf<T extends Table> =
  T extends Table<infer C>
    ? { id: string } & { [K in keyof C]: C[K]['type'] extends 'TEXT' ? string | null : number | bigint | null }
    : never;

/**
 * The client schema: the tables the app reads, each materialized as a real
 * SQLite table. Names are validated on construction (FERRY_C1005).
 */
export class Schema<Tables extends Record<string, Table> = Record<string, Table>> {
  readonly tables: Readonly<Tables>;
  /** Tables in declaration order, validated. */
  readonly resolved: readonly ResolvedTable[];

  constructor(tables: Tables) {
    this.tables = tables;
    this.resolved = Object.entries(tables).map(([name, table]) => resolveTable(name, table));
    const seen = new Set<string>();
    for (const table of this.resolved) {
      const key = table.name.toLowerCase();
      if (seen.has(key)) throw invalid(`duplicate table name "${table.name}" (names are case-insensitive)`);
      seen.add(key);
    }
  }

  /** The validated table with this name, if any (case-insensitive, like SQLite). */
  table(name: string): ResolvedTable | undefined {
    const key = name.toLowerCase();
    return this.resolved.find((t) => t.name.toLowerCase() === key);
  }
}

function invalid(message: string): FerryError {
  return new FerryError('FERRY_C1005', `Invalid schema: ${message}`);
}

function checkIdentifier(kind: string, name: string): void {
  if (!IDENTIFIER.test(name)) {
    throw invalid(`${kind} name ${JSON.stringify(name)} must match ${IDENTIFIER.source}`);
  }
}

function resolveTable(name: string, table: Table): ResolvedTable {
  checkIdentifier('table', name);
  const lower = name.toLowerCase();
  if (RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
    throw invalid(`table name "${name}" uses a reserved prefix (${RESERVED_PREFIXES.join(', ')})`);
  }
  if (!(table instanceof Table)) throw invalid(`table "${name}" must be a Table`);
  const columns: { name: string; type: ColumnType }[] = [];
  const seen = new Set<string>(['id']);
  for (const [columnName, definition] of Object.entries(table.columns)) {
    checkIdentifier(`column (table "${name}")`, columnName);
    const key = columnName.toLowerCase();
    if (key === 'id') throw invalid(`table "${name}" declares "id"; every table has an implicit id TEXT primary key`);
    if (seen.has(key)) throw invalid(`table "${name}" declares column "${columnName}" twice`);
    seen.add(key);
    if (!COLUMN_TYPES.includes(definition.type)) {
      throw invalid(`column "${name}.${columnName}" has unknown type ${JSON.stringify(definition.type)}`);
    }
    columns.push({ name: columnName, type: definition.type });
  }
  if (columns.length > 1999) throw invalid(`table "${name}" has more than 1999 columns`);
  const indexes = Object.entries(table.indexes).map(([indexName, spec]) => {
    checkIdentifier(`index (table "${name}")`, indexName);
    if (spec.length === 0) throw invalid(`index "${name}.${indexName}" has no columns`);
    return {
      name: indexName,
      columns: spec.map((entry) => {
        const descending = entry.startsWith('-');
        const columnName = descending ? entry.slice(1) : entry;
        if (!seen.has(columnName.toLowerCase())) {
          throw invalid(`index "${name}.${indexName}" names unknown column "${columnName}"`);
        }
        return { name: columnName, descending };
      }),
    };
  });
  return { name, columns, indexes, localOnly: table.localOnly };
}

/** Quotes an identifier for SQL. Identifiers are validated, so this never needs escaping, but stay safe. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
