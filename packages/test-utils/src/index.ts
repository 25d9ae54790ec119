export { createTestDatabase, testPostgresUrl, sql } from './pg.js';
export { CHROMIUM_PATH, launchChromium, serveStatic, type StaticServer, type StaticServerOptions } from './browser.js';
