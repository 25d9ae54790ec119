import { join } from 'node:path';
import { broadcastTabChannel, FerryDatabase, type Schema } from '@ferry/client';
import { BetterSqlite3Driver } from '../better-sqlite3-driver.js';
import { FakeSyncService } from './fake-sync-service.js';
import { InProcessLocks, type TabLocksHandle } from './in-process-locks.js';
import { tempDir, todoSchema } from './test-db.js';

/** One "browser tab": its own FerryDatabase (own connections) on the shared file. */
export interface Tab {
  readonly db: FerryDatabase;
  readonly locks: TabLocksHandle;
  /** Closes the database (releasing its locks), as closing the tab would. */
  close(): Promise<void>;
}

export interface TabsContext extends AsyncDisposable {
  readonly path: string;
  readonly name: string;
  readonly service: FakeSyncService;
  readonly locks: InProcessLocks;
  /** Opens another tab on the same file and channel name. */
  open(): Promise<Tab>;
}

let counter = 0;

/**
 * Tabs of one app in one process: every tab opens the same database file
 * with its own connections, talks over Node's BroadcastChannel (instances
 * with one name reach each other) and shares one set of in-process locks.
 * All share one fake sync service, which counts streams.
 */
export function tabsOnOneFile(schema: Schema = todoSchema): TabsContext {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'app.db');
  const name = `tabs-${process.pid}-${++counter}`;
  const service = new FakeSyncService();
  const locks = new InProcessLocks();
  const opened: Tab[] = [];
  return {
    path,
    name,
    service,
    locks,
    async open() {
      const tabLocks = locks.tab();
      // busyTimeoutMs 0: in one thread a busy wait cannot succeed (the holder is this thread), so fail at once.
      const db = new FerryDatabase({
        schema,
        driver: new BetterSqlite3Driver({ path, busyTimeoutMs: 0 }),
        fetch: service.fetch,
        tabs: { name, channel: broadcastTabChannel(new BroadcastChannel(`ferry:${name}`)), locks: tabLocks },
      });
      const tab: Tab = {
        db,
        locks: tabLocks,
        async close() {
          await db.close();
          tabLocks.close();
        },
      };
      opened.push(tab);
      await db.init();
      return tab;
    },
    async [Symbol.asyncDispose]() {
      for (const tab of opened) await tab.close();
      cleanup();
    },
  };
}
