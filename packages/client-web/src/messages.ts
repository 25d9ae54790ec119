/**
 * The typed message protocol between {@link WebWorkerDriver} (main thread)
 * and the database worker (`worker.ts`). Every request carries a
 * `requestId`; the worker answers each one exactly once, in order, with
 * `ok: true` and the result or `ok: false` and an error *code*, because
 * `Error` objects do not survive `postMessage` with their fields.
 *
 * Values cross by structured clone: `bigint`, `Uint8Array`, strings,
 * numbers and null arrive as they left. Rows travel as value arrays with one
 * column list per result (cheaper to clone than one object per row); the
 * driver builds the row objects.
 */
import type { SqliteParam } from '@ferry/client';

/** Which storage the worker uses: `auto` picks OPFS when the worker has sync access handles, else IndexedDB. */
export type WebVfsChoice = 'auto' | 'opfs' | 'idb';

/** The storage a database was opened on. */
export type WebVfs = 'opfs' | 'idb';

export interface OpenRequest {
  kind: 'open';
  requestId: number;
  /** Database name: a file name in OPFS, or the IndexedDB database name. */
  name: string;
  vfs: WebVfsChoice;
  /** `PRAGMA locking_mode = EXCLUSIVE`: faster, but no other connection (tab) can open the database meanwhile. */
  exclusive: boolean;
}

export interface ExecuteRequest {
  kind: 'execute';
  requestId: number;
  sql: string;
  params: readonly SqliteParam[];
}

export interface ExecuteBatchRequest {
  kind: 'executeBatch';
  requestId: number;
  sql: string;
  paramSets: readonly (readonly SqliteParam[])[];
}

export interface CloseRequest {
  kind: 'close';
  requestId: number;
}

export type WorkerRequest = OpenRequest | ExecuteRequest | ExecuteBatchRequest | CloseRequest;

export type WorkerRequestKind = WorkerRequest['kind'];

/** What `open` answers. */
export interface OpenResult {
  vfs: WebVfs;
  /** `sqlite_version()` of the loaded build. */
  sqliteVersion: string;
}

/** What `execute` answers: rows as value arrays under one column list. */
export interface ExecuteResult {
  columns: string[];
  rows: unknown[][];
  rowsAffected: number;
  insertId: number | bigint | undefined;
}

export interface ExecuteBatchResult {
  rowsAffected: number;
}

/** The result type of each request kind. */
export interface WorkerResults {
  open: OpenResult;
  execute: ExecuteResult;
  executeBatch: ExecuteBatchResult;
  close: null;
}

/**
 * An error as data. `code` is a SQLite result code name
 * (`SQLITE_CONSTRAINT_PRIMARYKEY`, `SQLITE_CANTOPEN`, ...) with `errno` the
 * numeric extended result code, or a Ferry error code (`FERRY_C...`) for
 * errors that are not SQLite's.
 */
export interface WorkerErrorData {
  code: string;
  errno?: number;
  message: string;
}

export type WorkerResponse =
  | { [K in WorkerRequestKind]: { kind: K; requestId: number; ok: true; result: WorkerResults[K] } }[WorkerRequestKind]
  | { kind: WorkerRequestKind; requestId: number; ok: false; error: WorkerErrorData };
