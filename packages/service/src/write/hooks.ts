/**
 * Write hooks: application code the write API runs inside the apply
 * transaction. A hooks module (named by `write_rules.hooks` in ferry.yaml,
 * TypeScript or JavaScript) exports, as its default export or as `hooks`:
 *
 * ```ts
 * import type { WriteHooks } from '@ferry/service';
 *
 * export default {
 *   validate: {
 *     // Runs after each insert, update or delete of a bookings row is written.
 *     async bookings({ op, row, tx, reject, violation }) { ... },
 *   },
 *   merge: {
 *     // Named by `conflicts: { columns: { votes: { merge: add } } }` in the write rules.
 *     add: ({ base, current, incoming }) => Number(current) + Number(incoming) - Number(base ?? 0),
 *   },
 * } satisfies WriteHooks;
 * ```
 */
import type { SqliteValue } from '@ferry/protocol';

/** The verified caller, as hooks see it. */
export interface HookToken {
  /** The token's `sub`. */
  userId: string;
  /** Every claim of the token. */
  claims: Readonly<Record<string, unknown>>;
}

/** The apply transaction: queries run in it and see everything written so far. */
export interface HookTransaction {
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number }>;
}

/** A row another row's violation involves. */
export interface RowRef {
  table: string;
  id: string;
}

export interface ViolationInput {
  /**
   * Identifies the violation within the table's hook (e.g. `overlap:<id1>:<id2>` with the ids
   * sorted): raising the same key again updates it instead of adding another.
   */
  key: string;
  message: string;
  /** A short machine-readable kind (default `violation`). */
  code?: string;
  /** Other rows involved (the op's own row always is). An op on any involved row re-evaluates it. */
  rows?: readonly RowRef[];
  /** Overrides the record's `scope` (default: the op row's `conflicts.scope` column). */
  scope?: string | null;
}

/** What a validation hook receives, once per op, after the op's row was written. */
export interface ValidationContext {
  op: {
    kind: 'insert' | 'update' | 'delete';
    /** The client table name. */
    table: string;
    id: string;
    /** The values the op wrote (after merging), in SQLite form (as the client sent them). */
    data: Readonly<Record<string, SqliteValue>>;
  };
  /** The row as it now is in Postgres (as node-postgres returns it); null after a delete. */
  row: Readonly<Record<string, unknown>> | null;
  tx: HookTransaction;
  token: HookToken;
  /** The client transaction's idempotency key (or a stand-in). */
  transactionId: string;
  /** Rejects the op: its whole transaction is rolled back and answered FERRY_S6010 with this message. */
  reject(message: string, options?: { retryable?: boolean }): never;
  /** Accepts the op and records (or keeps) a violation in `ferry_violations`. */
  violation(input: ViolationInput): void;
}

export type ValidationHook = (context: ValidationContext) => void | Promise<void>;

/** What a merge function receives for one field of one concurrent write. */
export interface MergeContext {
  table: string;
  id: string;
  column: string;
  /** The value the writer saw before its edit (its `old`), or undefined when it did not say. */
  base: SqliteValue | undefined;
  /** The value stored in Postgres now. */
  current: SqliteValue;
  /** The value the writer sent. */
  incoming: SqliteValue;
  token: HookToken;
}

/** Returns the value to store (SQLite form, converted to the column's type like a client value). */
export type MergeFunction = (context: MergeContext) => SqliteValue | Promise<SqliteValue>;

export interface WriteHooks {
  /** Validation hooks by client table name. */
  validate?: Readonly<Record<string, ValidationHook>>;
  /** Merge functions by the name the write rules use (`{ merge: <name> }`). */
  merge?: Readonly<Record<string, MergeFunction>>;
}

/** Identity helper for typing a hooks module without `satisfies`. */
export function defineWriteHooks(hooks: WriteHooks): WriteHooks {
  return hooks;
}
