import { FerryError } from '@ferry/protocol';
import type { Server } from 'node:http';
import type { RequestHandler } from './request-handler.js';
import { createStaticFiles } from './static-files.js';
import { webViteConfig } from './vite-config.js';

/**
 * How `ferry dev` serves the project's web app:
 * - `vite`: Vite's dev server in middleware mode (modules transformed on
 *   request, edits reload live over HMR on the same port);
 * - `static`: one production `vite build`, then the built files from disk.
 */
export type WebMode = 'vite' | 'static';

export interface WebAppOptions {
  /** The app's folder (`<project>/web`, with `index.html`). */
  webDir: string;
  mode: WebMode;
  /** Where `static` mode builds to (e.g. `<project>/.ferry/web`). */
  outDir: string;
  /** The service's HTTP server (for Vite's HMR WebSocket). */
  httpServer: Server;
  /** Vite's log level. Default `info`. */
  logLevel?: 'info' | 'warn' | 'error' | 'silent';
}

/** A web app served through the service's fallback hook. */
export interface WebApp {
  readonly mode: WebMode;
  /** Answers every request it gets in `vite` mode; in `static` mode, GET/HEAD of files and client routes. */
  readonly handle: RequestHandler;
  /** Stops Vite's watcher and HMR server (nothing to do in `static` mode). */
  close(): Promise<void>;
}

/**
 * Starts serving the web app. Vite is imported here, on demand, so
 * processes that never serve a web app (`ferry start`) never load it.
 */
export async function startWebApp(options: WebAppOptions): Promise<WebApp> {
  const vite = await import('vite');
  const logLevel = options.logLevel ?? 'info';
  if (options.mode === 'static') {
    await vite.build(
      await webViteConfig({ webDir: options.webDir, command: 'build', outDir: options.outDir, logLevel }),
    );
    return { mode: 'static', handle: createStaticFiles({ root: options.outDir }), close: async () => {} };
  }
  const server = await vite.createServer(
    await webViteConfig({ webDir: options.webDir, command: 'serve', httpServer: options.httpServer, logLevel }),
  );
  const handle: RequestHandler = (req, res) =>
    new Promise<boolean>((resolve, reject) => {
      const answered = (): void => resolve(true);
      res.once('close', answered);
      server.middlewares(req, res, (error?: unknown) => {
        res.off('close', answered);
        // With appType 'spa' Vite answers everything (its own 404 included), so
        // reaching the end of its stack means a failure it has already logged.
        reject(
          new FerryError('FERRY_S9001', `the web app's dev server could not serve ${req.url ?? '/'}; see its log`, {
            cause: error,
          }),
        );
      });
    });
  return { mode: 'vite', handle, close: () => server.close() };
}
