import { FerryError } from '@ferry/protocol';
import { BucketStore } from './bucket-store.js';
import type { FerryConnector } from './connector.js';
import {
  moveToOverlay,
  OVERLAY_TABLE_DDL,
  overlayAwaitingCheckpoint,
  rebuildRows,
  rowsWithLocalOps,
  setOverlayCheckpoint,
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
import { TableChangeEmitter, touches } from './table-changes.js';
import { TableUsageAnalyzer } from './table-usage.js';
import { startWatch, watchIterable, type WatchHost } from './watch.js';

export interface FerryDatabaseOptions {
  schema: Schema;
  /** The SQLite database, from a platform package (e.g. `@ferry/client-node`). */
  driver: SqliteDriver;
  logger?: FerryLogger;
  /** Default `fetch` for `connect()` (default `globalThis.fetch`). */
  fetch?: typeof fetch;
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
   * Ferry's internal tables are never listed, except `ferry_rejections`.
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
  private readonly driver: SqliteDriver;
  private readonly logger: FerryLogger;
  private readonly defaultFetch: typeof fetch | undefined;
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
  private closed = false;
  private cachedClientId: string | null = null;
  private firstSyncWaiters = new Set<() => void>();

  constructor(options: FerryDatabaseOptions) {
    this.schema = options.schema;
    this.driver = options.driver;
    this.logger = options.logger ?? silentLogger;
    this.defaultFetch = options.fetch;
    this.reader = options.driver.reader ?? options.driver.writer;
    // Without a separate reader, reads share the writer and must wait for its transactions.
    this.readMutex = options.driver.reader === undefined ? this.writeMutex : new Mutex();
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
      if (format !== FORMAT_VERSION) await this.setKv(conn, KV_FORMAT, FORMAT_VERSION);
      // Filling tables from kept row data is not a local write: no queue triggers meanwhile.
      await dropCrudTriggers(conn);
      const tables = await applySchema(conn, this.schema, this.store);
      // Refilled from kept row data = server state: pending local writes go back on top.
      const pendingRows = await rowsWithLocalOps(conn, [...tables]);
      if (pendingRows.length > 0) await rebuildRows(conn, this.schema.resolved, pendingRows);
      await installCrudTriggers(conn, this.schema.resolved);
      const queue = await queueSummary(conn);
      this.setStatus({ pendingCount: queue.count, oldestPendingAt: queue.oldestAt });
      const lastSynced = await this.kv(conn, KV_LAST_SYNCED_AT);
      if (lastSynced !== null) this.setStatus({ lastSyncedAt: new Date(lastSynced), hasSynced: true });
      return tables;
    });
    await this.driver.writer.execute(BATCH_TABLE_DDL);
    this.analyzer.invalidate();
    this.changes.emit(changed);
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
    const now = Date.now();
    const [result, queued] = await this.writeLocked(async (conn) => {
      const value = await fn(this.context(conn, written));
      const queued = await stampPendingOps(conn, () => this.ensureClientId(conn), now);
      return [value, queued] as const;
    });
    if (queued > 0) {
      this.setStatus({
        pendingCount: this.status.pendingCount + queued,
        oldestPendingAt: this.status.oldestPendingAt ?? new Date(now),
      });
      this.uploads?.trigger();
    }
    this.changes.emit(written.tables, written.unknown);
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
    const synced = this.schema.resolved.filter((t) => !t.localOnly);
    const now = Date.now();
    const { queue, changed } = await this.writeLocked((conn) =>
      withCrudSuppressed(conn, async () => {
        await moveToOverlay(conn, applied, options.writeCheckpoint ?? null);
        let changed = new Set<string>();
        if (rejected.length > 0) {
          changed = await rebuildRows(conn, synced, await recordRejections(conn, rejected, now));
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
    this.setStatus({ pendingCount: queue.count, oldestPendingAt: queue.oldestAt });
    this.changes.emit(changed);
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
    if (removed > 0) this.changes.emit([REJECTIONS_TABLE]);
    return removed;
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

  /** Runs `fn` holding the write lock, inside BEGIN IMMEDIATE … COMMIT (ROLLBACK on error). */
  private writeLocked<T>(fn: (conn: SqliteConnection) => Promise<T>): Promise<T> {
    return this.writeMutex.run(async () => {
      this.assertOpen();
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
    });
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
        return new Set([...usage.reads].map((t) => t.toLowerCase()));
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
   */
  async connect(connector: FerryConnector, options: ConnectOptions = {}): Promise<void> {
    await this.ready();
    await this.disconnect();
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

  /** Stops syncing (downloads and uploads, aborting requests in flight) and waits until both stopped. Data stays. */
  async disconnect(): Promise<void> {
    const client = this.sync;
    const uploads = this.uploads;
    this.sync = null;
    this.uploads = null;
    await Promise.all([client?.stop(), uploads?.stop()]);
  }

  /**
   * Disconnects, then deletes all synced data and sync state in one
   * transaction: synced tables are emptied, positions forgotten, and a new
   * client id is used next time. Local-only tables keep their data.
   */
  async disconnectAndClear(): Promise<void> {
    await this.disconnect();
    await this.ready();
    const synced = this.schema.resolved.filter((t) => !t.localOnly);
    await this.writeLocked(async (conn) => {
      await withCrudSuppressed(conn, async () => {
        for (const table of synced) await conn.execute(`DELETE FROM ${quoteIdentifier(table.name)}`);
      });
      // Queued, uploaded and rejected writes belong to the synced data and client id that go.
      await conn.execute(`DELETE FROM ferry_crud`);
      await conn.execute(`DELETE FROM ferry_overlay`);
      await conn.execute(`DELETE FROM ferry_rejections`);
      await this.store.clear(conn);
      await conn.execute(`DELETE FROM ferry_kv WHERE key IN (?, ?)`, [KV_CLIENT_ID, KV_LAST_SYNCED_AT]);
    });
    this.cachedClientId = null;
    this.status = INITIAL_STATUS;
    this.publishStatus();
    this.changes.emit([...synced.map((t) => t.name), REJECTIONS_TABLE]);
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
    if (this.cachedClientId !== null) return this.cachedClientId;
    await this.ready();
    const id = await this.writeLocked((conn) => this.ensureClientId(conn));
    this.cachedClientId = id; // only once committed
    return id;
  }

  /** The client id, created in the caller's write transaction if there is none yet. */
  private async ensureClientId(conn: SqliteConnection): Promise<string> {
    if (this.cachedClientId !== null) return this.cachedClientId;
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
      notifyChanged: (tables) => this.changes.emit(tables),
      syncedTables: (): readonly ResolvedTable[] => this.schema.resolved.filter((t) => !t.localOnly),
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
        await this.writeLocked((conn) => setOverlayCheckpoint(conn, throughId, writeCheckpoint));
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
