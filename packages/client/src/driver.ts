/**
 * The SQLite surface the client needs. Platform packages implement it
 * (`@ferry/client-node` on better-sqlite3; a browser worker driver later),
 * so `@ferry/client` never depends on a SQLite binding. Every method is
 * async so an implementation may live behind a worker boundary.
 */

/** A value bound to a statement parameter. Booleans are bound as 0/1. */
export type SqliteParam = null | string | number | bigint | boolean | Uint8Array;

/** A row as the driver returns it, keyed by column name. */
export type SqliteResultRow = Record<string, unknown>;

/** Outcome of one statement. */
export interface SqliteQueryResult<Row = SqliteResultRow> {
  /** Rows the statement returned (empty for statements that return none). */
  rows: Row[];
  /** Rows changed by an INSERT/UPDATE/DELETE (0 for other statements). */
  rowsAffected: number;
  /** rowid of the last inserted row when the statement inserted one. */
  insertId: number | bigint | undefined;
}

/**
 * One SQLite connection. Statements run in the order they are called; a
 * connection never runs two statements at once. Transactions are plain SQL
 * (`BEGIN`, `COMMIT`, `ROLLBACK`); the caller guarantees nobody else uses the
 * connection while its transaction is open.
 */
export interface SqliteConnection {
  /**
   * Runs exactly one SQL statement with positional `?` parameters and
   * returns its rows. Rejects with the SQLite error on failure.
   */
  execute(sql: string, params?: readonly SqliteParam[]): Promise<SqliteQueryResult>;

  /**
   * Runs one statement once per parameter set, in order (prepared once).
   * Returns the total number of rows changed. Does not open a transaction
   * by itself: wrap it in one for atomicity and speed.
   */
  executeBatch(sql: string, paramSets: readonly (readonly SqliteParam[])[]): Promise<{ rowsAffected: number }>;
}

/** A database opened by a platform package. */
export interface SqliteDriver {
  /** The connection every write goes through. The client serializes its use. */
  readonly writer: SqliteConnection;
  /**
   * An optional second connection to the same database that only ever sees
   * committed data (WAL mode). When present, reads and watched queries run
   * here and never wait for a write transaction nor see its uncommitted
   * state. Without it (in-memory databases), reads queue behind writes on
   * `writer`.
   */
  readonly reader?: SqliteConnection | undefined;
  /** Closes the connections. No method is called afterwards. */
  close(): Promise<void>;
}
