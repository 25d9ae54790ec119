import { FerryError } from '@ferry/protocol';
import { BucketStore } from './bucket-store.js';
import {
  BUILTIN_TABLES,
  conflictFromRow,
  conflictsQuery,
  resolveConflict,
  violationFromRow,
  violationsQuery,
  type Conflict,
  type ConflictFilter,
  type ConflictResolution,
  type Violation,
} from './conflicts.js';
import type { FerryConnector } from './connector.js';
import {
  KV_ACKED_WRITE_CHECKPOINT,
  moveToOverlay,
  OVERLAY_TABLE_DDL,
  overlayAwaitingCheckpoint,
  rebuildRows,
  rowsWithLocalOps,
  setOverlayCheckpoint,
  takeAcknowledgedOverlay,
} from './overlay.js';
import {
  clearRejections,
  readRejections,
  recordRejections,
  REJECTIONS_TABLE,
  REJECTIONS_TABLE_DDL,
  type RejectedWrite,
} from './rejections.js';
import type { SqliteConnection, SqliteDriver, SqliteParam, SqliteQueryResult } from './driver.js';
import {
  BATCH_TABLE_DDL,
  FORMAT_VERSION,
  INTERNAL_TABLES_DDL,
  KV_CLIENT_ID,
  KV_FORMAT,
  KV_LAST_SYNCED_AT,
  MIGRATE_FORMAT_1_TO_2,
} from './internal-tables.js';
import { applySchema } from './local-schema.js';
import {
  CRUD_TABLE_DDL,
  dropCrudTriggers,
  installCrudTriggers,
  queueSummary,
  readQueuedOps,
  stampPendingOps,
  upgradeCrudTable,
  withCrudSuppressed,
  type CompleteOptions,
  type CrudBatch,
  type CrudEntry,
  type CrudTransaction,
} from './upload-queue.js';
import { UploadLoop, type UploadHost } from './upload-loop.js';
import { silentLogger, type FerryLogger } from './logger.js';
import { Mutex } from './mutex.js';
import { quoteIdentifier, type ResolvedTable, type Schema } from './schema.js';
import { SyncClient, type SyncHost, type SyncOptions } from './sync-client.js';
import { INITIAL_STATUS, patchStatus, type SyncStatus, type SyncStatusPatch } from './sync-status.js';
import { TableChangeEmitter, touches, visibleTables } from './table-changes.js';
import { TabCoordinator, type TabHost, type TabsOptions } from './multi-tab.js';
import { TableUsageAnalyzer } from './table-usage.js';
import { startWatch, watchIterable, type WatchHost } from './watch.js';

export interface FerryDatabaseOptions {
  schema: Schema;
  /** The SQLite database, from a platform package (e.g. `@ferry/client-node`). */
  driver: SqliteDriver;
  logger?: FerryLogger;
  /** Default `fetch` for `connect()` (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /**
   * The wall clock (ms since the epoch) that HLC stamps of local writes
   * follow. Default `Date.now`; tests use it to play a device whose clock
   * is off.
   */
  now?: () => number;
  /**
   * Coordinate with other tabs (or workers, processes) that open the same
   * database file: one of them syncs, every write is serialized through a
   * shared lock, and changes, queue growth and the sync status are shared.
   * See {@link TabsOptions}; without it the database assumes it is alone.
   */
  tabs?: TabsOptions;
}

/** One `connect()`: its connector, and (with `tabs`) the wait for and holding of the sync lock. */
interface Connection {
  readonly connector: FerryConnector;
  readonly options: ConnectOptions;
  readonly controller: AbortController;
  /** Resolves once this connection has ended (loops stopped, sync lock released). */
  done: Promise<void>;
}

export type ConnectOptions = SyncOptions;

/** Statements inside a read or write transaction. */
export interface QueryContext {
  /** Runs one statement. */
  execute<T = Record<string, unknown>>(sql: string, params?: readonly SqliteParam[]): Promise<SqliteQueryResult<T>>;
  /** All rows of a query. */
  getAll<T = Record<string, unknown>>(sql: string, params?: readonly SqliteParam[]): Promise<T[]>;
  /** The first row; rejects with FERRY_C1007 when there is none. */
  get<T = Record<string, unknown>>(sql: string, params?: readonly SqliteParam[]): Promise<T>;
  /** The first row, or null. */
  getOptional<T = Record<string, unknown>>(sql: string, params?: readonly SqliteParam[]): Promise<T | null>;
}

export interface WatchOptions {
  /** Stops the watch. */
  signal?: AbortSignal;
}

export interface WatchCallbacks<T> extends WatchOptions {
  /** Called with the current rows at once, then whenever they change. */
  onResult(rows: T[]): void;
  onError?(error: unknown): void;
}

export interface ChangeEvent {
  /**
   * Tables changed by one committed transaction or applied checkpoint.
   * Ferry's internal tables are never listed, except `ferry_rejections`,
   * `ferry_conflicts` and `ferry_violations`.
   */
  changedTables: string[];
}

