/** Small SQL helpers shared by the storage modules. */

/** Quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** Storage schema names are restricted so they can be embedded in channel and statement names. */
export const SCHEMA_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,40}$/;

/** Op kinds as stored in `ops.op` (smallint). */
export const OP_CODE = { PUT: 1, REMOVE: 2, MOVE: 3, CLEAR: 4 } as const;
export const OP_NAME = ['', 'PUT', 'REMOVE', 'MOVE', 'CLEAR'] as const;

/** u32 wrap for checksums summed in SQL. */
export const CHECKSUM_MODULUS = '4294967296';

/** Quotes an SQL string literal (for DDL, where parameters cannot be used). */
export function quoteLiteral(text: string): string {
  return "'" + text.replace(/'/g, "''") + "'";
}
