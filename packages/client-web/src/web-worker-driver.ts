import type { SqliteConnection, SqliteDriver, SqliteParam, SqliteQueryResult, SqliteResultRow } from '@ferry/client';
import { FerryError } from '@ferry/protocol';
import type {
  WebVfs,
  WebVfsChoice,
  WorkerErrorData,
  WorkerRequest,
  WorkerRequestKind,
  WorkerResponse,
  WorkerResults,
} from './messages.js';
import { SqliteError } from './sqlite-error.js';

export interface WebWorkerDriverOptions {
  /** Database name: the file name in OPFS, or (with `idb`) the IndexedDB database `ferry:<name>`. */
  name: string;
  /** Storage: `auto` (default) = OPFS when available in the worker, else IndexedDB. */
  vfs?: WebVfsChoice;
  /**
   * Hold the database's lock for as long as it is open
   * (`locking_mode=EXCLUSIVE`): reads are about twice as fast (no lock
   * round trip nor cache re-validation per statement), but no other tab can
   * open the same database meanwhile. Default false.
   */
  exclusive?: boolean;
  /**
   * Creates the database worker. Default: the worker module shipped with
   * this package (`new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`,
   * which Vite and other bundlers rewrite). Pass your own when a bundler
   * needs the worker built another way.
   */
  createWorker?: () => Worker;
}

type Request = WorkerRequest extends infer R ? (R extends { requestId: number } ? Omit<R, 'requestId'> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

function defaultWorker(name: string): Worker {
  return new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: `ferry-db:${name}` });
}

function toError(data: WorkerErrorData): Error {
  if (data.code.startsWith('FERRY_')) {
    return new FerryError(data.code as ConstructorParameters<typeof FerryError>[0], data.message);
  }
  return new SqliteError(data.code, data.errno ?? 1, data.message);
}

/** Row objects from value arrays (same objects as better-sqlite3: duplicate names keep the last value). */
function toObjects(columns: readonly string[], rows: readonly unknown[][]): SqliteResultRow[] {
  const out: SqliteResultRow[] = [];
  const width = columns.length;
  for (const values of rows) {
    const row: SqliteResultRow = {};
    for (let c = 0; c < width; c++) {
      const name = columns[c]!;
      if (name !== '__proto__') row[name] = values[c];
    }
    out.push(row);
  }
  return out;
}

/**
 * The connection to the worker's database. Requests are pipelined: each is
 * posted at once and the worker runs them in order, so the client's own
 * serialization (one transaction at a time) is all that is needed.
 */
class WorkerConnection implements SqliteConnection {
  private readonly driver: WebWorkerDriver;

  constructor(driver: WebWorkerDriver) {
    this.driver = driver;
  }

  async execute(sql: string, params: readonly SqliteParam[] = []): Promise<SqliteQueryResult> {
    const result = await this.driver.request({ kind: 'execute', sql, params });
    return {
      rows: toObjects(result.columns, result.rows),
      rowsAffected: result.rowsAffected,
      insertId: result.insertId,
    };
  }

  async executeBatch(sql: string, paramSets: readonly (readonly SqliteParam[])[]): Promise<{ rowsAffected: number }> {
    return this.driver.request({ kind: 'executeBatch', sql, paramSets });
  }
}

/**
 * {@link SqliteDriver} on wa-sqlite running in a dedicated worker, persisted
 * to OPFS (OPFSCoopSyncVFS) or IndexedDB (IDBBatchAtomicVFS). One writer
 * connection and no reader: reads queue behind writes (the client handles
 * that). The WASM build is only loaded by {@link WebWorkerDriver.open}.
 *
 * SQLite failures reject with {@link SqliteError} (`code` like
 * `SQLITE_CONSTRAINT_UNIQUE`); when the worker dies, every pending and later
 * request rejects with a `FerryError` `FERRY_C1012 (after `close()`, `FERRY_C1006`)`.
 */
export class WebWorkerDriver implements SqliteDriver {
  readonly writer: SqliteConnection;
  readonly reader = undefined;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  private openResult: WorkerResults['open'] | null = null;

  private constructor(worker: Worker) {
    this.worker = worker;
    this.writer = new WorkerConnection(this);
    worker.onmessage = (event: MessageEvent<WorkerResponse>) => this.onResponse(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      const detail = event.message ? `: ${event.message}` : ' (the worker script failed to load or threw)';
      this.fail(new FerryError('FERRY_C1012', `the database worker failed${detail}`, { cause: event.error }));
    };
    worker.onmessageerror = () => {
      this.fail(new FerryError('FERRY_C1012', 'the database worker sent a message that could not be deserialized'));
    };
  }

  /**
   * Starts a worker and opens the database in it (loading the WASM build the
   * chosen VFS needs). Rejects with `SQLITE_CANTOPEN` when `vfs: 'opfs'` is
   * forced where OPFS sync access handles are missing.
   */
  static async open(options: WebWorkerDriverOptions): Promise<WebWorkerDriver> {
    const worker = options.createWorker?.() ?? defaultWorker(options.name);
    const driver = new WebWorkerDriver(worker);
    try {
      driver.openResult = await driver.request({
        kind: 'open',
        name: options.name,
        vfs: options.vfs ?? 'auto',
        exclusive: options.exclusive ?? false,
      });
    } catch (error) {
      driver.terminate(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    return driver;
  }

  /** The storage the database was opened on. */
  get vfs(): WebVfs {
    return this.openResult!.vfs;
  }

  /** SQLite's version in the loaded build. */
  get sqliteVersion(): string {
    return this.openResult!.sqliteVersion;
  }

  /** Sends one request; resolves with its result or rejects with its error. @internal */
  request<K extends WorkerRequestKind>(message: Extract<Request, { kind: K }>): Promise<WorkerResults[K]> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const requestId = this.nextId++;
    return new Promise<WorkerResults[K]>((resolve, reject) => {
      this.pending.set(requestId, { resolve: resolve as (value: unknown) => void, reject });
      try {
        this.worker.postMessage({ ...message, requestId } as WorkerRequest);
      } catch (error) {
        // e.g. a parameter that cannot be cloned
        this.pending.delete(requestId);
        reject(error);
      }
    });
  }

  private onResponse(response: WorkerResponse): void {
    const pending = this.pending.get(response.requestId);
    if (pending === undefined) return;
    this.pending.delete(response.requestId);
    if (response.ok) pending.resolve(response.result);
    else pending.reject(toError(response.error));
  }

  private fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
  }

  private terminate(error: Error): void {
    this.worker.terminate();
    this.fail(error);
  }

  async close(): Promise<void> {
    if (this.failure !== null) {
      this.worker.terminate();
      return;
    }
    try {
      await this.request({ kind: 'close' });
    } finally {
      this.terminate(new FerryError('FERRY_C1006', 'the database is closed'));
    }
  }
}