export interface OnChangeOptions {
  /** Only report changes touching these tables (default: all). */
  tables?: readonly string[];
  onChange(event: ChangeEvent): void;
  signal?: AbortSignal;
}

export interface StatusListener {
  statusChanged?(status: SyncStatus): void;
}

/**
 * A local-first database: typed SQLite tables the app queries directly,
 * kept in sync with a Ferry service in the background.
 *
 * Reads never wait for the network. Downloaded data becomes visible one
 * complete checkpoint at a time, in one transaction, so a reader or watcher
 * never sees half a checkpoint.
 */
export class FerryDatabase {
  readonly schema: Schema;
  /** The schema's tables plus the built-in synced ones (`ferry_conflicts`, `ferry_violations`). */
  private readonly tables: readonly ResolvedTable[];
  private readonly driver: SqliteDriver;
  private readonly logger: FerryLogger;
  private readonly defaultFetch: typeof fetch | undefined;
  private readonly now: () => number;
  private readonly writeMutex = new Mutex();
  private readonly readMutex: Mutex;
  private readonly reader: SqliteConnection;
  private readonly analyzer = new TableUsageAnalyzer();
  private readonly changes = new TableChangeEmitter();
  private readonly store = new BucketStore();
  private readonly statusListeners = new Set<StatusListener>();
  private status: SyncStatus = INITIAL_STATUS;
  private initialized: Promise<void> | null = null;
  private sync: SyncClient | null = null;
  private uploads: UploadLoop | null = null;
  /** Resolves once every loop stop requested so far has finished. */
  private stopping: Promise<void> = Promise.resolve();
  private connection: Connection | null = null;
  private readonly tabs: TabCoordinator | null;
  /** Queue summaries are numbered when read; an older one never replaces a newer one in the status. */
  private queueSeq = 0;
  private queueShown = 0;
  private closed = false;
  private cachedClientId: string | null = null;
  private firstSyncWaiters = new Set<() => void>();

  constructor(options: FerryDatabaseOptions) {
    this.schema = options.schema;
    this.tables = [...options.schema.resolved, ...BUILTIN_TABLES];
    this.driver = options.driver;
    this.logger = options.logger ?? silentLogger;
    this.defaultFetch = options.fetch;
    this.now = options.now ?? Date.now;
    this.reader = options.driver.reader ?? options.driver.writer;
    // Without a separate reader, reads share the writer and must wait for its transactions.
    this.readMutex = options.driver.reader === undefined ? this.writeMutex : new Mutex();
    this.tabs = options.tabs === undefined ? null : new TabCoordinator(options.tabs, this.tabHost(), randomId());
    this.tabs?.start();
  }

  // ── lifecycle ─────────────────────────────────────────────────────────────

  /**
   * Creates Ferry's internal tables and brings the schema's tables, columns
   * and indexes up to date (filling new synced columns from kept row data).
   * Idempotent; every other method calls it first.
   */
  init(): Promise<void> {
    this.initialized ??= this.doInit();
    return this.initialized;
  }

  private async doInit(): Promise<void> {
    this.assertOpen();
    const changed = await this.writeLocked(async (conn) => {
      await conn.execute(INTERNAL_TABLES_DDL[0]!); // ferry_kv, which records the format
      const format = await this.kv(conn, KV_FORMAT);
      if (format === '1') {
        for (const sql of MIGRATE_FORMAT_1_TO_2) await conn.execute(sql);
      } else if (format !== null && format !== FORMAT_VERSION) {
        throw new FerryError(
          'FERRY_C1005',
          `database format ${format} is not supported by this client (expects ${FORMAT_VERSION})`,
        );
      }
      for (const ddl of INTERNAL_TABLES_DDL) await conn.execute(ddl);
      for (const ddl of [...CRUD_TABLE_DDL, ...OVERLAY_TABLE_DDL, ...REJECTIONS_TABLE_DDL]) await conn.execute(ddl);
      await upgradeCrudTable(conn);
      if (format !== FORMAT_VERSION) await this.setKv(conn, KV_FORMAT, FORMAT_VERSION);
      // Filling tables from kept row data is not a local write: no queue triggers meanwhile.
      await dropCrudTriggers(conn);
      const tables = await applySchema(conn, this.tables, this.store);
      // Refilled from kept row data = server state: pending local writes go back on top.
      const pendingRows = await rowsWithLocalOps(conn, [...tables]);
      if (pendingRows.length > 0) await rebuildRows(conn, this.tables, pendingRows);
      await installCrudTriggers(conn, this.tables);
      const queue = await queueSummary(conn);
      this.setStatus({ pendingCount: queue.count, oldestPendingAt: queue.oldestAt });
      const lastSynced = await this.kv(conn, KV_LAST_SYNCED_AT);
      if (lastSynced !== null) this.setStatus({ lastSyncedAt: new Date(lastSynced), hasSynced: true });
      return tables;
    });
    await this.driver.writer.execute(BATCH_TABLE_DDL);
    this.analyzer.invalidate();
    this.committed(changed);
  }

