/**
 * One wa-sqlite connection, inside the database worker. Chooses the VFS,
 * loads only that build of SQLite (dynamic import, at open time), applies
 * the PRAGMAs that VFS wants, and runs statements with a prepared-statement
 * cache, returning rows as value arrays.
 *
 * Builds (from @journeyapps/wa-sqlite, PowerSync's maintained fork):
 * - `opfs`: OPFSCoopSyncVFS on the synchronous build (`wa-sqlite.mjs`).
 *   Its methods are synchronous; when it must wait (opening a file, a lock
 *   held by another connection) it queues the async work on
 *   `module.retryOps` and returns SQLITE_BUSY, and the library wrapper
 *   (`sqlite-api.js`: open_v2, prepare, step) awaits it and retries.
 * - `idb`: IDBBatchAtomicVFS on the Asyncify build (`wa-sqlite-async.mjs`):
 *   IndexedDB is asynchronous only, so SQLite must be able to suspend.
 */
import * as SQLite from '@journeyapps/wa-sqlite';
import type { SqliteParam } from '@ferry/client';
import type { ExecuteResult, OpenResult, WebVfs, WebVfsChoice } from './messages.js';
import { sqliteCodeName } from './sqlite-error.js';

// ── the parts of wa-sqlite we use (its bundled typings predate this API) ──

/** The Emscripten module (raw exports). */
interface WasmModule {
  _sqlite3_total_changes(db: number): number;
  _sqlite3_last_insert_rowid(db: number): number;
  _sqlite3_extended_result_codes(db: number, onoff: number): number;
  _sqlite3_bind_zeroblob(stmt: number, index: number, n: number): number;
  getTempRet0(): number;
}

/** `sqlite-api.js`'s `Factory(module)` result. */
interface SqliteApi {
  open_v2(filename: string, flags?: number, vfs?: string): Promise<number>;
  close(db: number): Promise<number>;
  statements(db: number, sql: string, options?: { unscoped?: boolean }): AsyncIterable<number>;
  step(stmt: number): Promise<number>;
  reset(stmt: number): Promise<number>;
  finalize(stmt: number): Promise<number>;
  clear_bindings(stmt: number): number;
  bind_parameter_count(stmt: number): number;
  bind_int(stmt: number, i: number, value: number): number;
  bind_int64(stmt: number, i: number, value: bigint): number;
  bind_double(stmt: number, i: number, value: number): number;
  bind_text(stmt: number, i: number, value: string): number;
  bind_blob(stmt: number, i: number, value: Uint8Array): number;
  bind_null(stmt: number, i: number): number;
  column_names(stmt: number): string[];
  row(stmt: number): unknown[];
  changes(db: number): number;
  vfs_register(vfs: unknown, makeDefault?: boolean): number;
}

interface LoadedBuild {
  module: WasmModule;
  sqlite3: SqliteApi;
  vfsName: string;
  vfs: { close?(): unknown };
}

const SQLITE_ROW = 100;
const MAX_INT64 = 0x7fffffffffffffffn;
const MIN_INT64 = -0x8000000000000000n;
const STATEMENT_CACHE_SIZE = 200;

/** A SQLite error as data (crosses `postMessage`). */
export class WorkerSqliteError extends Error {
  readonly code: string;
  readonly errno: number;

  constructor(errno: number, message: string) {
    super(message);
    this.errno = errno;
    this.code = sqliteCodeName(errno);
  }
}

