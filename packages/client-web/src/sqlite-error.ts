/**
 * SQLite errors on the main thread, rebuilt from the worker's
 * `{ code, errno, message }`. Shaped like better-sqlite3's `SqliteError`
 * (`code` is the result code's name), so code that inspects driver errors
 * works the same on Node and in the browser.
 */

const BRAND = Symbol.for('ferry.sqlite-error');

export class SqliteError extends Error {
  override readonly name = 'SqliteError';
  /** The SQLite result code's name, e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`. */
  readonly code: string;
  /** The numeric (extended) result code, e.g. 1555. */
  readonly errno: number;
  readonly [BRAND] = true;

  constructor(code: string, errno: number, message: string) {
    super(message);
    this.code = code;
    this.errno = errno;
  }

  /** Works across realms and workers, unlike `instanceof`. */
  static is(value: unknown): value is SqliteError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

// https://www.sqlite.org/rescode.html
const PRIMARY: Record<number, string> = {
  0: 'OK',
  1: 'ERROR',
  2: 'INTERNAL',
  3: 'PERM',
  4: 'ABORT',
  5: 'BUSY',
  6: 'LOCKED',
  7: 'NOMEM',
  8: 'READONLY',
  9: 'INTERRUPT',
  10: 'IOERR',
  11: 'CORRUPT',
  12: 'NOTFOUND',
  13: 'FULL',
  14: 'CANTOPEN',
  15: 'PROTOCOL',
  16: 'EMPTY',
  17: 'SCHEMA',
  18: 'TOOBIG',
  19: 'CONSTRAINT',
  20: 'MISMATCH',
  21: 'MISUSE',
  22: 'NOLFS',
  23: 'AUTH',
  24: 'FORMAT',
  25: 'RANGE',
  26: 'NOTADB',
  27: 'NOTICE',
  28: 'WARNING',
  100: 'ROW',
  101: 'DONE',
};

/** Extended codes apps meet in practice; others are named by their primary code. */
const EXTENDED: Record<number, string> = {
  275: 'CONSTRAINT_CHECK',
  531: 'CONSTRAINT_COMMITHOOK',
  787: 'CONSTRAINT_FOREIGNKEY',
  1043: 'CONSTRAINT_FUNCTION',
  1299: 'CONSTRAINT_NOTNULL',
  2835: 'CONSTRAINT_PINNED',
  1555: 'CONSTRAINT_PRIMARYKEY',
  2579: 'CONSTRAINT_ROWID',
  1811: 'CONSTRAINT_TRIGGER',
  2067: 'CONSTRAINT_UNIQUE',
  2323: 'CONSTRAINT_VTAB',
  3091: 'CONSTRAINT_DATATYPE',
  261: 'BUSY_RECOVERY',
  517: 'BUSY_SNAPSHOT',
  773: 'BUSY_TIMEOUT',
  262: 'LOCKED_SHAREDCACHE',
  266: 'IOERR_READ',
  522: 'IOERR_SHORT_READ',
  778: 'IOERR_WRITE',
  1034: 'IOERR_FSYNC',
  1546: 'IOERR_TRUNCATE',
  1802: 'IOERR_FSTAT',
  2058: 'IOERR_UNLOCK',
  3850: 'IOERR_LOCK',
  7434: 'IOERR_BEGIN_ATOMIC',
  7690: 'IOERR_COMMIT_ATOMIC',
  7946: 'IOERR_ROLLBACK_ATOMIC',
  520: 'READONLY_CANTLOCK',
  1032: 'READONLY_DBMOVED',
  516: 'ABORT_ROLLBACK',
  267: 'CORRUPT_VTAB',
  270: 'CANTOPEN_NOTEMPDIR',
};

/** `SQLITE_<NAME>` for a (possibly extended) result code. */
export function sqliteCodeName(errno: number): string {
  const name = EXTENDED[errno] ?? PRIMARY[errno] ?? PRIMARY[errno & 0xff];
  return name === undefined ? `SQLITE_UNKNOWN_${errno}` : `SQLITE_${name}`;
}
