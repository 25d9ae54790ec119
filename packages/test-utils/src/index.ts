export { createTestDatabase, testPostgresUrl, sql } from './pg.js';
