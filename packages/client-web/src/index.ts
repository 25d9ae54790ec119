export { openFerryDatabase } from './open-ferry-database.js';
export type { OpenFerryDatabaseOptions, WebFerryDatabase } from './open-ferry-database.js';
export { WebWorkerDriver } from './web-worker-driver.js';
export type { WebWorkerDriverOptions } from './web-worker-driver.js';
export { SqliteError } from './sqlite-error.js';
export type { WebVfs, WebVfsChoice } from './messages.js';
