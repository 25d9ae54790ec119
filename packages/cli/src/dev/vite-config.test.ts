import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ferrySourceAliases, webViteConfig } from './vite-config.js';

const REPO_ROOT = path.resolve(fileURLToPath(new URL('../../../../', import.meta.url)));

describe('the web app Vite config', () => {
  it('aliases each @ferry package to its TypeScript sources, by exact name', () => {
    const aliases = ferrySourceAliases();
    const resolve = (name: string) => aliases.find((alias) => (alias.find as RegExp).test(name))?.replacement ?? null;
    expect(resolve('@ferry/client-web')).toBe(path.join(REPO_ROOT, 'packages/client-web/src/index.ts'));
    expect(resolve('@ferry/client')).toBe(path.join(REPO_ROOT, 'packages/client/src/index.ts'));
    expect(resolve('@ferry/protocol')).toBe(path.join(REPO_ROOT, 'packages/protocol/src/index.ts'));
    expect(resolve('@ferry/react')).toBe(path.join(REPO_ROOT, 'packages/react/src/index.ts'));
    expect(resolve('@ferry/client-web/worker')).toBeNull();
    expect(resolve('@ferry/clientx')).toBeNull();
    expect(resolve('react')).toBeNull();
    expect(ferrySourceAliases(path.join(REPO_ROOT, 'no-such-dir'))).toEqual([]);
  });

  it('serves in middleware mode with HMR on the given server and leaves wa-sqlite unbundled', async () => {
    const httpServer = createServer();
    const webDir = path.join(REPO_ROOT, 'apps/tasks/web');
    const config = await webViteConfig({ webDir, command: 'serve', httpServer });
    expect(config.root).toBe(webDir);
    expect(config.appType).toBe('spa');
    expect(config.server?.middlewareMode).toBe(true);
    expect(config.server?.ws).toEqual({ server: httpServer });
    expect(config.server?.cors).toBe(false);
    expect(config.server?.fs?.allow).toContain(REPO_ROOT);
    expect(config.optimizeDeps?.exclude).toContain('@journeyapps/wa-sqlite');
    expect(config.worker?.format).toBe('es');
    await expect(webViteConfig({ webDir, command: 'serve' })).rejects.toThrow('httpServer is required');
  });

  it('builds into the given folder, emptied first', async () => {
    const webDir = path.join(REPO_ROOT, 'apps/tasks/web');
    const config = await webViteConfig({ webDir, command: 'build', outDir: 'relative/out' });
    expect(config.build).toEqual({ outDir: path.resolve('relative/out'), emptyOutDir: true });
    expect(config.mode).toBe('production');
    expect(config.server).toBeUndefined();
    await expect(webViteConfig({ webDir, command: 'build' })).rejects.toThrow('outDir is required');
  });
});
