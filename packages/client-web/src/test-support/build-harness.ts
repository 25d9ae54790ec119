/**
 * Builds the harness page (`harness/`) with Vite's JS API, the way an app
 * bundles @ferry/client-web: the package's `new Worker(new URL('./worker.js',
 * import.meta.url))` and wa-sqlite's `new URL('*.wasm', import.meta.url)` are
 * left for Vite to rewrite. `@ferry/*` resolve to the packages' sources
 * (as vitest.config.ts does), so no dist build is needed.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const PACKAGES = fileURLToPath(new URL('../../../', import.meta.url));
const HARNESS_ROOT = fileURLToPath(new URL('./harness/', import.meta.url));

/** Aliases from `@ferry/<pkg>` to `packages/<pkg>/src/index.ts`. */
export function ferrySourceAliases(): { find: RegExp; replacement: string }[] {
  return ['protocol', 'client', 'client-web', 'react'].map((pkg) => ({
    find: new RegExp(`^@ferry/${pkg}$`),
    replacement: path.join(PACKAGES, pkg, 'src', 'index.ts'),
  }));
}

export interface BuiltHarness {
  /** The output directory (serve it). */
  outDir: string;
  /** Removes the output directory. */
  remove(): Promise<void>;
}

/** Builds the harness into a fresh temp dir. */
export async function buildHarness(): Promise<BuiltHarness> {
  const { build } = await import('vite');
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-web-harness-'));
  await build({
    root: HARNESS_ROOT,
    configFile: false,
    logLevel: 'warn',
    resolve: { alias: ferrySourceAliases() },
    // The database worker loads the chosen SQLite build with a dynamic import: ES module workers only.
    worker: { format: 'es' },
    build: { outDir, emptyOutDir: true, target: 'es2022', reportCompressedSize: false },
  });
  return { outDir, remove: () => rm(outDir, { recursive: true, force: true }) };
}

export interface BundleFile {
  file: string;
  bytes: number;
  gzipBytes: number;
}

export interface BundleSizes {
  files: BundleFile[];
  /** The WASM build OPFS uses (sync build), gzipped. */
  opfsWasm: BundleFile | undefined;
  /** The WASM build IndexedDB uses (Asyncify build), gzipped. */
  idbWasm: BundleFile | undefined;
  /** JavaScript the page loads before opening a database (entry chunk(s), not the worker). */
  mainJs: BundleFile[];
  /** The worker's own JavaScript (entry chunk). */
  workerJs: BundleFile[];
  /** The SQLite glue modules loaded by the worker at open time (one of them per VFS). */
  sqliteJs: BundleFile[];
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full, base)));
    else out.push(path.relative(base, full));
  }
  return out;
}

/**
 * Sizes (raw and gzip -9) of a Vite build of an app using @ferry/client-web,
 * classified by file name: `wa-sqlite.wasm` (OPFS), `wa-sqlite-async.wasm`
 * (IndexedDB), the worker chunk, the SQLite glue chunks, and the rest of the
 * JavaScript (what the page itself ships).
 */
export async function measureBundle(outDir: string): Promise<BundleSizes> {
  const files: BundleFile[] = [];
  for (const file of await listFiles(outDir)) {
    if (file.endsWith('.map')) continue;
    const full = path.join(outDir, file);
    const bytes = (await stat(full)).size;
    files.push({ file, bytes, gzipBytes: gzipSync(await readFile(full), { level: 9 }).length });
  }
  const base = (f: BundleFile): string => path.basename(f.file);
  const js = files.filter((f) => f.file.endsWith('.js'));
  const isSqliteGlue = (f: BundleFile): boolean => /^wa-sqlite(-async)?-[\w-]+\.js$/.test(base(f));
  const isVfs = (f: BundleFile): boolean => /VFS-[\w-]+\.js$/.test(base(f));
  const isWorker = (f: BundleFile): boolean => /^worker-[\w-]+\.js$/.test(base(f));
  return {
    files,
    opfsWasm: files.find((f) => /^wa-sqlite-[\w-]+\.wasm$/.test(base(f)) && !base(f).startsWith('wa-sqlite-async')),
    idbWasm: files.find((f) => /^wa-sqlite-async-[\w-]+\.wasm$/.test(base(f))),
    workerJs: js.filter(isWorker),
    sqliteJs: js.filter((f) => isSqliteGlue(f) || isVfs(f)),
    mainJs: js.filter((f) => !isWorker(f) && !isSqliteGlue(f) && !isVfs(f)),
  };
}
