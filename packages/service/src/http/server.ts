import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FerryError, NDJSON_CONTENT_TYPE, SyncRequestSchema } from '@ferry/protocol';
import type { CompiledSyncRules } from '@ferry/rules';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.js';
import type { ApiConfig } from '../config/types.js';
import type { FerryMetrics } from '../metrics/metrics.js';
import type { BucketStorageReader } from '../storage/types.js';
import { SharedOpReader, type SharedOpReaderOptions } from '../sync/op-cache.js';
import { SyncSession } from '../sync/sync-session.js';
import type { WriteApi } from '../write/write-api.js';
import { MAX_CLIENT_ID_LENGTH, type WriteCheckpointCreator } from '../write/write-checkpoints.js';
import { DEFAULT_MAX_WRITE_BYTES, serveWrite } from '../write/write-handler.js';
import { parseJsonBody, readBody } from './body.js';

export interface HttpServerDeps {
  storage: BucketStorageReader;
  /** The active sync rules; a function lets the composition root swap them. */
  rules: CompiledSyncRules | (() => CompiledSyncRules);
  authenticator: Authenticator;
  api: ApiConfig;
  metrics: FerryMetrics;
  logger: Logger;
  /** True when the service may serve (e.g. initial copy done). Default: always ready. */
  readiness?: () => boolean | Promise<boolean>;
  /** Largest accepted request body, bytes. Default 1 MiB. */
  maxRequestBytes?: number;
  /** Keepalive interval override in ms (tests); default `api.keepaliveSeconds`. */
  keepaliveMs?: number;
  /** Shared op page cache settings. */
  opCache?: SharedOpReaderOptions;
  /** Creates write checkpoints (`GET /write-checkpoint2.json`); without it that endpoint answers 404. */
  writeCheckpoints?: WriteCheckpointCreator;
  /** Applies `POST /write`; without it that endpoint answers 404 (configure write_rules). */
  write?: WriteApi;
  /** Largest accepted `POST /write` body, bytes. Default 8 MiB. */
  maxWriteBytes?: number;
  /**
   * Called for requests that no route matched (any method except the CORS
   * preflight `OPTIONS`), so an embedding process can serve more on the same
   * port, e.g. `ferry dev` serving the web app. Resolves true when it answered
   * the request, false to let the server answer 404 FERRY_S4004. A rejection
   * is answered like a route's error (a `FerryError` keeps its code and status).
   */
  fallback?: HttpFallback;
}

/** See {@link HttpServerDeps.fallback}. */
export type HttpFallback = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface FerryHttpServer {
  readonly server: Server;
  /** Listens on `api.host:api.port`; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting, ends every sync stream and closes connections. */
  close(): Promise<void>;
  /** Sync streams currently open. */
  readonly connectedClients: number;
}

const ALLOWED_HEADERS = 'authorization, content-type, x-user-agent';