/** Converts anything thrown by wa-sqlite into a {@link WorkerSqliteError}. */
export function toWorkerError(error: unknown): WorkerSqliteError {
  if (error instanceof WorkerSqliteError) return error;
  if (error instanceof SQLite.SQLiteError) {
    return new WorkerSqliteError(typeof error.code === 'number' ? error.code : SQLite.SQLITE_ERROR, error.message);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new WorkerSqliteError(SQLite.SQLITE_ERROR, message);
}

/** Whether this context can use OPFSCoopSyncVFS (a dedicated worker with sync access handles). */
export function opfsAvailable(): boolean {
  const scope = globalThis as {
    FileSystemSyncAccessHandle?: unknown;
    navigator?: { storage?: { getDirectory?: unknown } };
  };
  return (
    typeof scope.FileSystemSyncAccessHandle === 'function' &&
    typeof scope.navigator?.storage?.getDirectory === 'function'
  );
}

async function loadBuild(vfs: WebVfs, dbName: string): Promise<LoadedBuild> {
  if (vfs === 'opfs') {
    const [{ default: factory }, { OPFSCoopSyncVFS }] = await Promise.all([
      import('@journeyapps/wa-sqlite/dist/wa-sqlite.mjs'),
      // @ts-expect-error -- no typings for this example VFS
      import('@journeyapps/wa-sqlite/src/examples/OPFSCoopSyncVFS.js') as Promise<{
        OPFSCoopSyncVFS: { create(name: string, module: unknown): Promise<{ close?(): unknown }> };
      }>,
    ]);
    const module = (await factory()) as WasmModule;
    const sqlite3 = SQLite.Factory(module) as unknown as SqliteApi;
    const vfsName = 'ferry-opfs';
    const instance = await OPFSCoopSyncVFS.create(vfsName, module);
    sqlite3.vfs_register(instance, false);
    return { module, sqlite3, vfsName, vfs: instance };
  }
  const [{ default: factory }, { IDBBatchAtomicVFS }] = await Promise.all([
    import('@journeyapps/wa-sqlite/dist/wa-sqlite-async.mjs'),
    import('@journeyapps/wa-sqlite/src/examples/IDBBatchAtomicVFS.js') as unknown as Promise<{
      IDBBatchAtomicVFS: {
        create(name: string, module: unknown, options?: { idbName?: string }): Promise<{ close?(): unknown }>;
      };
    }>,
  ]);
  const module = (await factory()) as WasmModule;
  const sqlite3 = SQLite.Factory(module) as unknown as SqliteApi;
  const vfsName = 'ferry-idb';
  // One IndexedDB database per Ferry database, named after it.
  const instance = await IDBBatchAtomicVFS.create(vfsName, module, { idbName: `ferry:${dbName}` });
  sqlite3.vfs_register(instance, false);
  return { module, sqlite3, vfsName, vfs: instance };
}

/**
 * PRAGMAs per VFS.
 * - Both: foreign keys on (as the Node driver), temp tables in memory (the
 *   client's `ferry_batch` staging table; OPFSCoopSyncVFS only has a small
 *   pool of temp-file handles), a 32 MB page cache.
 * - `idb`: IDBBatchAtomicVFS reports SQLITE_IOCAP_BATCH_ATOMIC, so a
 *   transaction whose changes fit in the page cache commits as one
 *   IndexedDB transaction with no journal file at all; the large cache lets
 *   a whole checkpoint apply do that. synchronous stays FULL ("strict"
 *   durability): a commit returns only once its IndexedDB transaction has
 *   completed. With NORMAL the VFS returns before the IndexedDB transaction
 *   even completes, and a page closed right after a write lost that write
 *   (seen under load: 99 of 100 autocommitted rows after close + reopen):
 *   a local write the app was told is saved must never vanish.
 * - `opfs`: the default rollback journal (journal_mode=DELETE; the VFS
 *   keeps the journal's access handle open, so deleting it is cheap, and it
 *   refuses TRUNCATE/PERSIST). synchronous stays FULL: flushing an access
 *   handle is cheap, and NORMAL is not power-safe with a rollback journal.
 *   WAL would need locking_mode=EXCLUSIVE (no shared memory in a VFS),
 *   which would lock every other tab out of the file.
 * - `exclusive` (opt-in): locking_mode=EXCLUSIVE keeps the file lock (a Web
 *   Lock for IDB, the access handle for OPFS) between statements and keeps
 *   the page cache valid without re-checking the file: an indexed 500-row
 *   read went from 1.8 to 1.1 ms (OPFS) and 3.7 to 1.8 ms (IDB). Another
 *   tab cannot open the database meanwhile, so it is for a single owner
 *   (e.g. the leader tab or a shared worker).
 */
function pragmasFor(exclusive: boolean): string[] {
  const common = ['PRAGMA foreign_keys = ON', 'PRAGMA temp_store = MEMORY', 'PRAGMA cache_size = -32000'];
  if (exclusive) common.unshift('PRAGMA locking_mode = EXCLUSIVE');
  return [...common, 'PRAGMA synchronous = FULL'];
}

interface CachedStatement {
  stmt: number;
  paramCount: number;
}

export class WaSqliteDatabase {
  private build: LoadedBuild | null = null;
  private db = 0;
  /** LRU of prepared single statements by SQL text. */
  private readonly statements = new Map<string, CachedStatement>();
  /** SQL texts holding several statements: run one by one, never cached. */
  private readonly multi = new Set<string>();
  vfs: WebVfs | null = null;

  async open(name: string, choice: WebVfsChoice, exclusive = false): Promise<OpenResult> {
    if (this.build !== null) throw new WorkerSqliteError(SQLite.SQLITE_MISUSE, 'the database is already open');
    const canOpfs = opfsAvailable();
    if (choice === 'opfs' && !canOpfs) {
      throw new WorkerSqliteError(
        SQLite.SQLITE_CANTOPEN,
        'OPFS is not available here (no FileSystemSyncAccessHandle in this worker, or not a secure context); use vfs: "auto" or "idb"',
      );
    }
    const vfs: WebVfs = choice === 'idb' || !canOpfs ? 'idb' : 'opfs';
    const build = await loadBuild(vfs, name);
    let db: number;
    try {
      db = await build.sqlite3.open_v2(name, SQLite.SQLITE_OPEN_CREATE | SQLite.SQLITE_OPEN_READWRITE, build.vfsName);
    } catch (error) {
      await build.vfs.close?.();
      throw toWorkerError(error);
    }
    this.build = build;
    this.db = db;
    this.vfs = vfs;
    build.module._sqlite3_extended_result_codes(db, 1);
    for (const pragma of pragmasFor(exclusive)) await this.execute(pragma, []);
    const version = await this.execute('SELECT sqlite_version() AS v', []);
    return { vfs, sqliteVersion: String(version.rows[0]?.[0]) };
  }

  private get api(): LoadedBuild {
    if (this.build === null) throw new WorkerSqliteError(SQLite.SQLITE_MISUSE, 'the database is not open');
    return this.build;
  }

  /** Runs `sql` (one statement, or several run in order: the last one's rows are returned). */
  async execute(sql: string, params: readonly SqliteParam[]): Promise<ExecuteResult> {
    const { sqlite3, module } = this.api;
    const before = module._sqlite3_total_changes(this.db);
    let columns: string[] = [];
    let rows: unknown[][] = [];
    if (this.multi.has(sql)) {
      await this.runEach(sql, params, (c, r) => ((columns = c), (rows = r)));
    } else {
      const cached = this.statements.get(sql);
      if (cached !== undefined) {
        this.statements.delete(sql);
        this.statements.set(sql, cached);
        ({ columns, rows } = await this.run(cached, params));
      } else {
        const count = await this.runEach(
          sql,
          params,
          (c, r) => ((columns = c), (rows = r)),
          (stmt) => {
            this.cache(sql, stmt);
          },
        );
        if (count > 1) this.multi.add(sql);
      }
    }
    const changed = module._sqlite3_total_changes(this.db) !== before;
    const rowsAffected = changed ? sqlite3.changes(this.db) : 0;
    return { columns, rows, rowsAffected, insertId: rowsAffected > 0 ? this.lastInsertRowid() : undefined };
  }

  /**
   * Prepares and runs each statement of `sql` in turn (a statement is only
   * prepared after the previous one ran: it may depend on it). When `sql`
   * is exactly one statement, `keep` takes it (cached); otherwise each is
   * finalized. Returns the number of statements.
   */
  private async runEach(
    sql: string,
    params: readonly SqliteParam[],
    onResult: (columns: string[], rows: unknown[][]) => void,
    keep?: (stmt: CachedStatement) => void,
  ): Promise<number> {
    const { sqlite3 } = this.api;
    let count = 0;
    let pending: CachedStatement | null = null;
    try {
      for await (const stmt of sqlite3.statements(this.db, sql, { unscoped: true })) {
        if (pending !== null) {
          await sqlite3.finalize(pending.stmt);
          pending = null;
        }
        count++;
        const prepared: CachedStatement = { stmt, paramCount: sqlite3.bind_parameter_count(stmt) };
        pending = prepared;
        // Parameters go to the first statement that has any, as better-sqlite3's exec has none at all.
        const result = await this.run(prepared, count === 1 ? params : []);
        onResult(result.columns, result.rows);
      }
    } catch (error) {
      if (pending !== null) await sqlite3.finalize(pending.stmt);
      throw toWorkerError(error);
    }
    if (pending !== null) {
      if (count === 1 && keep !== undefined) keep(pending);
      else await sqlite3.finalize(pending.stmt);
    }
    return count;
  }

  private cache(sql: string, stmt: CachedStatement): void {
    if (this.statements.size >= STATEMENT_CACHE_SIZE) {
      const [oldest, evicted] = this.statements.entries().next().value!;
      this.statements.delete(oldest);
      void this.api.sqlite3.finalize(evicted.stmt);
    }
    this.statements.set(sql, stmt);
  }

  /** Binds, steps to the end and resets one statement. */
  private async run(
    prepared: CachedStatement,
    params: readonly SqliteParam[],
  ): Promise<{ columns: string[]; rows: unknown[][] }> {
    const { sqlite3 } = this.api;
    const { stmt } = prepared;
    try {
      this.bind(prepared, params);
      const rows: unknown[][] = [];
      while ((await sqlite3.step(stmt)) === SQLITE_ROW) rows.push(sqlite3.row(stmt));
      // Names after stepping: SQLite re-prepares a statement whose schema changed when it first steps.
      const columns = sqlite3.column_names(stmt);
      return { columns, rows };
    } catch (error) {
      throw toWorkerError(error);
    } finally {
      try {
        await sqlite3.reset(stmt);
      } catch {
        // reset repeats the step's error, already thrown
      }
    }
  }

  private bind(prepared: CachedStatement, params: readonly SqliteParam[]): void {
    const { sqlite3 } = this.api;
    const { stmt, paramCount } = prepared;
    if (params.length > paramCount) {
      throw new WorkerSqliteError(
        SQLite.SQLITE_RANGE,
        `too many parameter values: the statement takes ${paramCount}, got ${params.length}`,
      );
    }
    if (paramCount === 0) return;
    sqlite3.clear_bindings(stmt);
    for (let i = 0; i < params.length; i++) {
      const value = params[i];
      const index = i + 1;
      let rc: number;
      if (value === null || value === undefined) rc = sqlite3.bind_null(stmt, index);
      else if (typeof value === 'string') rc = sqlite3.bind_text(stmt, index, value);
      else if (typeof value === 'number') {
        // Integral numbers bind as INTEGER (wa-sqlite itself would bind those beyond 32 bits as REAL).
        if (Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff) {
          rc = sqlite3.bind_int(stmt, index, value);
        } else if (Number.isSafeInteger(value)) rc = sqlite3.bind_int64(stmt, index, BigInt(value));
        else rc = sqlite3.bind_double(stmt, index, value);
      } else if (typeof value === 'bigint') {
        if (value > MAX_INT64 || value < MIN_INT64) {
          throw new WorkerSqliteError(SQLite.SQLITE_RANGE, `parameter ${index}: ${value} does not fit in 64 bits`);
        }
        rc = sqlite3.bind_int64(stmt, index, value);
      } else if (typeof value === 'boolean') rc = sqlite3.bind_int(stmt, index, value ? 1 : 0);
      else if (value instanceof Uint8Array) {
        // wa-sqlite binds an empty blob as a NULL pointer, i.e. SQL NULL; a zero-length blob must stay a blob.
        rc =
          value.byteLength === 0
            ? this.api.module._sqlite3_bind_zeroblob(stmt, index, 0)
            : sqlite3.bind_blob(stmt, index, value);
      } else {
        throw new WorkerSqliteError(SQLite.SQLITE_MISMATCH, `parameter ${index}: cannot bind a ${typeof value}`);
      }
      if (rc !== SQLite.SQLITE_OK) throw new WorkerSqliteError(rc, `parameter ${index}: bind failed`);
    }
  }

  private lastInsertRowid(): number | bigint {
    const { module } = this.api;
    const lo = module._sqlite3_last_insert_rowid(this.db);
    const hi = module.getTempRet0();
    const value = (BigInt(hi) << 32n) | (BigInt(lo) & 0xffffffffn);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  /** Runs one statement once per parameter set (prepared once); returns the rows changed. */
  async executeBatch(sql: string, paramSets: readonly (readonly SqliteParam[])[]): Promise<{ rowsAffected: number }> {
    const { sqlite3, module } = this.api;
    if (paramSets.length === 0) return { rowsAffected: 0 };
    let prepared = this.statements.get(sql);
    let rowsAffected = 0;
    let start = 0;
    if (prepared === undefined) {
      // First use: prepare (and run the first set) through execute, which caches single statements.
      rowsAffected += (await this.execute(sql, paramSets[0]!)).rowsAffected;
      start = 1;
      prepared = this.statements.get(sql);
      if (prepared === undefined) {
        for (let i = 1; i < paramSets.length; i++)
          rowsAffected += (await this.execute(sql, paramSets[i]!)).rowsAffected;
        return { rowsAffected };
      }
    }
    for (let i = start; i < paramSets.length; i++) {
      const before = module._sqlite3_total_changes(this.db);
      await this.run(prepared, paramSets[i]!);
      if (module._sqlite3_total_changes(this.db) !== before) rowsAffected += sqlite3.changes(this.db);
    }
    return { rowsAffected };
  }

  async close(): Promise<void> {
    const build = this.build;
    if (build === null) return;
    this.build = null;
    for (const { stmt } of this.statements.values()) await build.sqlite3.finalize(stmt);
    this.statements.clear();
    try {
      await build.sqlite3.close(this.db);
    } finally {
      await build.vfs.close?.();
    }
  }
}
