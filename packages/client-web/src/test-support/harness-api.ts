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
  /** table → index name → columns. */
  indexes?: Record<string, Record<string, string[]>>;
}

/** `openFerryDatabase` options a test may set. */
export interface OpenSpec {
  multiTab?: boolean;
  exclusive?: boolean;
}

/**
 * Set by the page (`window.ferryAutostart`) when it was loaded with
 * `#autostart=<json AutostartSpec>`: it opens, connects and waits for the
 * first sync as soon as the script runs, and records when (ms since the
 * navigation started, `performance.now()`).
 */
export interface AutostartSpec {
  name: string;
  vfs: 'auto' | 'opfs' | 'idb';
  schema: SchemaSpec;
  endpoint: string;
  token: string;
}

export type AutostartState =
  | { state: 'running' }
  | { state: 'done'; openedAt: number; connectedAt: number; firstSyncAt: number }
  | { state: 'failed'; error: HarnessError };

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
  isSyncLeader: boolean;
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
  open(
    name: string,
    vfs: 'auto' | 'opfs' | 'idb',
    schema: SchemaSpec,
    options?: OpenSpec,
  ): Promise<HarnessResult<{ vfs: string; multiTab: boolean }>>;
  execute(sql: string, params?: Encoded[]): Promise<HarnessResult<EncodedQueryResult>>;
  /**
   * Runs `sql` once per parameter set, in order: each in its own
   * transaction, or all in one `writeTransaction` with `transaction: true`.
   * Stops at the first error.
   */
  executeEach(sql: string, paramSets: Encoded[][], transaction?: boolean): Promise<HarnessResult<number>>;
  /** `execute`, with the epoch times (ms, `performance.timeOrigin + performance.now()`) around it. */
  timedExecute(sql: string, params?: Encoded[]): Promise<HarnessResult<{ startedAt: number; endedAt: number }>>;
  getAll(sql: string, params?: Encoded[]): Promise<HarnessResult<Encoded>>;
  /** Connects with `ferryConnector` (uploads to `<endpoint>/write`). */
  connect(endpoint: string, token: string): Promise<HarnessResult<null>>;
  waitForFirstSync(): Promise<HarnessResult<number>>;
  disconnect(): Promise<HarnessResult<null>>;
  status(): HarnessStatus;
  /** Starts a watch; results accumulate in {@link watchResults}. */
  watch(sql: string, params?: Encoded[]): number;
  watchResults(id: number): Encoded[];
  /** When each result of {@link watchResults} arrived: epoch ms (`performance.timeOrigin + performance.now()`). */
  watchTimes(id: number): number[];
  /**
   * Resolves with the epoch time (see {@link watchTimes}) of the first
   * result of watch `id` equal to `expected` (compared as JSON), waiting
   * for it up to `timeoutMs`.
   */
  watchUntil(id: number, expected: Encoded, timeoutMs: number): Promise<HarnessResult<number>>;
  /** Runs a query `times` times; returns each duration in ms (performance.now()). */
  timeQuery(
    sql: string,
    params: Encoded[],
    times: number,
  ): Promise<HarnessResult<{ durations: number[]; rows: number }>>;
  /** Runs a query once per parameter set (in order); returns each duration in ms and row count. */
  timeQueries(sql: string, paramSets: Encoded[][]): Promise<HarnessResult<{ durations: number[]; rows: number[] }>>;
  close(): Promise<HarnessResult<null>>;
}

declare global {
  interface Window {
    ferryHarness: HarnessApi;
    /** Set once `main.ts` ran (the package is imported; no database is opened yet). */
    ferryHarnessReady?: boolean;
    /** Set when the page was loaded with `#autostart=` (see {@link AutostartSpec}). */
    ferryAutostart?: AutostartState;
  }
}
