/**
 * The browser side of the `web` benchmarks: the @ferry/client-web test
 * harness page (packages/client-web/src/test-support/harness) built for
 * production with Vite the way an app bundles the package, served from
 * 127.0.0.1 by @ferry/test-utils' static server, and Debian's Chromium
 * (`/usr/bin/chromium`, never a downloaded browser). Pages are driven
 * through `window.ferryHarness` (see client-web's `harness-api.ts`; typed
 * loosely here, as the CLI does not depend on client-web's test support).
 *
 * Each "device" is a fresh Chromium profile on disk
 * (`launchPersistentContext` on a new temp dir), not a context of one
 * browser: Playwright's `browser.newContext()` contexts are off-the-record
 * profiles, where OPFS lives in memory in the browser process and every
 * sync-access-handle call is an IPC. That made a small write transaction
 * ~5x slower (5.3 vs 0.9 ms) than for a user's normal profile, which is
 * what the benchmarks are meant to show. Same binary, same flags.
 *
 * @ferry/test-utils depends on this package, so it is loaded at run time
 * from its build (`npm run build` builds it) rather than imported.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { BrowserContext, Page } from 'playwright-core';

/** The parts of @ferry/test-utils' `browser.ts` used here. */
interface BrowserUtils {
  CHROMIUM_PATH: string;
  serveStatic(root: string): Promise<{ readonly url: string; readonly requests: string[]; close(): Promise<void> }>;
}

/** The flags every Ferry browser test launches Chromium with (as @ferry/test-utils' `launchChromium`). */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

export interface WebBench {
  /** Starts Chromium on a fresh profile in a temp dir (a new device: empty storage); closed by `close()`. */
  newProfile(): Promise<BrowserContext>;
  /** The harness page's origin, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Paths the static server was asked for, in order. */
  readonly requests: string[];
  /** The production build (what the page loads). */
  readonly outDir: string;
  close(): Promise<void>;
}

/** Builds the harness with Vite into a temp folder and serves it. */
export async function startWebBench(repoRoot: string, tmpDir: string): Promise<WebBench> {
  const utilsPath = path.join(repoRoot, 'packages/test-utils/dist/browser.js');
  const utils = (await import(pathToFileURL(utilsPath).href).catch((error: unknown) => {
    throw new Error(`cannot load ${utilsPath} (run npm run build first)`, { cause: error });
  })) as BrowserUtils;
  const outDir = await mkdtemp(path.join(tmpDir, 'web-harness-'));
  const { build } = await import('vite');
  const packages = path.join(repoRoot, 'packages');
  await build({
    root: path.join(packages, 'client-web/src/test-support/harness'),
    configFile: false,
    logLevel: 'warn',
    // The packages' sources, as the client-web tests build it (no dist needed for the page).
    resolve: {
      alias: ['protocol', 'client', 'client-web'].map((pkg) => ({
        find: new RegExp(`^@ferry/${pkg}$`),
        replacement: path.join(packages, pkg, 'src', 'index.ts'),
      })),
    },
    worker: { format: 'es' },
    build: { outDir, emptyOutDir: true, target: 'es2022', reportCompressedSize: false },
  });
  const server = await utils.serveStatic(outDir);
  const { chromium } = await import('playwright-core');
  const profiles: { context: BrowserContext; dir: string }[] = [];
  return {
    async newProfile() {
      const dir = await mkdtemp(path.join(tmpDir, 'chromium-profile-'));
      const context = await chromium.launchPersistentContext(dir, {
        executablePath: utils.CHROMIUM_PATH,
        args: CHROMIUM_ARGS,
      });
      profiles.push({ context, dir });
      return context;
    },
    url: server.url,
    requests: server.requests,
    outDir,
    async close() {
      for (const { context, dir } of profiles) {
        await context.close().catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      }
      await server.close();
      await rm(outDir, { recursive: true, force: true });
    },
  };
}

/** A harness result: `{ ok: true, value }` or `{ ok: false, error }`. */
type HarnessResult =
  { ok: true; value: unknown } | { ok: false; error: { name: string; code: string | null; message: string } };

/** Calls `window.ferryHarness[method](...args)` in the page and returns its raw answer. */
export async function callPage<T = unknown>(page: Page, method: string, ...args: unknown[]): Promise<T> {
  return (await page.evaluate(
    ({ method, args }) => {
      const harness = (globalThis as unknown as { ferryHarness: Record<string, (...a: unknown[]) => unknown> })
        .ferryHarness;
      return harness[method]!(...args);
    },
    { method, args },
  )) as T;
}

/** Calls a harness method answering a result; returns its value or throws with the page's error. */
export async function pageValue<T = unknown>(page: Page, method: string, ...args: unknown[]): Promise<T> {
  const result = await callPage<HarnessResult>(page, method, ...args);
  if (!result.ok) {
    throw new Error(`page ${method} failed: ${result.error.name} ${result.error.code ?? ''} ${result.error.message}`);
  }
  return result.value as T;
}

/** Opens the harness page in `page` and waits until it is ready (optionally with a `#hash`). */
export async function gotoHarness(page: Page, url: string, hash = ''): Promise<void> {
  await page.goto(`${url}/${hash}`);
  await page.waitForFunction(() => (globalThis as { ferryHarnessReady?: boolean }).ferryHarnessReady === true);
}

export interface FileSize {
  file: string;
  bytes: number;
  gzipBytes: number;
}

/**
 * Raw and gzip -9 sizes of the files of `outDir` that the page requested
 * (`requested` = server paths like `/assets/worker-abc.js`), split into
 * `.wasm` and `.js`.
 */
export async function loadedSizes(
  outDir: string,
  requested: readonly string[],
): Promise<{ wasm: FileSize[]; js: FileSize[] }> {
  const unique = [...new Set(requested.map((p) => p.replace(/^\/+/, '')))];
  const present = new Set(await listFiles(outDir));
  const sizes: FileSize[] = [];
  for (const file of unique) {
    if (!present.has(file)) continue;
    const full = path.join(outDir, file);
    const bytes = (await stat(full)).size;
    sizes.push({ file, bytes, gzipBytes: gzipSync(await readFile(full), { level: 9 }).length });
  }
  return { wasm: sizes.filter((f) => f.file.endsWith('.wasm')), js: sizes.filter((f) => f.file.endsWith('.js')) };
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full, base)));
    else out.push(path.relative(base, full).split(path.sep).join('/'));
  }
  return out;
}
