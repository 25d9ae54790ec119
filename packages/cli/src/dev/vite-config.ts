import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Types only: erased at runtime, so importing this file never loads Vite.
import type { Alias, InlineConfig } from 'vite';

/** `packages/` of the Ferry checkout this CLI runs from (the same from `src/dev/` and `dist/dev/`). */
const PACKAGES_DIR = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Aliases `@ferry/<name>` to `packages/<name>/src/index.ts` for every Ferry
 * package whose TypeScript sources are here (as vitest.config.ts does), so a
 * web app in the Ferry repository needs no `dist/` build and edits to the
 * client packages reload live too. Empty when the CLI runs from an install
 * without sources: then the app resolves the published packages itself.
 */
export function ferrySourceAliases(packagesDir = PACKAGES_DIR): Alias[] {
  if (!existsSync(packagesDir)) return [];
  const aliases: Alias[] = [];
  for (const entry of readdirSync(packagesDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = path.join(packagesDir, entry.name);
    const entryFile = path.join(dir, 'src', 'index.ts');
    const manifest = path.join(dir, 'package.json');
    if (!existsSync(entryFile) || !existsSync(manifest)) continue;
    const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
    if (typeof name !== 'string' || !name.startsWith('@ferry/')) continue;
    aliases.push({ find: new RegExp(`^${name.replace(/[/\\^$.*+?()[\]{}|-]/g, '\\$&')}$`), replacement: entryFile });
  }
  return aliases.sort((a, b) => String(a.find).localeCompare(String(b.find)));
}

export interface WebViteConfigOptions {
  /** The app's folder (`<project>/web`): Vite's root; its own `vite.config.*` is loaded and merged. */
  webDir: string;
  /** `serve`: middleware mode on `httpServer`. `build`: a production build into `outDir`. */
  command: 'serve' | 'build';
  /** The service's HTTP server: Vite's HMR WebSocket attaches to it (one port). Required for `serve`. */
  httpServer?: Server;
  /** Build output folder. Required for `build`. */
  outDir?: string;
  /** Vite's own log level. Default `info`. */
  logLevel?: InlineConfig['logLevel'];
}

/**
 * The inline Vite config `ferry dev` runs the project's web app with. It
 * carries only the Ferry plumbing; the app's `vite.config.ts` (plugins such
 * as React) is merged on top by Vite.
 *
 * - `@ferry/*` resolve to their TypeScript sources ({@link ferrySourceAliases}).
 * - `@journeyapps/wa-sqlite` is not pre-bundled: it loads its `.wasm` by a
 *   URL relative to its own module, which pre-bundling would break.
 * - Workers are ES modules (the client's SQLite worker imports modules).
 * - Serving: middleware mode with `appType: 'spa'` (index.html for client
 *   routes), HMR over the service's own server, Vite's CORS off (the
 *   service answers CORS), and file access allowed to the Ferry checkout so
 *   the aliased sources and the hoisted `node_modules` can be served.
 */
export async function webViteConfig(options: WebViteConfigOptions): Promise<InlineConfig> {
  const { searchForWorkspaceRoot } = await import('vite');
  const webDir = path.resolve(options.webDir);
  const aliases = ferrySourceAliases();
  const common: InlineConfig = {
    root: webDir,
    appType: 'spa',
    clearScreen: false,
    logLevel: options.logLevel ?? 'info',
    resolve: { alias: aliases },
    optimizeDeps: { exclude: ['@journeyapps/wa-sqlite'] },
    worker: { format: 'es' },
  };
  if (options.command === 'build') {
    if (options.outDir === undefined) throw new Error('webViteConfig: outDir is required to build');
    return {
      ...common,
      mode: 'production',
      build: { outDir: path.resolve(options.outDir), emptyOutDir: true },
    };
  }
  if (options.httpServer === undefined) throw new Error('webViteConfig: httpServer is required to serve');
  return {
    ...common,
    mode: 'development',
    server: {
      middlewareMode: true,
      ws: { server: options.httpServer },
      cors: false,
      fs: {
        allow: [
          searchForWorkspaceRoot(webDir),
          ...(aliases.length > 0 ? [path.dirname(path.resolve(PACKAGES_DIR))] : []),
        ],
      },
    },
  };
}