interface Route {
  method: string;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/**
 * The service's HTTP API on node:http: the sync stream, the write API,
 * write checkpoints, health, readiness and metrics. Every error answers `FerryError.toJSON()` with the code's
 * status; CORS is answered for browsers. Requests no route matched go to `deps.fallback` when given.
 */
export function createHttpServer(deps: HttpServerDeps): FerryHttpServer {
  const { storage, authenticator, api, metrics, logger } = deps;
  const rules = typeof deps.rules === 'function' ? deps.rules : () => deps.rules as CompiledSyncRules;
  const opReader = new SharedOpReader(storage, deps.opCache);
  const maxRequestBytes = deps.maxRequestBytes ?? 1024 * 1024;
  const keepaliveMs = deps.keepaliveMs ?? api.keepaliveSeconds * 1000;
  const sessions = new Set<SyncSession>();

  async function syncStream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const request = parseJsonBody(await readBody(req, maxRequestBytes), SyncRequestSchema);
    const client = await authenticator.authenticate(req.headers.authorization);
    const session = await SyncSession.open(
      { storage, rules: rules(), opReader, maxBuckets: api.maxBucketsPerClient, keepaliveMs, metrics, logger },
      client,
      request,
    );
    sessions.add(session);
    metrics.connectedClients.inc();
    const started = Date.now();
    const log = logger.child({ userId: client.userId, clientId: request.client_id ?? null });
    log.info({ buckets: session.bucketCount }, 'sync stream connected');
    res.on('close', () => session.stop());
    if (req.socket.destroyed) session.stop(); // gone while we planned
    res.writeHead(200, {
      'content-type': NDJSON_CONTENT_TYPE,
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    try {
      const reason = await session.run(res);
      log.info({ reason, ms: Date.now() - started }, 'sync stream disconnected');
    } catch (error) {
      log.error({ err: error, ms: Date.now() - started }, 'sync stream failed');
      res.destroy(error as Error);
    } finally {
      sessions.delete(session);
      metrics.connectedClients.dec();
      if (!res.writableEnded && !res.destroyed) res.end();
    }
  }

  /** PowerSync-compatible: `{"data":{"write_checkpoint":"<id>"}}` for the token's user and `client_id`. */
  async function writeCheckpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = await authenticator.authenticate(req.headers.authorization);
    const clientId = new URL(req.url ?? '/', 'http://localhost').searchParams.get('client_id');
    if (clientId === null || clientId === '' || clientId.length > MAX_CLIENT_ID_LENGTH) {
      throw new FerryError('FERRY_S4001', `client_id is required and at most ${MAX_CLIENT_ID_LENGTH} characters long`);
    }
    if (deps.writeCheckpoints === undefined) {
      throw new FerryError('FERRY_S4004', 'write checkpoints are not available on this service');
    }
    const id = await deps.writeCheckpoints.create(client.userId, clientId);
    res.setHeader('cache-control', 'no-store');
    sendJson(res, 200, { data: { write_checkpoint: id.toString() } });
  }

  /** The write API: per-transaction, per-op answers (see `WriteResponse`). Needs no readiness: writes go to the source. */
  async function write(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (deps.write === undefined) {
      throw new FerryError(
        'FERRY_S4004',
        'the write API is not enabled on this service: configure write_rules in ferry.yaml',
      );
    }
    await serveWrite(req, res, {
      api: deps.write,
      auth: { authenticator },
      maxBodyBytes: deps.maxWriteBytes ?? DEFAULT_MAX_WRITE_BYTES,
    });
  }

  const routes = new Map<string, Route>([
    ['/sync/stream', { method: 'POST', handle: syncStream }],
    ['/write', { method: 'POST', handle: write }],
    ['/write-checkpoint2.json', { method: 'GET', handle: writeCheckpoint }],
    [
      '/health',
      {
        method: 'GET',
        handle: async (_req, res) => sendJson(res, 200, { status: 'ok' }),
      },
    ],
    [
      '/ready',
      {
        method: 'GET',
        handle: async (_req, res) => {
          const ready = deps.readiness === undefined ? true : await deps.readiness();
          if (!ready) throw new FerryError('FERRY_S4006', 'not ready: initial replication is not complete');
          sendJson(res, 200, { status: 'ready' });
        },
      },
    ],
    [
      '/metrics',
      {
        method: 'GET',
        handle: async (_req, res) => {
          const { contentType, body } = await metrics.render();
          res.writeHead(200, { 'content-type': contentType });
          res.end(body);
        },
      },
    ],
  ]);

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes.get(url.pathname);
    res.setHeader('access-control-allow-origin', api.corsOrigin);
    if (api.corsOrigin !== '*') res.setHeader('vary', 'Origin');
    // One label for everything the fallback serves: paths must not become label values.
    let label = route === undefined ? 'unknown' : url.pathname;
    res.on('finish', () => metrics.httpRequests.inc({ route: label, status: String(res.statusCode) }));

    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': ALLOWED_HEADERS,
        'access-control-max-age': '86400',
      });
      res.end();
      return;
    }
    let handling: Promise<void>;
    if (route === undefined) {
      const fallback = deps.fallback;
      if (fallback !== undefined) label = 'fallback';
      handling = (async () => {
        if (fallback !== undefined && (await fallback(req, res))) return;
        label = 'unknown';
        throw new FerryError('FERRY_S4004', `no such endpoint: ${req.method} ${url.pathname}`);
      })();
    } else if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('allow', route.method);
      handling = Promise.reject(
        new FerryError('FERRY_S4005', `${url.pathname} does not accept ${req.method}; use ${route.method}`),
      );
    } else {
      handling = route.handle(req, res);
    }
    handling.catch((error: unknown) => sendError(res, error, logger));
  });
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // sync streams are long-lived

  return {
    server,
    get connectedClients() {
      return sessions.size;
    },
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(api.port, api.host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          logger.info({ host: address.address, port: address.port }, 'http api listening');
          resolve({ host: address.address, port: address.port, url: `http://${host}:${address.port}` });
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const session of sessions) session.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers an error as `FerryError.toJSON()`; unexpected errors become FERRY_S9001 and are logged. */
function sendError(res: ServerResponse, error: unknown, logger: Logger): void {
  let ferryError: FerryError;
  if (FerryError.is(error)) {
    ferryError = error;
    // "Not ready" is an expected answer while the initial copy runs (load
    // balancers poll it); other server-side failures deserve a warning.
    if (ferryError.code === 'FERRY_S4006') logger.debug({ code: ferryError.code }, 'not ready yet');
    else if (ferryError.status >= 500) logger.warn({ err: error }, 'request failed');
  } else {
    logger.error({ err: error }, 'unexpected error in request');
    ferryError = new FerryError('FERRY_S9001', 'internal error', { cause: error });
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A body we stopped reading (413) leaves the connection unusable: close it after answering.
  if (ferryError.code === 'FERRY_S4002') res.setHeader('connection', 'close');
  sendJson(res, ferryError.status, ferryError.toJSON());
}
