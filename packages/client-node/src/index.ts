export { BetterSqlite3Connection, BetterSqlite3Driver } from './better-sqlite3-driver.js';
export type { BetterSqlite3DriverOptions } from './better-sqlite3-driver.js';
export { openFerryDatabase } from './open-ferry-database.js';
export type { OpenFerryDatabaseOptions } from './open-ferry-database.js';
