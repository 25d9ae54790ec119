import { defineConfig } from 'vite';

// The task board's own Vite settings. `ferry dev` runs Vite with this file
// merged over its inline config, which already resolves @ferry/* to their
// TypeScript sources, keeps @journeyapps/wa-sqlite out of pre-bundling (it
// loads its .wasm by URL) and serves on the service's port.
export default defineConfig({
  build: { target: 'es2022', sourcemap: true },
});
