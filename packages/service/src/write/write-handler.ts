/**
 * `POST /write` as a plain Node handler, `(req, res) => Promise<void>`, for
 * the Ferry service and for any Node backend (node:http, Express, Fastify's
 * raw request, ...).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FerryError, type WriteResponse } from '@ferry/protocol';
import type { Authenticator } from '../auth/authenticator.js';
import { tokenFromAuthorization } from '../auth/authenticator.js';
import { readBody } from '../http/body.js';
import { WriteApi, type WriteApiOptions, type WriteClient, type WriteLogger } from './write-api.js';
import { parseWriteRequest } from './write-request.js';

/** Default largest `POST /write` body: 8 MiB. */
export const DEFAULT_MAX_WRITE_BYTES = 8 * 1024 * 1024;

/** How the handler verifies tokens: Ferry's authenticator, or your own `verify(token) => claims`. */
export type WriteAuth =
  | { authenticator: Pick<Authenticator, 'authenticate'> }
  | { verify: (token: string) => Promise<Record<string, unknown>> | Record<string, unknown> };

/**
 * Serves one write request: authenticates (401), reads at most
 * `maxBodyBytes` (413), parses (400), applies and answers 200 with a
 * `WriteResponse`. Request-level failures throw a FerryError for the caller
 * to answer.
 */
export async function serveWrite(
  req: IncomingMessage,
  res: ServerResponse,
  options: { api: WriteApi; auth: WriteAuth; maxBodyBytes?: number },
): Promise<void> {
  const client = await authenticateWrite(req.headers.authorization, options.auth);
  const body = await readBody(req, options.maxBodyBytes ?? DEFAULT_MAX_WRITE_BYTES);
  const transactions = parseWriteRequest(body);
  const response: WriteResponse = await options.api.apply(transactions, client);
  const text = JSON.stringify(response);
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

async function authenticateWrite(authorization: string | undefined, auth: WriteAuth): Promise<WriteClient> {
  if ('authenticator' in auth) {
    const client = await auth.authenticator.authenticate(authorization);
    return { userId: client.userId, claims: client.payload };
  }
  const token = tokenFromAuthorization(authorization);
  let claims: Record<string, unknown>;
  try {
    claims = await auth.verify(token);
  } catch (cause) {
    if (FerryError.is(cause)) throw cause;
    throw new FerryError('FERRY_S2002', `invalid token: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
  const sub = claims['sub'];
  if (typeof sub !== 'string' || sub === '') throw new FerryError('FERRY_S2005', 'token has no subject (sub)');
  return { userId: sub, claims };
}

export type WriteHandlerOptions = WriteAuth & {
  /** A ready API, or the options to open one (rules checked against the live schema at the first request). */
  api: WriteApi | WriteApiOptions;
  /** Largest accepted body in bytes (default 8 MiB). */
  maxBodyBytes?: number;
  /** Sets `Access-Control-Allow-Origin` and answers preflights when given. */
  corsOrigin?: string;
  logger?: WriteLogger & { error(obj: object, msg: string): void };
};

/** A mountable write endpoint. `close()` ends the pool the handler opened (if it opened one). */
export interface WriteHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Resolves once the rules are bound to the database (rejects with FERRY_S1202 when they do not match). */
  ready(): Promise<WriteApi>;
  close(): Promise<void>;
}

/**
 * Creates a write endpoint any Node backend can mount:
 *
 * ```ts
 * const write = createWriteHandler({
 *   api: { rules: await compileWriteRules(yamlText), connectionString: process.env.DATABASE_URL },
 *   verify: async (token) => (await jwtVerify(token, key)).payload,
 * });
 * http.createServer((req, res) => (req.url === '/write' ? write(req, res) : next(req, res)));
 * ```
 *
 * The handler never rejects: every error is answered (`{ error: { code, message } }`).
 */
export function createWriteHandler(options: WriteHandlerOptions): WriteHandler {
  const opened = options.api instanceof WriteApi ? Promise.resolve(options.api) : WriteApi.open(options.api);
  opened.catch(() => {}); // reported per request and by ready()
  const auth: WriteAuth =
    'authenticator' in options ? { authenticator: options.authenticator } : { verify: options.verify };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (options.corsOrigin !== undefined) res.setHeader('access-control-allow-origin', options.corsOrigin);
    try {
      if (req.method === 'OPTIONS' && options.corsOrigin !== undefined) {
        res.writeHead(204, {
          'access-control-allow-methods': 'POST, OPTIONS',
          'access-control-allow-headers': 'authorization, content-type',
          'access-control-max-age': '86400',
        });
        res.end();
        return;
      }
      if (req.method !== 'POST') {
        res.setHeader('allow', 'POST');
        throw new FerryError('FERRY_S4005', `the write endpoint does not accept ${req.method}; use POST`);
      }
      const api = await opened;
      await serveWrite(req, res, {
        api,
        auth,
        ...(options.maxBodyBytes ? { maxBodyBytes: options.maxBodyBytes } : {}),
      });
    } catch (error) {
      answerError(res, error, options.logger);
    }
  };
  return Object.assign(handler, {
    ready: () => opened,
    close: async () => {
      if (options.api instanceof WriteApi) return;
      const api = await opened.catch(() => null);
      await api?.close();
    },
  });
}

function answerError(res: ServerResponse, error: unknown, logger: WriteHandlerOptions['logger']): void {
  let ferryError: FerryError;
  if (FerryError.is(error)) {
    ferryError = error;
    if (ferryError.status >= 500) logger?.warn({ err: error }, 'write request failed');
  } else {
    logger?.error({ err: error }, 'unexpected error in write request');
    ferryError = new FerryError('FERRY_S9001', 'internal error', { cause: error });
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (ferryError.code === 'FERRY_S4002') res.setHeader('connection', 'close');
  const text = JSON.stringify(ferryError.toJSON());
  res.writeHead(ferryError.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
