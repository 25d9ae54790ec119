import { FerryError } from '@ferry/protocol';
import type { RequestHandler } from './request-handler.js';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

/** Content types by file extension (lower case, with the dot). Anything else is `application/octet-stream`. */
export const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
};

/** Long-lived, for files whose name carries a content hash: a new build gives them a new name. */
export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';
/** For everything else (index.html, public/ files): the browser revalidates each time. */
export const REVALIDATE_CACHE = 'no-cache';

export interface StaticFilesOptions {
  /** The built app (e.g. `<project>/.ferry/web`). */
  root: string;
  /** Path prefix (relative to `root`, `/`-separated) of the content-hashed files. Default `assets/`, Vite's `build.assetsDir`. */
  hashedDir?: string;
  /** The page answered for client routes (paths without a file). Default `index.html`. */
  indexFile?: string;
}

/**
 * Serves a built single-page app from disk: the right content type per
 * extension (`.wasm` as `application/wasm`, which `WebAssembly.instantiateStreaming`
 * insists on), `index.html` for client routes, immutable caching for hashed
 * assets, `no-cache` elsewhere, `ETag`/`Last-Modified` revalidation, and
 * nothing outside `root`. Only GET and HEAD are served; other methods decline
 * (the server then answers 404). A missing file with an extension also
 * declines, so a mistyped asset URL is a 404, not the app's HTML.
 */
export function createStaticFiles(options: StaticFilesOptions): RequestHandler {
  const root = path.resolve(options.root);
  const hashedDir = options.hashedDir ?? 'assets/';
  const indexFile = options.indexFile ?? 'index.html';
  let realRoot: Promise<string> | null = null;

  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch (cause) {
      throw new FerryError('FERRY_S4001', 'malformed URL path', { cause });
    }
    if (pathname.includes('\0')) throw new FerryError('FERRY_S4001', 'malformed URL path');
    realRoot ??= realpath(root);
    const base = await realRoot;
    const relative = pathname.replace(/^\/+/, '');
    const file = await findFile(base, relative === '' || relative.endsWith('/') ? `${relative}${indexFile}` : relative);
    if (file !== null) {
      const cache = relative.startsWith(hashedDir) ? IMMUTABLE_CACHE : REVALIDATE_CACHE;
      sendFile(req, res, file.path, file.size, file.mtime, cache);
      return true;
    }
    // A client route (`/projects/42`) gets the app; a missing file (`/logo.png`) does not.
    if (path.posix.extname(relative) !== '') return false;
    const index = await findFile(base, indexFile);
    if (index === null) return false;
    sendFile(req, res, index.path, index.size, index.mtime, REVALIDATE_CACHE);
    return true;
  };
}

/** The regular file at `relative` under `base` (symlinks resolved, never escaping `base`), or null. */
async function findFile(base: string, relative: string): Promise<{ path: string; size: number; mtime: Date } | null> {
  const candidate = path.resolve(base, relative);
  if (!isInside(base, candidate)) return null;
  try {
    const real = await realpath(candidate);
    if (!isInside(base, real)) return null;
    const info = await stat(real);
    return info.isFile() ? { path: real, size: info.size, mtime: info.mtime } : null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return null;
    throw error;
  }
}

function isInside(base: string, candidate: string): boolean {
  const relative = path.relative(base, candidate);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  file: string,
  size: number,
  mtime: Date,
  cacheControl: string,
): void {
  const etag = `W/"${size.toString(16)}-${Math.floor(mtime.getTime()).toString(16)}"`;
  const headers = {
    'content-type': MIME_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'cache-control': cacheControl,
    etag,
    'last-modified': mtime.toUTCString(),
    'x-content-type-options': 'nosniff',
  };
  if (isFresh(req, etag, mtime)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': size });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on('error', (error) => res.destroy(error));
  stream.pipe(res);
}

/** Conditional GET: `If-None-Match` wins over `If-Modified-Since` (RFC 9110 §13.2.2). */
function isFresh(req: IncomingMessage, etag: string, mtime: Date): boolean {
  const noneMatch = req.headers['if-none-match'];
  if (noneMatch !== undefined) {
    return noneMatch
      .split(',')
      .map((tag) => tag.trim())
      .some((tag) => tag === '*' || tag === etag || `W/${tag}` === etag);
  }
  const modifiedSince = req.headers['if-modified-since'];
  if (modifiedSince === undefined) return false;
  const since = Date.parse(modifiedSince);
  return Number.isFinite(since) && Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}
