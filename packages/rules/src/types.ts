/**
 * The public shape of compiled sync rules. The service depends only on this.
 *
 * Vocabulary (PowerSync-compatible):
 * - A *bucket definition* has zero or more *parameter queries* and one or
 *   more *data queries*. Parameter queries turn a request (token claims,
 *   client parameters) — possibly via rows of a replicated table such as
 *   memberships — into sets of bucket parameter values. Data queries say
 *   which rows of which source tables go into the bucket with those values.
 * - A *bucket* is one definition with concrete parameter values, named
 *   `definition["v1",…]` (see `bucketName` in @ferry/protocol).
 * - A *lookup* is the key under which a row of a parameter-query table is
 *   indexed: (definition, query index, values of the WHERE columns). At sync
 *   time the service computes lookups from the request and fetches the rows
 *   stored under them.
 */
import type { SqliteRow, SqliteValue } from '@ferry/protocol';

/** A table as named in Postgres. */
export interface SourceTableName {
  schema: string;
  name: string;
}

/** What a request knows about its client: derived from the verified token and the request body. */
export interface RequestParameters {
  /** The token's `sub`. */
  userId: string;
  /** All token claims, for `request.jwt() ->> 'claim'` and `token_parameters.x`. */
  tokenPayload: Record<string, unknown>;
  /** Client-supplied parameters (`request.parameters() ->> 'p'`); never trusted for isolation. */
  clientParameters: Record<string, unknown>;
}

/** One row placed into one bucket by a data query. */
export interface EvaluatedRow {
  /** Full bucket name, e.g. `by_list["l1"]`. */
  bucket: string;
  /** Output table name (the source table name, or the query's alias). */
  table: string;
  /** The row id (output column `id`, as text). */
  id: string;
  /** Output columns. */
  data: SqliteRow;
}

/** One row of a parameter-query table, indexed under a lookup. */
export interface EvaluatedParameters {
  /** Serialized lookup key; opaque, stable, comparable as a string. */
  lookup: string;
  /** Output parameter values of this row for the bucket definition (`SELECT x AS list_id` → {list_id: …}). */
  params: Record<string, SqliteValue>;
}

/** A problem found while evaluating one row; the row is skipped for that query, never the whole stream. */
export interface EvaluationError {
  message: string;
  /** Which query (definition and kind) produced it. */
  source: string;
}

/**
 * Per-request plan for finding a client's buckets. Built once per request
 * from the token; cheap.
 */
export interface BucketQuerier {
  /** Buckets that need no table lookup (global buckets, token/param-only parameter queries). */
  readonly staticBuckets: readonly BucketDescription[];
  /** Lookups whose stored parameter rows decide further buckets. Empty if none. */
  readonly lookups: readonly string[];
  /**
   * Turns the parameter rows found under {@link lookups} into buckets. Rows
   * are passed per lookup; a lookup with no rows may be absent.
   */
  resolve(rowsByLookup: ReadonlyMap<string, readonly Record<string, SqliteValue>[]>): BucketDescription[];
}

export interface BucketDescription {
  bucket: string;
  /** Definition name. */
  definition: string;
  /** 0 (highest) … 3 (default). */
  priority: number;
}

/** Compiled sync rules. Pure and synchronous after compilation; safe to share. */
export interface CompiledSyncRules {
  /** Every source table any query reads, with which uses it has. */
  readonly sourceTables: readonly SourceTableUse[];
  /** Names of the bucket definitions. */
  readonly definitions: readonly string[];
  /** Stable hash of the rules' meaning; changes whenever replication output would. */
  readonly hash: string;

  /** Which buckets (and with which output rows) a source row belongs to. */
  evaluateRow(table: SourceTableName, row: SqliteRow): { rows: EvaluatedRow[]; errors: EvaluationError[] };
  /** Lookups a row of a parameter-query table is indexed under. */
  evaluateParameterRow(
    table: SourceTableName,
    row: SqliteRow,
  ): { lookups: EvaluatedParameters[]; errors: EvaluationError[] };
  /** The plan to find a request's buckets. Throws FerryError FERRY_S1104 if a needed claim is unusable. */
  querierFor(request: RequestParameters): BucketQuerier;
}

export interface SourceTableUse {
  table: SourceTableName;
  /** Rows of this table feed data queries. */
  data: boolean;
  /** Rows of this table feed parameter queries. */
  parameters: boolean;
  /**
   * Columns the rules read from this table, or `'*'` if all. Replication
   * keeps full rows anyway (for TOAST and later rule changes); this is for
   * documentation and `ferry inspect`.
   */
  columns: readonly string[] | '*';
}
