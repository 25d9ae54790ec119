import { FerryDatabase, type FerryDatabaseOptions, type FerryLogger, type Schema } from '@ferry/client';
import type { WebVfs, WebVfsChoice } from './messages.js';
import { WebWorkerDriver, type WebWorkerDriverOptions } from './web-worker-driver.js';

export interface OpenFerryDatabaseOptions {
  /** Database name, unique per origin: the OPFS file name, or the IndexedDB database `ferry:<name>`. */
  name: string;
  schema: Schema;
  /** Storage: `auto` (default) = OPFS when the worker has sync access handles, else IndexedDB. */
  vfs?: WebVfsChoice;
  /** Hold the database's lock while open: faster reads, but one tab only (see {@link WebWorkerDriverOptions.exclusive}). */
  exclusive?: WebWorkerDriverOptions['exclusive'];
  logger?: FerryLogger;
  /** Default `fetch` for `connect()` (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Creates the database worker (see {@link WebWorkerDriverOptions.createWorker}). */
  createWorker?: WebWorkerDriverOptions['createWorker'];
}

/** A {@link FerryDatabase} opened in the browser, with the storage it uses. */
export type WebFerryDatabase = FerryDatabase & {
  /** `opfs` or `idb`: the VFS the worker chose. */
  readonly vfs: WebVfs;
  /** SQLite's version in the loaded WASM build. */
  readonly sqliteVersion: string;
};

/**
 * Opens (creating if needed) a Ferry database in a dedicated worker on
 * WASM SQLite, persisted to OPFS or IndexedDB, and initializes it: tables
 * exist and match the schema when this resolves. The WASM module is fetched
 * here, not when `@ferry/client-web` is imported.
 *
 * ```ts
 * const db = await openFerryDatabase({ name: 'app.db', schema });
 * console.log(db.vfs); // 'opfs'
 * ```
 */
export async function openFerryDatabase(options: OpenFerryDatabaseOptions): Promise<WebFerryDatabase> {
  const driver = await WebWorkerDriver.open({
    name: options.name,
    ...(options.vfs === undefined ? {} : { vfs: options.vfs }),
    ...(options.exclusive === undefined ? {} : { exclusive: options.exclusive }),
    ...(options.createWorker === undefined ? {} : { createWorker: options.createWorker }),
  });
  const dbOptions: FerryDatabaseOptions = { schema: options.schema, driver };
  if (options.logger !== undefined) dbOptions.logger = options.logger;
  if (options.fetch !== undefined) dbOptions.fetch = options.fetch;
  const db = new FerryDatabase(dbOptions);
  try {
    await db.init();
  } catch (error) {
    await driver.close().catch(() => undefined);
    throw error;
  }
  Object.defineProperty(db, 'vfs', { value: driver.vfs, enumerable: true });
  Object.defineProperty(db, 'sqliteVersion', { value: driver.sqliteVersion, enumerable: true });
  return db as WebFerryDatabase;
}
