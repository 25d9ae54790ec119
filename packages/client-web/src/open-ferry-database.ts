import {
  broadcastTabChannel,
  FerryDatabase,
  webTabLocks,
  type BroadcastChannelLike,
  type FerryDatabaseOptions,
  type FerryLogger,
  type LockManagerLike,
  type Schema,
} from '@ferry/client';
import { FerryError } from '@ferry/protocol';
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
  /**
   * Share the database with the other tabs of this origin that open it
   * (`BroadcastChannel` + Web Locks): one tab, the leader, holds the sync
   * connection and uploads for all; every tab's writes go through the one
   * shared upload queue; every tab's watches see every tab's changes; when
   * the leader closes, another tab takes over. Default: true where the page
   * has `BroadcastChannel` and `navigator.locks` and the database is not
   * `exclusive`. `true` together with `exclusive` (or where those APIs are
   * missing) is an error. With `false` the tab assumes it is alone: two
   * such tabs would each open a sync stream.
   */
  multiTab?: boolean;
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
  /** Whether this database coordinates with other tabs (see {@link OpenFerryDatabaseOptions.multiTab}). */
  readonly multiTab: boolean;
};

/** The browser APIs multi-tab needs, typed structurally (no DOM lib types required by callers). */
interface TabApis {
  BroadcastChannel: new (name: string) => BroadcastChannelLike;
  locks: LockManagerLike;
}

function tabApis(): TabApis | null {
  const scope = globalThis as {
    BroadcastChannel?: new (name: string) => BroadcastChannelLike;
    navigator?: { locks?: LockManagerLike };
  };
  const locks = scope.navigator?.locks;
  if (typeof scope.BroadcastChannel !== 'function' || locks === undefined || typeof locks.request !== 'function') {
    return null;
  }
  return { BroadcastChannel: scope.BroadcastChannel, locks };
}

/** Whether to coordinate with other tabs; throws on a contradictory choice. */
function resolveMultiTab(options: OpenFerryDatabaseOptions, apis: TabApis | null): boolean {
  const exclusive = options.exclusive ?? false;
  if (options.multiTab === true) {
    if (exclusive) {
      throw new FerryError(
        'FERRY_C1013',
        'openFerryDatabase: `exclusive: true` keeps the database file locked by this tab, so no other tab can share ' +
          'it: pass `multiTab: false` with `exclusive`, or drop `exclusive`',
      );
    }
    if (apis === null) {
      throw new FerryError(
        'FERRY_C1013',
        'openFerryDatabase: `multiTab: true` needs BroadcastChannel and navigator.locks (Web Locks), which this ' +
          'page lacks (not a secure context, or an old browser): pass `multiTab: false`',
      );
    }
    return true;
  }
  if (options.multiTab === false) return false;
  return !exclusive && apis !== null;
}

/**
 * Opens (creating if needed) a Ferry database in a dedicated worker on
 * WASM SQLite, persisted to OPFS or IndexedDB, and initializes it: tables
 * exist and match the schema when this resolves. The WASM module is fetched
 * here, not when `@ferry/client-web` is imported.
 *
 * By default the tabs of one origin that open the same database share it
 * (see {@link OpenFerryDatabaseOptions.multiTab}): call `connect()` in every
 * tab; only the leader (`db.isSyncLeader`) opens the sync stream.
 *
 * ```ts
 * const db = await openFerryDatabase({ name: 'app.db', schema });
 * console.log(db.vfs); // 'opfs'
 * ```
 */
export async function openFerryDatabase(options: OpenFerryDatabaseOptions): Promise<WebFerryDatabase> {
  const apis = tabApis();
  const multiTab = resolveMultiTab(options, apis);
  const driver = await WebWorkerDriver.open({
    name: options.name,
    ...(options.vfs === undefined ? {} : { vfs: options.vfs }),
    ...(options.exclusive === undefined ? {} : { exclusive: options.exclusive }),
    ...(options.createWorker === undefined ? {} : { createWorker: options.createWorker }),
  });
  const dbOptions: FerryDatabaseOptions = { schema: options.schema, driver };
  if (options.logger !== undefined) dbOptions.logger = options.logger;
  if (options.fetch !== undefined) dbOptions.fetch = options.fetch;
  if (multiTab && apis !== null) {
    // Per storage: an OPFS file and an IndexedDB database of the same name are different databases.
    const tabsName = `${driver.vfs}:${options.name}`;
    dbOptions.tabs = {
      name: tabsName,
      channel: broadcastTabChannel(new apis.BroadcastChannel(`ferry:${tabsName}`)),
      locks: webTabLocks(apis.locks),
    };
  }
  let db: FerryDatabase;
  try {
    db = new FerryDatabase(dbOptions);
  } catch (error) {
    dbOptions.tabs?.channel.close();
    await driver.close().catch(() => undefined);
    throw error;
  }
  try {
    await db.init();
  } catch (error) {
    await db.close().catch(() => undefined);
    await driver.close().catch(() => undefined);
    throw error;
  }
  Object.defineProperty(db, 'vfs', { value: driver.vfs, enumerable: true });
  Object.defineProperty(db, 'sqliteVersion', { value: driver.sqliteVersion, enumerable: true });
  Object.defineProperty(db, 'multiTab', { value: multiTab, enumerable: true });
  return db as WebFerryDatabase;
}
