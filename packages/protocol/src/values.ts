/**
 * Values as they live in SQLite, and as Ferry carries them in row data.
 *
 * Postgres values are converted to these at the edge of the service (see
 * `docs/types.md`): integers that fit in 53 bits become `number`, larger
 * int8 values stay `bigint` so they never lose precision, numeric and
 * timestamps become text, booleans 0/1, json and arrays JSON text, bytea base64.
 */
export type SqliteValue = null | string | number | bigint;

/** A row keyed by column name. */
export type SqliteRow = Record<string, SqliteValue>;
