import { FerryDatabase, type FerryDatabaseOptions, type FerryLogger, type Schema } from '@ferry/client';
import { BetterSqlite3Driver } from './better-sqlite3-driver.js';

export interface OpenFerryDatabaseOptions {
  /** Database file (created if missing), or `:memory:`. */
  path: string;
  schema: Schema;
  logger?: FerryLogger;
  /** Default `fetch` for `connect()`. */
  fetch?: typeof fetch;
  /** The wall clock local writes are stamped with (default `Date.now`). */
  now?: () => number;
}

/**
 * Opens (creating if needed) a Ferry database on better-sqlite3 in WAL mode
 * and initializes it: tables exist and match the schema when this resolves.
 */
export async function openFerryDatabase(options: OpenFerryDatabaseOptions): Promise<FerryDatabase> {
  const driver = new BetterSqlite3Driver({ path: options.path });
  const dbOptions: FerryDatabaseOptions = { schema: options.schema, driver };
  if (options.logger !== undefined) dbOptions.logger = options.logger;
  if (options.fetch !== undefined) dbOptions.fetch = options.fetch;
  if (options.now !== undefined) dbOptions.now = options.now;
  const db = new FerryDatabase(dbOptions);
  try {
    await db.init();
  } catch (error) {
    await driver.close();
    throw error;
  }
  return db;
}