  /** Disconnects and closes the database. Pending and later calls reject with FERRY_C1006. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.disconnect();
    const closeDriver = async (): Promise<void> => {
      this.closed = true;
      await this.driver.close();
    };
    // Wait for every running transaction on both connections (one mutex when they are the same).
    await this.writeMutex.run(() =>
      this.readMutex === this.writeMutex ? closeDriver() : this.readMutex.run(closeDriver),
    );
    // Only now: the transactions that were running have told the other tabs about their changes.
    this.tabs?.close();
    for (const resolve of this.firstSyncWaiters) resolve();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private assertOpen(): void {
    if (this.closed) throw new FerryError('FERRY_C1006', 'the database is closed');
  }

  private async ready(): Promise<void> {
    this.assertOpen();
    await this.init();
  }

  // ── queries ───────────────────────────────────────────────────────────────

  /**
   * Runs one statement on the write connection (any statement: reads see
   * the latest writes). Tables it writes are reported to watchers and
   * `onChange` listeners after it commits.
   */
  async execute<T = Record<string, unknown>>(
    sql: string,
    params: readonly SqliteParam[] = [],
  ): Promise<SqliteQueryResult<T>> {
    await this.ready();
    return this.writeTransaction((tx) => tx.execute<T>(sql, params));
  }

  /** Every row of a read query, from committed data. */
  async getAll<T = Record<string, unknown>>(sql: string, params: readonly SqliteParam[] = []): Promise<T[]> {
    await this.ready();
    return this.readLocked(async (conn) => (await conn.execute(sql, params)).rows as T[]);
  }

  /** The first row of a read query; rejects with FERRY_C1007 when there is none. */
  async get<T = Record<string, unknown>>(sql: string, params: readonly SqliteParam[] = []): Promise<T> {
    const row = await this.getOptional<T>(sql, params);
    if (row === null) throw noResult(sql);
    return row;
  }

  /** The first row of a read query, or null. */
  async getOptional<T = Record<string, unknown>>(sql: string, params: readonly SqliteParam[] = []): Promise<T | null> {
    const rows = await this.getAll<T>(sql, params);
    return rows[0] ?? null;
  }

  /** Runs `fn` in a read transaction: one consistent snapshot of committed data. */
  async readTransaction<T>(fn: (tx: QueryContext) => Promise<T>): Promise<T> {
    await this.ready();
    return this.readLocked(async (conn) => {
      await conn.execute('BEGIN');
      try {
        const result = await fn(this.context(conn, null));
        return result;
      } finally {
        await conn.execute('COMMIT');
      }
    });
  }

  /**
   * Runs `fn` in a write transaction, serialized with every other write
   * (including applied checkpoints). Commits when `fn` resolves, rolls back
   * when it throws. Changed tables are reported after the commit.
   *
   * Writes to synced tables are queued for upload (see
   * {@link getCrudBatch}) in the same transaction, all under one
   * transaction id, and stay visible until the server's data reflects them
   * (downloaded checkpoints apply underneath, the write is re-applied on
   * top) or the server rejects them. While connected, the sync loop uploads
   * them through the connector's `uploadData`.
   */
  async writeTransaction<T>(fn: (tx: QueryContext) => Promise<T>): Promise<T> {
    await this.ready();
    const written = { tables: new Set<string>(), unknown: false };
    const now = this.now();
    const [result, queued, queue] = await this.writeLocked(async (conn) => {
      const value = await fn(this.context(conn, written));
      const queued = await stampPendingOps(conn, () => this.ensureClientId(conn), now);
      // Other tabs change the queue too: count it rather than add to a count that may be stale.
      const queue = queued > 0 && this.tabs !== null ? await queueSummary(conn) : null;
      return [value, queued, queue] as const;
    });
    if (queue !== null) {
      this.showQueue(++this.queueSeq, queue);
    } else if (queued > 0) {
      this.setStatus({
        pendingCount: this.status.pendingCount + queued,
        oldestPendingAt: this.status.oldestPendingAt ?? new Date(now),
      });
    }
    if (queued > 0) this.uploads?.trigger();
    this.committed(written.tables, written.unknown);
    if (queued > 0) this.tabs?.postQueueChanged(); // wakes the leader's upload loop
    return result;
  }

  // ── upload queue ──────────────────────────────────────────────────────────

  /**
   * The first `limit` queued local writes, oldest first, or null when the
   * queue is empty. The last transaction may be cut, unless
   * `wholeTransactions` is set: then fewer ops come so that every
   * transaction is whole (a first transaction larger than `limit` comes
   * whole, alone). `complete()` settles them (see {@link CompleteOptions}).
   */
  async getCrudBatch(limit = 100, options: { wholeTransactions?: boolean } = {}): Promise<CrudBatch | null> {
    await this.ready();
    const { entries, haveMore } = await this.writeMutex.run(async () => {
      this.assertOpen();
      return readQueuedOps(this.driver.writer, {
        limit: Math.max(1, Math.floor(limit)),
        wholeTransactions: options.wholeTransactions === true,
      });
    });
    if (entries.length === 0) return null;
    return { crud: entries, haveMore, complete: (settled) => this.completeOps(entries, settled) };
  }

