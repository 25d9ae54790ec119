import { FerryError } from '@ferry/protocol';
import { readBody } from '@ferry/service';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pg from 'pg';
import type { RequestHandler } from './request-handler.js';

/** The users `GET /demo/users` lists: everyone with a workspace membership in the dev database. */
export const DEFAULT_DEMO_USERS_QUERY = `SELECT user_id AS id, count(*)::int AS workspaces
  FROM workspace_members GROUP BY user_id ORDER BY user_id`;

/** Default lifetime of a demo token, seconds. */
export const DEMO_TOKEN_SECONDS = 3600;

export interface DemoUser {
  id: string;
  /** Workspaces the user is a member of. */
  workspaces: number;
}

/** Body of `POST /demo/token`'s answer. */
export interface DemoTokenResponse {
  /** A dev token (Ed25519, `ferry dev`'s key) for the sync stream and the write API. */
  token: string;
  /** The Ferry endpoint to connect to (the origin the request came to). */
  endpoint: string;
  /** When the token expires, ISO-8601. */
  expiresAt: string;
}

export interface DemoAuthOptions {
  /** The dev database (seeded by the project's migrations). */
  databaseUrl: string;
  /** Signs a dev token for a user. */
  sign(userId: string, expiresInSeconds: number): Promise<string>;
  /** The service's own URL, used when a request carries no `Host` header. */
  endpoint(): string;
  /** SQL returning the seeded users as rows `{ id, workspaces }`; default {@link DEFAULT_DEMO_USERS_QUERY}. */
  usersQuery?: string;
  /** Token lifetime, seconds. Default {@link DEMO_TOKEN_SECONDS}. */
  tokenSeconds?: number;
}

/**
 * The demo app's sign-in backend, mounted by `ferry dev` only (never by
 * `ferry start`): a stand-in for the app backend that real apps (the seeds)
 * have, which signs a token for whoever its own login accepted. Here anyone
 * may be any seeded user.
 *
 * - `GET /demo/users` → `{ users: [{ id, workspaces }] }`
 * - `POST /demo/token` `{ "user": "alice" }` → {@link DemoTokenResponse};
 *   a user that is not seeded → 404 FERRY_S4004.
 *
 * Other paths decline (resolve false).
 */
export function createDemoAuth(options: DemoAuthOptions): RequestHandler & { close(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  pool.on('error', () => {}); // an idle client lost: the next query opens another
  const usersQuery = options.usersQuery ?? DEFAULT_DEMO_USERS_QUERY;
  const tokenSeconds = options.tokenSeconds ?? DEMO_TOKEN_SECONDS;

  async function users(): Promise<DemoUser[]> {
    let rows: { id: unknown; workspaces: unknown }[];
    try {
      ({ rows } = await pool.query<{ id: unknown; workspaces: unknown }>(usersQuery));
    } catch (error) {
      // undefined_table: a project without the demo's workspace_members has no seeded users.
      if ((error as { code?: string }).code === '42P01') {
        throw new FerryError('FERRY_S4004', 'no seeded users: the dev database has no workspace_members table', {
          cause: error,
        });
      }
      throw error;
    }
    return rows.map((row) => ({ id: String(row.id), workspaces: Number(row.workspaces) }));
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const user = parseTokenRequest(await readBody(req, 16 * 1024));
    if (!(await users()).some((candidate) => candidate.id === user)) {
      throw new FerryError('FERRY_S4004', `no seeded user "${user}": GET /demo/users lists them`, {
        details: { user },
      });
    }
    const expiresAt = new Date((Math.floor(Date.now() / 1000) + tokenSeconds) * 1000);
    const body: DemoTokenResponse = {
      token: await options.sign(user, tokenSeconds),
      endpoint: requestOrigin(req) ?? options.endpoint(),
      expiresAt: expiresAt.toISOString(),
    };
    sendJson(res, 200, body);
  }

  const handle: RequestHandler = async (req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    if (pathname === '/demo/users') {
      requireMethod(req, res, 'GET');
      sendJson(res, 200, { users: await users() });
      return true;
    }
    if (pathname === '/demo/token') {
      requireMethod(req, res, 'POST');
      await token(req, res);
      return true;
    }
    return false;
  };
  return Object.assign(handle, { close: () => pool.end() });
}

/** `{ "user": "<id>" }` → the id; anything else is FERRY_S4001. */
function parseTokenRequest(body: Buffer): string {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new FerryError('FERRY_S4001', `request body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const user = typeof json === 'object' && json !== null ? (json as { user?: unknown }).user : undefined;
  if (typeof user !== 'string' || user === '' || user.length > 200) {
    throw new FerryError('FERRY_S4001', 'expected a body {"user": "<seeded user id>"}');
  }
  return user;
}

function requireMethod(req: IncomingMessage, res: ServerResponse, method: 'GET' | 'POST'): void {
  if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return;
  res.setHeader('allow', method);
  const { pathname } = new URL(req.url ?? '/', 'http://localhost');
  throw new FerryError('FERRY_S4005', `${pathname} does not accept ${req.method}; use ${method}`);
}

/** `http://<Host>` of the request, so the app connects to the origin it was loaded from (same-origin, no CORS). */
function requestOrigin(req: IncomingMessage): string | null {
  const host = req.headers.host;
  return host !== undefined && /^[\w.[\]:-]+$/.test(host) ? `http://${host}` : null;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
