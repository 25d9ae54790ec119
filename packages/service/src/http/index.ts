export { createHttpServer } from './server.js';
export type { FerryHttpServer, HttpServerDeps } from './server.js';
export { parseJsonBody, readBody } from './body.js';