  /** The ops of the oldest queued local transaction, or null when the queue is empty. */
  async getNextCrudTransaction(): Promise<CrudTransaction | null> {
    await this.ready();
    const { entries } = await this.writeMutex.run(async () => {
      this.assertOpen();
      return readQueuedOps(this.driver.writer, { firstTransaction: true });
    });
    if (entries.length === 0) return null;
    return {
      crud: entries,
      transactionId: entries[0]!.transactionId,
      complete: (settled) => this.completeOps(entries, settled),
    };
  }

  /**
   * Settles handled ops in one transaction: applied ones move to the
   * overlay, rejected ones to `ferry_rejections` with their rows rebuilt
   * from server state (plus the pending ops still on them).
   */
  private async completeOps(entries: readonly CrudEntry[], options: CompleteOptions = {}): Promise<void> {
    await this.ready();
    let handled: readonly CrudEntry[] = entries;
    if (options.through !== undefined) {
      const through = options.through.clientId;
      const at = entries.findIndex((e) => e.clientId === through);
      if (at < 0) throw new RangeError('complete({ through }): that entry is not part of this batch');
      handled = entries.slice(0, at + 1);
    }
    const handledIds = new Set(handled.map((e) => e.clientId));
    const rejected = options.rejected ?? [];
    for (const r of rejected) {
      if (!handledIds.has(r.op.clientId)) {
        throw new RangeError('complete({ rejected }): every rejected op must be a handled entry of this batch');
      }
    }
    const rejectedIds = new Set(rejected.map((r) => r.op.clientId));
    const applied = handled.filter((e) => !rejectedIds.has(e.clientId)).map((e) => e.clientId);
    const synced = this.tables.filter((t) => !t.localOnly);
    const now = this.now();
    const { queue, changed } = await this.writeLocked((conn) =>
      withCrudSuppressed(conn, async () => {
        await moveToOverlay(conn, applied, options.writeCheckpoint ?? null);
        let changed = new Set<string>();
        if (options.writeCheckpoint !== undefined) {
          changed = await rebuildRows(conn, synced, await takeAcknowledgedOverlay(conn));
        }
        if (rejected.length > 0) {
          for (const table of await rebuildRows(conn, synced, await recordRejections(conn, rejected, now))) {
            changed.add(table);
          }
          changed.add(REJECTIONS_TABLE);
        }
        return { queue: await queueSummary(conn), changed };
      }),
    );
    for (const r of rejected) {
      this.logger.warn('ferry upload: write rejected (FERRY_C1010)', {
        table: r.op.table,
        id: r.op.id,
        op: r.op.op,
        code: r.code,
        message: r.message,
      });
    }
    this.showQueue(++this.queueSeq, queue);
    this.committed(changed);
    this.tabs?.postQueueChanged();
    this.uploads?.trigger(); // a write checkpoint for the ops just moved to the overlay
  }

  // ── rejections ────────────────────────────────────────────────────────────

  /**
   * Local writes the server rejected, oldest first, with the server's code
   * and message (also readable and watchable as the table
   * `ferry_rejections`). They stay until {@link clearRejections}.
   */
  async getRejections(): Promise<RejectedWrite[]> {
    await this.ready();
    return this.readLocked((conn) => readRejections(conn));
  }

  /** Deletes the rejections with these ids (all of them without `ids`). Returns how many went. */
  async clearRejections(ids?: readonly number[]): Promise<number> {
    await this.ready();
    const removed = await this.writeLocked((conn) => clearRejections(conn, ids));
    if (removed > 0) this.committed([REJECTIONS_TABLE]);
    return removed;
  }

  // ── conflicts and violations ──────────────────────────────────────────────

  /**
   * Values that lost a field-level merge on the server (synced from
   * `ferry_conflicts` when the app's sync rules select it), oldest first
   * (`createdAt`, then `id`), optionally only those of one table and/or row.
   */
  async getConflicts(filter: ConflictFilter = {}): Promise<Conflict[]> {
    const { sql, params } = conflictsQuery(filter);
    return (await this.getAll(sql, params)).map(conflictFromRow);
  }

  /**
   * Watches {@link getConflicts}: the current list at once, then the new
   * list whenever it changed (a local resolution, a synced checkpoint).
   * Takes `onResult` alone or the callbacks of {@link watch}. Returns an
   * unsubscribe function; `signal` also stops it.
   */
  watchConflicts(
    filter: ConflictFilter | undefined,
    callbacks: WatchCallbacks<Conflict> | ((conflicts: Conflict[]) => void),
  ): () => void {
    const { sql, params } = conflictsQuery(filter);
    return this.watchMapped(sql, params, conflictFromRow, callbacks);
  }

