import type { SqliteRow, SqliteValue } from './values.js';

/**
 * Serializes a row to JSON text, writing `bigint` values as bare JSON
 * integers so 64-bit values keep every digit. SQLite's JSON functions read
 * such integers back exactly, which is how clients materialize row data
 * without going through a lossy JavaScript number.
 */
export function rowToJson(row: SqliteRow): string {
  let out = '{';
  let first = true;
  for (const key in row) {
    const value = row[key];
    if (value === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(key);
    out += ':';
    out += valueToJson(value);
  }
  return out + '}';
}

/** JSON text for one SQLite value; `bigint` as a bare integer. */
export function valueToJson(value: SqliteValue): string {
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'number':
      // NaN and infinities have no JSON form; SQLite stores them as NULL too.
      return Number.isFinite(value) ? String(value) : 'null';
    default:
      return JSON.stringify(value);
  }
}

/**
 * Serializes an array of values as JSON text, with the same rules as
 * {@link valueToJson}. Used for bucket parameters.
 */
export function valuesToJson(values: readonly SqliteValue[]): string {
  return '[' + values.map(valueToJson).join(',') + ']';
}
