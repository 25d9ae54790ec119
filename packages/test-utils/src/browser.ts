/**
 * Browser tests: Debian's Chromium through playwright-core (never a
 * downloaded browser) and a static file server on 127.0.0.1 for built
 * pages. 127.0.0.1 is a secure context, so OPFS, Web Locks and
 * `crypto.subtle` work without TLS.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { MIME_TYPES } from '@ferry/cli';

/** Where Debian installs Chromium (`apt-get install chromium`). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Launches headless Chromium from {@link CHROMIUM_PATH}. Close it with `browser.close()`. */
export async function launchChromium(): Promise<Browser> {
  // Imported lazily: most users of @ferry/test-utils never start a browser.
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A running static server. */
export interface StaticServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string;
  /** Paths requested so far, in order (e.g. `/assets/worker-abc.js`). */
  readonly requests: string[];
  close(): Promise<void>;
}

export interface StaticServerOptions {
  /** Extra headers on every response (e.g. COOP/COEP to test cross-origin isolation). */
  headers?: Record<string, string>;
  /** Serve `index.html` for unknown paths without an extension (single-page apps). Default true. */
  spaFallback?: boolean;
  /** 0 = any free port (default). */
  port?: number;
}

/**
 * Serves the files under `root` on 127.0.0.1 with correct MIME types
 * (including `application/wasm`, which `WebAssembly.instantiateStreaming`
 * requires). Never serves outside `root`.
 */
export async function serveStatic(root: string, options: StaticServerOptions = {}): Promise<StaticServer> {
  const base = path.resolve(root);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
      requests.push(pathname);
      let file = path.resolve(base, '.' + pathname);
      if (file !== base && !file.startsWith(base + path.sep)) {
        res.writeHead(403).end();
        return;
      }
      let info = await stat(file).catch(() => null);
      if (info?.isDirectory()) {
        file = path.join(file, 'index.html');
        info = await stat(file).catch(() => null);
      }
      if (info === null && options.spaFallback !== false && path.extname(pathname) === '') {
        file = path.join(base, 'index.html');
        info = await stat(file).catch(() => null);
      }
      if (info === null || !info.isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, {
        'content-type': MIME_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'content-length': info.size,
        'cache-control': 'no-store',
        ...options.headers,
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      createReadStream(file).pipe(res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { url: `http://127.0.0.1:${port}`, requests, close, [Symbol.asyncDispose]: close };
}
