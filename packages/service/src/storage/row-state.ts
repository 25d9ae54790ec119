/**
 * Encodings of the per-source-row state and of parameter rows, as stored in
 * `current_rows` and `parameter_rows`.
 */
import type { SqliteValue } from '@ferry/protocol';

/**
 * A source row in Postgres' text output format, by column name. `null` is
 * SQL NULL; `undefined` marks an unchanged TOASTed value the WAL did not
 * carry (filled from the stored row before evaluation).
 */
export type RawRow = Record<string, string | null | undefined>;

/** A raw row with every value present. */
export type CompleteRawRow = Record<string, string | null>;

/** One object a source row put into a bucket: [bucket, object_type, object_id]. */
export type BucketEntry = [bucket: string, objectType: string, objectId: string];

/** One lookup a parameter-table row is indexed under, with its params as stored. */
export type LookupEntry = [lookup: string, paramsJson: string];

export interface CurrentRow {
  data: CompleteRawRow;
  buckets: BucketEntry[];
  lookups: LookupEntry[];
}

/**
 * Parameter values as JSON text. `bigint`s (int8 beyond 2^53) are written as
 * `{"$b":"…"}` so they come back exactly; no SqliteValue is an object, so the
 * form is unambiguous.
 */
export function encodeParams(params: Record<string, SqliteValue>): string {
  return JSON.stringify(params, (_key, value: unknown) =>
    typeof value === 'bigint' ? { $b: value.toString() } : value,
  );
}

export function decodeParams(text: string): Record<string, SqliteValue> {
  return JSON.parse(text, (_key, value: unknown) => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const b = (value as Record<string, unknown>)['$b'];
      if (typeof b === 'string' && Object.keys(value).length === 1) return BigInt(b);
    }
    return value;
  }) as Record<string, SqliteValue>;
}
