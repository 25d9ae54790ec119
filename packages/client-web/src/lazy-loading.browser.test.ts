/**
 * Importing @ferry/client-web costs no WASM: the harness page imports the
 * package at start-up, and the worker, the SQLite glue and the .wasm are
 * only fetched when a database is opened, and then only the chosen VFS's
 * build. Also prints the gzipped sizes of the build (for the benchmarks).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { harnessValue, startHarness, type HarnessFixture } from './test-support/browser-fixture.js';
import { measureBundle } from './test-support/build-harness.js';

let fx: HarnessFixture;

beforeAll(async () => {
  fx = await startHarness();
});

afterAll(() => fx?.close());

const isWasm = (p: string): boolean => p.endsWith('.wasm');
const kb = (bytes: number): string => (bytes / 1024).toFixed(1);

it('loads no worker and no .wasm until a database is opened, then only the chosen build', async () => {
  const start = fx.server.requests.length;
  const page = await fx.newPage();
  const atLoad = fx.server.requests.slice(start);
  expect(atLoad).toContain('/');
  expect(atLoad.filter(isWasm)).toEqual([]);
  expect(atLoad.filter((p) => /worker|wa-sqlite|VFS/.test(p))).toEqual([]);

  const beforeOpfs = fx.server.requests.length;
  const opfs = await harnessValue(page, 'driverOpen', `lazy-${Date.now()}.db`, 'opfs');
  const forOpfs = fx.server.requests.slice(beforeOpfs);
  expect(forOpfs.filter(isWasm)).toEqual([expect.stringMatching(/\/wa-sqlite-(?!async)[\w-]+\.wasm$/)]);
  expect(forOpfs.some((p) => /worker-[\w-]+\.js$/.test(p))).toBe(true);
  expect(forOpfs.some((p) => /OPFSCoopSyncVFS/.test(p))).toBe(true);
  expect(forOpfs.some((p) => /IDBBatchAtomicVFS|wa-sqlite-async/.test(p))).toBe(false);
  await harnessValue(page, 'driverClose', opfs.id);

  const other = await fx.newPage();
  const beforeIdb = fx.server.requests.length;
  const idb = await harnessValue(other, 'driverOpen', `lazy-idb-${Date.now()}.db`, 'idb');
  const forIdb = fx.server.requests.slice(beforeIdb);
  expect(forIdb.filter(isWasm)).toEqual([expect.stringMatching(/\/wa-sqlite-async-[\w-]+\.wasm$/)]);
  expect(forIdb.some((p) => /IDBBatchAtomicVFS/.test(p))).toBe(true);
  expect(forIdb.some((p) => /OPFSCoopSyncVFS/.test(p))).toBe(false);
  await harnessValue(other, 'driverClose', idb.id);
});

it('measures the gzipped sizes of what the page loads', async () => {
  const sizes = await measureBundle(fx.built.outDir);
  expect(sizes.opfsWasm).toBeDefined();
  expect(sizes.idbWasm).toBeDefined();
  expect(sizes.workerJs).toHaveLength(1);
  // The page's own JavaScript holds no SQLite: that is all in lazily loaded chunks.
  expect(sizes.mainJs.filter((f) => /wa-sqlite|VFS/.test(f.file))).toEqual([]);
  const sum = (files: { gzipBytes: number }[]): number => files.reduce((s, f) => s + f.gzipBytes, 0);
  const glue = (re: RegExp): number => sum(sizes.sqliteJs.filter((f) => re.test(f.file)));
  console.log(
    [
      `wasm gz: opfs ${kb(sizes.opfsWasm!.gzipBytes)} KB (raw ${kb(sizes.opfsWasm!.bytes)}), ` +
        `idb ${kb(sizes.idbWasm!.gzipBytes)} KB (raw ${kb(sizes.idbWasm!.bytes)})`,
      `js gz: page ${kb(sum(sizes.mainJs))} KB, worker ${kb(sum(sizes.workerJs))} KB, ` +
        `sqlite glue opfs ${kb(glue(/wa-sqlite-(?!async)|OPFSCoopSyncVFS|FacadeVFS/))} KB, ` +
        `idb ${kb(glue(/wa-sqlite-async|IDBBatchAtomicVFS|FacadeVFS/))} KB`,
    ].join('\n'),
  );
});
