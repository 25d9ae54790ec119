import react from '@vitejs/plugin-react';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defineConfig, type Plugin } from 'vite';

/**
 * Lists every file of the production build in `precache.json`, which the
 * service worker (`public/sw.js`) caches when it installs: the offline app
 * shell. Runs after the worker and its WASM were emitted too.
 */
function precacheList(): Plugin {
  let outDir = '';
  let failed = false;
  return {
    name: 'ferry-tasks-precache-list',
    apply: 'build',
    configResolved(config) {
      outDir = path.resolve(config.root, config.build.outDir);
    },
    buildStart() {
      failed = false;
    },
    buildEnd(error) {
      if (error !== undefined) failed = true;
    },
    async closeBundle() {
      if (failed) return; // Vite reports why the build failed
      const entries = await readdir(outDir, { recursive: true, withFileTypes: true });
      const files = entries
        .filter((entry) => entry.isFile())
        .map((entry) => path.relative(outDir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
        .filter((file) => !file.endsWith('.map') && file !== 'sw.js' && file !== 'precache.json')
        .sort();
      await writeFile(path.join(outDir, 'precache.json'), JSON.stringify({ files: ['', ...files] }));
    },
  };
}

// The task board's own Vite settings. `ferry dev` runs Vite with this file
// merged over its inline config, which already resolves @ferry/* to their
// TypeScript sources, keeps @journeyapps/wa-sqlite out of pre-bundling (it
// loads its .wasm by URL), builds the SQLite worker as an ES module and
// serves on the service's port.
export default defineConfig({
  plugins: [react(), precacheList()],
  build: { target: 'es2022', sourcemap: true },
});