  /**
   * Resolves a conflict in one local write transaction: `{ keep: 'current' }`
   * keeps the value now in the row, `{ keep: 'lost' }` writes the lost value
   * back into the row's column, `{ value }` writes a new one; the conflict's
   * `ferry_conflicts` row is deleted. Both go up as one queued transaction
   * (the server's write rules must allow deleting the conflict).
   *
   * Rejects with FERRY_C1007 when the conflict does not exist, or (`lost`,
   * `value`) when its row no longer exists locally — nothing is
   * re-inserted; with FERRY_C1005 when it names a column the schema does
   * not declare. Nothing is written then.
   */
  async resolveConflict(id: string, resolution: ConflictResolution): Promise<void> {
    await this.writeTransaction((tx) => resolveConflict(tx, this.schema, id, resolution));
  }

  /**
   * Findings of the server's validation hooks (synced from
   * `ferry_violations`), oldest first. With a filter: those whose subject
   * row or any involved row matches it.
   */
  async getViolations(filter: ConflictFilter = {}): Promise<Violation[]> {
    const { sql, params } = violationsQuery(filter);
    return (await this.getAll(sql, params)).map(violationFromRow);
  }

  /** Watches {@link getViolations}, like {@link watchConflicts}. Returns an unsubscribe function. */
  watchViolations(
    filter: ConflictFilter | undefined,
    callbacks: WatchCallbacks<Violation> | ((violations: Violation[]) => void),
  ): () => void {
    const { sql, params } = violationsQuery(filter);
    return this.watchMapped(sql, params, violationFromRow, callbacks);
  }

