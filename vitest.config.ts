import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources of every package; builds and the
// CLI use dist/. The aliases mirror each package's `ferry-source` export.
const src = (pkg: string, file = 'index.ts') =>
  fileURLToPath(new URL(`./packages/${pkg}/src/${file}`, import.meta.url));
const alias = [
  { find: /^@ferry\/test-utils\/global-setup$/, replacement: src('test-utils', 'global-setup.ts') },
  ...['protocol', 'rules', 'service', 'client', 'client-node', 'client-web', 'react', 'cli', 'test-utils'].map(
    (pkg) => ({
      find: new RegExp(`^@ferry/${pkg}$`),
      replacement: src(pkg),
    }),
  ),
];

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts'],
          exclude: ['**/*.pg.test.ts', '**/*.browser.test.ts', '**/node_modules/**'],
          testTimeout: 20_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'pg',
          include: ['packages/*/src/**/*.pg.test.ts'],
          globalSetup: ['packages/test-utils/src/global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          env: { TZ: 'America/Sao_Paulo' },
        },
      },
      {
        // Real Chromium (Debian's /usr/bin/chromium via playwright-core), and Postgres for the service.
        extends: true,
        test: {
          name: 'browser',
          include: ['packages/*/src/**/*.browser.test.ts'],
          globalSetup: ['packages/test-utils/src/global-setup.ts'],
          testTimeout: 90_000,
          hookTimeout: 180_000,
          env: { TZ: 'America/Sao_Paulo' },
        },
      },
    ],
  },
});
