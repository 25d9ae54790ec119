/**
 * What the harness page (`harness/main.ts`) exposes as `window.ferryHarness`
 * for tests to drive with `page.evaluate`. Every argument and result is
 * JSON-safe: SQLite values go through {@link Encoded}.
 */
import type { Encoded } from './wire-values.js';

/** A schema as data: table → column → type; `localOnly` tables listed separately. */
export interface SchemaSpec {
  tables: Record<string, Record<string, 'text' | 'integer' | 'real'>>;
  localOnly?: string[];
}

export interface HarnessError {
  name: string;
  code: string | null;
  errno: number | null;
  message: string;
  /** `SqliteError.is(error)` */
  sqlite: boolean;
  /** `FerryError.is(error)` */
  ferry: boolean;
}

export type HarnessResult<T> = { ok: true; value: T } | { ok: false; error: HarnessError };

export interface EncodedQueryResult {
  rows: Encoded;
  rowsAffected: number;
  insertId: Encoded;
}

export interface HarnessStatus {
  connected: boolean;
  hasSynced: boolean;
  pendingCount: number;
  uploading: boolean;
  downloadError: string | null;
  uploadError: string | null;
}

export interface HarnessApi {
  // ── the driver alone ──
  driverOpen(
    name: string,
    vfs: 'auto' | 'opfs' | 'idb',
    exclusive?: boolean,
  ): Promise<HarnessResult<{ id: number; vfs: string; sqliteVersion: string }>>;
  /**
   * Opens a driver on a special worker: `missing` = its script does not
   * exist; `crashing` = answers `open`, then throws (uncaught) on the next
   * request instead of answering; `no-opfs` = the real worker with
   * `FileSystemSyncAccessHandle` removed.
   */
  driverOpenSpecial(
    worker: 'missing' | 'crashing' | 'no-opfs',
    vfs: 'auto' | 'opfs' | 'idb',
  ): Promise<HarnessResult<{ id: number; vfs: string }>>;
  driverExecute(id: number, sql: string, params?: Encoded[]): Promise<HarnessResult<EncodedQueryResult>>;
  driverExecuteBatch(id: number, sql: string, paramSets: Encoded[][]): Promise<HarnessResult<{ rowsAffected: number }>>;
  driverClose(id: number): Promise<HarnessResult<null>>;
  /** Runs a query on a driver `times` times; returns each duration in ms (no encoding of the rows). */
  driverTimeQuery(
    id: number,
    sql: string,
    params: Encoded[],
    times: number,
  ): Promise<HarnessResult<{ durations: number[]; rows: number }>>;
  // ── a FerryDatabase ──
  open(name: string, vfs: 'auto' | 'opfs' | 'idb', schema: SchemaSpec): Promise<HarnessResult<{ vfs: string }>>;
  execute(sql: string, params?: Encoded[]): Promise<HarnessResult<EncodedQueryResult>>;
  getAll(sql: string, params?: Encoded[]): Promise<HarnessResult<Encoded>>;
  /** Connects with `ferryConnector` (uploads to `<endpoint>/write`). */
  connect(endpoint: string, token: string): Promise<HarnessResult<null>>;
  waitForFirstSync(): Promise<HarnessResult<number>>;
  status(): HarnessStatus;
  /** Starts a watch; results accumulate in {@link watchResults}. */
  watch(sql: string, params?: Encoded[]): number;
  watchResults(id: number): Encoded[];
  /** Runs a query `times` times; returns each duration in ms (performance.now()). */
  timeQuery(
    sql: string,
    params: Encoded[],
    times: number,
  ): Promise<HarnessResult<{ durations: number[]; rows: number }>>;
  close(): Promise<HarnessResult<null>>;
}

declare global {
  interface Window {
    ferryHarness: HarnessApi;
    /** Set once `main.ts` ran (the package is imported; no database is opened yet). */
    ferryHarnessReady?: boolean;
  }
}