  /** A callback watch whose rows go through `map` (the watch compares the raw rows, so unchanged lists are not reported). */
  private watchMapped<T>(
    sql: string,
    params: readonly SqliteParam[],
    map: (row: Record<string, unknown>) => T,
    callbacks: WatchCallbacks<T> | ((rows: T[]) => void),
  ): () => void {
    const options = typeof callbacks === 'function' ? { onResult: callbacks } : callbacks;
    return this.watch<Record<string, unknown>>(sql, params, {
      onResult: (rows) => options.onResult(rows.map(map)),
      ...(options.onError === undefined ? {} : { onError: options.onError.bind(options) }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  private context(conn: SqliteConnection, written: { tables: Set<string>; unknown: boolean } | null): QueryContext {
    const execute = async <T>(sql: string, params: readonly SqliteParam[] = []): Promise<SqliteQueryResult<T>> => {
      if (written !== null) {
        const usage = await this.analyzer.analyze(conn, sql, params);
        if (usage.unknown) written.unknown = true;
        for (const table of usage.writes) written.tables.add(table);
      }
      return (await conn.execute(sql, params)) as SqliteQueryResult<T>;
    };
    const getAll = async <T>(sql: string, params: readonly SqliteParam[] = []): Promise<T[]> =>
      (await execute<T>(sql, params)).rows;
    const getOptional = async <T>(sql: string, params: readonly SqliteParam[] = []): Promise<T | null> =>
      (await getAll<T>(sql, params))[0] ?? null;
    return {
      execute,
      getAll,
      getOptional,
      get: async <T>(sql: string, params: readonly SqliteParam[] = []): Promise<T> => {
        const row = await getOptional<T>(sql, params);
        if (row === null) throw noResult(sql);
        return row;
      },
    };
  }

  /**
   * Runs `fn` holding the write lock (with `tabs`, also the cross-tab write
   * lock), inside BEGIN IMMEDIATE … COMMIT (ROLLBACK on error).
   */
  private writeLocked<T>(fn: (conn: SqliteConnection) => Promise<T>): Promise<T> {
    return this.writeMutex.run(async () => {
      this.assertOpen();
      const tabs = this.tabs;
      if (tabs === null) return this.transaction(fn);
      return tabs.withWriteLock(async () => {
        this.assertOpen();
        return this.transaction(fn);
      });
    });
  }

  /** BEGIN IMMEDIATE, `fn`, COMMIT (ROLLBACK on error); the caller holds the write lock. */
  private async transaction<T>(fn: (conn: SqliteConnection) => Promise<T>): Promise<T> {
    const conn = this.driver.writer;
    await conn.execute('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = await fn(conn);
    } catch (error) {
      try {
        await conn.execute('ROLLBACK');
      } catch {
        // SQLite may already have rolled back (e.g. after SQLITE_FULL); the original error matters.
      }
      throw error;
    }
    try {
      await conn.execute('COMMIT');
    } catch (error) {
      // e.g. SQLITE_BUSY from another process: never leave the transaction open.
      await conn.execute('ROLLBACK').catch(() => {});
      throw error;
    }
    return result;
  }

  private readLocked<T>(fn: (conn: SqliteConnection) => Promise<T>): Promise<T> {
    return this.readMutex.run(async () => {
      this.assertOpen();
      return fn(this.reader);
    });
  }

  // ── live queries ──────────────────────────────────────────────────────────

  /**
   * Watches a query: the current rows at once, then the new rows whenever a
   * table the query reads changed AND the rows differ from the last ones.
   *
   * With `onResult` it calls back and returns an unsubscribe function;
   * otherwise it returns an async iterable (a slow consumer receives the
   * latest rows, not a backlog). Stops when `signal` aborts.
   */
  watch<T = Record<string, unknown>>(
    sql: string,
    params: readonly SqliteParam[],
    options: WatchCallbacks<T>,
  ): () => void;
  watch<T = Record<string, unknown>>(
    sql: string,
    params?: readonly SqliteParam[],
    options?: WatchOptions,
  ): AsyncIterable<T[]>;
  watch<T = Record<string, unknown>>(
    sql: string,
    params: readonly SqliteParam[] = [],
    options: WatchOptions | WatchCallbacks<T> = {},
  ): AsyncIterable<T[]> | (() => void) {
    const host = this.watchHost();
    if ('onResult' in options) {
      return startWatch<T>(
        host,
        sql,
        params,
        { onResult: options.onResult, onError: options.onError?.bind(options) },
        options.signal,
      );
    }
    return watchIterable<T>((handlers, signal) => startWatch<T>(host, sql, params, handlers, signal), options.signal);
  }

  private watchHost(): WatchHost {
    return {
      changes: this.changes,
      tablesRead: async (sql, params) => {
        await this.ready();
        const usage = await this.readLocked((conn) => this.analyzer.analyze(conn, sql, params));
        return usage.unknown ? null : new Set([...usage.reads].map((t) => t.toLowerCase()));
      },
      query: (sql, params) => this.getAll(sql, params),
    };
  }

  /**
   * Calls `onChange` after every committed local write and every applied
   * checkpoint that changed one of `tables` (or any table). Returns an
   * unsubscribe function; `signal` also unsubscribes.
   */
  onChange(options: OnChangeOptions): () => void {
    const filter = options.tables === undefined ? null : new Set(options.tables.map((t) => t.toLowerCase()));
    const unsubscribe = this.changes.subscribe((change) => {
      if (filter !== null && !touches(change, filter)) return;
      options.onChange({ changedTables: [...change.tables] });
    });
    options.signal?.addEventListener('abort', unsubscribe);
    return unsubscribe;
  }

  // ── sync ──────────────────────────────────────────────────────────────────

  /** The current sync status snapshot. */
  get currentStatus(): SyncStatus {
    return this.status;
  }

  /** Calls `statusChanged` with every new status snapshot. Returns an unsubscribe function. */
  registerListener(listener: StatusListener): () => void {
    this.statusListeners.add(listener);
    return () => {
      this.statusListeners.delete(listener);
    };
  }

  /**
   * Starts syncing in the background (replacing an earlier connection):
   * opens the sync stream with the connector's credentials and keeps it
   * open, reconnecting with backoff and fresh credentials. Resolves once
   * the loop is started; use {@link waitForFirstSync} or the status to
   * follow progress.
   *
   * With `tabs`, the tabs that called `connect()` line up for the sync
   * lock: the holder (the leader) runs the sync and upload loops for all of
   * them; the others (followers) open no stream, show the leader's status,
   * and take over when it disconnects or closes, resuming from the stored
   * positions. Resolves as soon as this tab is in line.
   */
  async connect(connector: FerryConnector, options: ConnectOptions = {}): Promise<void> {
    await this.ready();
    await this.disconnect();
    const connection: Connection = { connector, options, controller: new AbortController(), done: Promise.resolve() };
    this.connection = connection;
    if (this.tabs === null) this.startLoops(connector, options);
    else connection.done = this.lead(this.tabs, connection);
  }

  /**
   * Stops syncing (downloads and uploads, aborting requests in flight) and
   * waits until both stopped. Data stays. With `tabs`, a leader hands the
   * sync over to the next tab in line; a follower leaves the line.
   */
  async disconnect(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    connection?.controller.abort();
    await connection?.done;
    await this.stopLoops();
  }

  /** Whether this tab runs the sync (always true when connected without `tabs`). */
  get isSyncLeader(): boolean {
    return this.tabs === null ? this.sync !== null : this.tabs.isLeader;
  }

  private startLoops(connector: FerryConnector, options: ConnectOptions): void {
    const fetchImpl = options.fetch ?? this.defaultFetch;
    const client = new SyncClient(
      this.syncHost(),
      connector,
      fetchImpl === undefined ? options : { ...options, fetch: fetchImpl },
    );
    this.sync = client;
    const uploads = new UploadLoop(this.uploadHost(connector), connector, {
      ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }),
      ...(options.retryDelay === undefined ? {} : { retryDelay: options.retryDelay }),
    });
    this.uploads = uploads;
    client.start();
    uploads.start();
  }

  /** Stops the loops; resolves once they and every earlier stop have finished. */
  private async stopLoops(): Promise<void> {
    const client = this.sync;
    const uploads = this.uploads;
    this.sync = null;
    this.uploads = null;
    const stop = Promise.all([client?.stop(), uploads?.stop()]).then(() => undefined);
    this.stopping = Promise.all([this.stopping, stop]).then(() => undefined);
    await this.stopping;
  }

  /** Waits for the sync lock, runs the loops while holding it, and releases it once `connection` is aborted. */
  private async lead(tabs: TabCoordinator, connection: Connection): Promise<void> {
    const signal = connection.controller.signal;
    let release: () => void;
    try {
      release = await tabs.acquireLeadership(signal);
    } catch (error) {
      if (!signal.aborted) this.logger.error('ferry tabs: the sync lock failed', { error: String(error) });
      return;
    }
    try {
      if (signal.aborted || this.closed) return;
      tabs.setLeading(true);
      this.logger.info('ferry tabs: this tab now runs the sync');
      // The status shown so far was the last leader's; this tab's own loops report from now on.
      this.setStatus({
        connected: false,
        connecting: true,
        downloading: false,
        downloadProgress: null,
        uploading: false,
      });
      tabs.publishStatus(this.status, true);
      // A leader that went away during a first sync may have left the op log without its row index.
      await this.writeLocked((conn) => this.store.ensureRowIndex(conn));
      if (signal.aborted) return;
      this.startLoops(connection.connector, connection.options);
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } catch (error) {
      if (!this.closed) this.logger.error('ferry tabs: leading the sync failed', { error: String(error) });
    } finally {
      await this.stopLoops(); // the final (disconnected) status still goes out as the leader's
      tabs.setLeading(false);
      release();
    }
  }

  /** After another tab cleared the database: the leader starts over from the (now empty) stored state. */
  private async restartLoops(): Promise<void> {
    const connection = this.connection;
    if (connection === null || this.sync === null) return;
    await this.stopLoops();
    if (this.connection !== connection || connection.controller.signal.aborted || this.closed) return;
    this.startLoops(connection.connector, connection.options);
  }

  /**
   * Disconnects, then deletes all synced data and sync state in one
   * transaction: synced tables are emptied, positions forgotten, and a new
   * client id is used next time. Local-only tables keep their data.
   *
   * With `tabs`, every tab's watchers see the change and forget their sync
   * state; a leader keeps the sync lock until the data is gone (so no other
   * tab resumes from the old positions meanwhile), and the leader of the
   * other tabs, if any, starts over.
   */
  async disconnectAndClear(): Promise<void> {
    const keepLock = this.tabs?.isLeader === true;
    if (keepLock) await this.stopLoops();
    else await this.disconnect();
    await this.ready();
    const synced = this.tables.filter((t) => !t.localOnly);
    await this.writeLocked(async (conn) => {
      await withCrudSuppressed(conn, async () => {
        for (const table of synced) await conn.execute(`DELETE FROM ${quoteIdentifier(table.name)}`);
      });
      // Queued, uploaded and rejected writes belong to the synced data and client id that go.
      await conn.execute(`DELETE FROM ferry_crud`);
      await conn.execute(`DELETE FROM ferry_overlay`);
      await conn.execute(`DELETE FROM ferry_rejections`);
      await this.store.clear(conn);
      await conn.execute(`DELETE FROM ferry_kv WHERE key IN (?, ?, ?)`, [
        KV_CLIENT_ID,
        KV_LAST_SYNCED_AT,
        KV_ACKED_WRITE_CHECKPOINT,
      ]);
    });
    this.cachedClientId = null;
    this.queueShown = ++this.queueSeq;
    this.status = INITIAL_STATUS;
    this.publishStatus();
    this.tabs?.postCleared();
    this.committed([...synced.map((t) => t.name), REJECTIONS_TABLE]);
    if (keepLock) await this.disconnect();
  }

  /** Resolves once a checkpoint has been applied (at once if one ever was). Rejects when `signal` aborts. */
  waitForFirstSync(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.status.hasSynced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      const done = (): void => {
        this.firstSyncWaiters.delete(done);
        signal?.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = (): void => {
        this.firstSyncWaiters.delete(done);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) return aborted();
      signal?.addEventListener('abort', aborted);
      this.firstSyncWaiters.add(done);
    });
  }

  /** The stable id of this database towards the service (random, persisted). */
  async clientId(): Promise<string> {
    if (this.cachedClientId !== null && this.tabs === null) return this.cachedClientId;
    await this.ready();
    const id = await this.writeLocked((conn) => this.ensureClientId(conn));
    this.cachedClientId = id; // only once committed
    return id;
  }

  /** The client id, created in the caller's write transaction if there is none yet. */
  private async ensureClientId(conn: SqliteConnection): Promise<string> {
    // Another tab may clear the database (and the id) at any time: with tabs, always read it.
    if (this.cachedClientId !== null && this.tabs === null) return this.cachedClientId;
    let id = await this.kv(conn, KV_CLIENT_ID);
    if (id === null) {
      id = randomId();
      await this.setKv(conn, KV_CLIENT_ID, id);
    }
    return id;
  }

  private syncHost(): SyncHost {
    return {
      store: this.store,
      logger: this.logger,
      // Downloaded data is never a local write: the queue triggers are off.
      writeSync: (fn) => this.writeLocked((conn) => withCrudSuppressed(conn, () => fn(conn))),
      notifyChanged: (tables) => this.committed(tables),
      syncedTables: (): readonly ResolvedTable[] => this.tables.filter((t) => !t.localOnly),
      clientId: () => this.clientId(),
      setStatus: (patch) => this.setStatus(patch),
      checkpointApplied: () => {
        for (const resolve of this.firstSyncWaiters) resolve();
      },
    };
  }

  private uploadHost(connector: FerryConnector): UploadHost {
    const upload = connector.uploadData;
    return {
      logger: this.logger,
      clientId: () => this.clientId(),
      setStatus: (patch) => this.setStatus(patch),
      queueHead: async () => {
        await this.ready();
        const { rows } = await this.writeMutex.run(async () => {
          this.assertOpen();
          return this.driver.writer.execute(`SELECT min(id) AS id FROM ferry_crud`);
        });
        const id = rows[0]?.['id'];
        return typeof id === 'number' ? id : null;
      },
      overlayAwaitingCheckpoint: async () => {
        await this.ready();
        return this.writeMutex.run(async () => {
          this.assertOpen();
          return overlayAwaitingCheckpoint(this.driver.writer);
        });
      },
      setWriteCheckpoint: async (throughId, writeCheckpoint) => {
        const synced = this.tables.filter((t) => !t.localOnly);
        const changed = await this.writeLocked(async (conn) => {
          await setOverlayCheckpoint(conn, throughId, writeCheckpoint);
          // The stream may have echoed this write checkpoint already (it was covered at once).
          const acked = await takeAcknowledgedOverlay(conn);
          return acked.length === 0
            ? new Set<string>()
            : withCrudSuppressed(conn, () => rebuildRows(conn, synced, acked));
        });
        if (changed.size > 0) this.committed(changed);
      },
      upload: upload === undefined ? null : (signal) => upload.call(connector, this, { signal }),
    };
  }

  private setStatus(patch: SyncStatusPatch): void {
    const next = patchStatus(this.status, patch);
    if (next === this.status) return;
    this.status = next;
    this.publishStatus();
  }

  private publishStatus(): void {
    for (const listener of this.statusListeners) {
      try {
        listener.statusChanged?.(this.status);
      } catch (error) {
        this.logger.error('ferry: status listener threw', { error: String(error) });
      }
    }
    this.tabs?.publishStatus(this.status);
    // In a follower, the leader's status is how a first sync becomes known.
    if (this.status.hasSynced) for (const resolve of this.firstSyncWaiters) resolve();
  }

  /** Shows a queue summary read as number `seq`, unless a later-read one is already shown. */
  private showQueue(seq: number, queue: { count: number; oldestAt: Date | null }): void {
    if (seq < this.queueShown) return;
    this.queueShown = seq;
    this.setStatus({ pendingCount: queue.count, oldestPendingAt: queue.oldestAt });
  }

  /** Recounts the shared upload queue (another tab changed it). */
  private async refreshQueue(): Promise<void> {
    try {
      await this.ready();
      const [seq, queue] = await this.readLocked(async (conn) => {
        const seq = ++this.queueSeq; // numbered when the read starts
        return [seq, await queueSummary(conn)] as const;
      });
      this.showQueue(seq, queue);
    } catch (error) {
      if (!this.closed) this.logger.warn('ferry tabs: could not count the upload queue', { error: String(error) });
    }
  }

  /** Reports tables changed by a committed transaction to this tab's watchers and to the other tabs. */
  private committed(tables: Iterable<string>, unknown = false): void {
    const visible = visibleTables(tables);
    this.changes.emit(visible, unknown);
    this.tabs?.postChanged(visible, unknown);
  }

  private tabHost(): TabHost {
    return {
      changed: (tables, unknown) => {
        if (!this.closed) this.changes.emit(tables, unknown);
      },
      queueChanged: () => {
        if (this.closed) return;
        void this.refreshQueue();
        this.uploads?.trigger();
      },
      leaderStatus: (patch) => {
        if (!this.closed) this.setStatus(patch);
      },
      currentStatus: () => this.status,
      cleared: () => {
        if (this.closed) return;
        this.cachedClientId = null;
        this.setStatus({ lastSyncedAt: null, hasSynced: false, downloadError: undefined, uploadError: undefined });
        void this.refreshQueue();
        if (this.tabs?.isLeader === true) {
          this.restartLoops().catch((error: unknown) => {
            this.logger.error('ferry tabs: restarting the sync after a clear failed', { error: String(error) });
          });
        }
      },
    };
  }

  private async kv(conn: SqliteConnection, key: string): Promise<string | null> {
    const row = (await conn.execute(`SELECT value FROM ferry_kv WHERE key = ?`, [key])).rows[0];
    return row === undefined ? null : String(row['value']);
  }

  private async setKv(conn: SqliteConnection, key: string, value: string): Promise<void> {
    await conn.execute(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES (?, ?)`, [key, value]);
  }
}

function noResult(sql: string): FerryError {
  return new FerryError(
    'FERRY_C1007',
    `the query returned no row: ${sql.length > 200 ? sql.slice(0, 200) + '…' : sql}`,
  );
}

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID !== undefined) return c.randomUUID();
  let id = '';
  for (let i = 0; i < 32; i++) id += Math.floor(Math.random() * 16).toString(16);
  return id;
}
