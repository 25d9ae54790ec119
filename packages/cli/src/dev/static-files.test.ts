import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStaticFiles, IMMUTABLE_CACHE, REVALIDATE_CACHE } from './static-files.js';

let dir: string;
let server: Server;
let url: string;

const INDEX = '<!doctype html><title>app</title>';
const WASM = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-static-'));
  const root = path.join(dir, 'web');
  await mkdir(path.join(root, 'assets'), { recursive: true });
  await mkdir(path.join(root, 'docs'), { recursive: true });
  await writeFile(path.join(root, 'index.html'), INDEX);
  await writeFile(path.join(root, 'docs', 'index.html'), '<p>docs</p>');
  await writeFile(path.join(root, 'assets', 'index-AbC123.js'), 'export {};');
  await writeFile(path.join(root, 'assets', 'style-XyZ.css'), 'body{}');
  await writeFile(path.join(root, 'assets', 'sqlite-Q1w2.wasm'), WASM);
  await writeFile(path.join(root, 'manifest.webmanifest'), '{}');
  await writeFile(path.join(root, 'blob.unknownext'), 'x');
  await writeFile(path.join(dir, 'secret.txt'), 'secret');
  await symlink(path.join(dir, 'secret.txt'), path.join(root, 'escape.txt'));
  const handle = createStaticFiles({ root });
  server = createServer((req, res) => {
    handle(req, res).then(
      (handled) => {
        if (!handled) res.writeHead(404).end('declined');
      },
      (error: unknown) => res.writeHead(400).end(String(error)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('static files', () => {
  it('serves files with their content type and caches only the hashed assets for good', async () => {
    const cases: [string, string, string][] = [
      ['/', 'text/html; charset=utf-8', REVALIDATE_CACHE],
      ['/index.html', 'text/html; charset=utf-8', REVALIDATE_CACHE],
      ['/assets/index-AbC123.js', 'text/javascript; charset=utf-8', IMMUTABLE_CACHE],
      ['/assets/style-XyZ.css', 'text/css; charset=utf-8', IMMUTABLE_CACHE],
      ['/assets/sqlite-Q1w2.wasm', 'application/wasm', IMMUTABLE_CACHE],
      ['/manifest.webmanifest', 'application/manifest+json; charset=utf-8', REVALIDATE_CACHE],
      ['/blob.unknownext', 'application/octet-stream', REVALIDATE_CACHE],
    ];
    for (const [pathname, type, cache] of cases) {
      const response = await fetch(url + pathname);
      expect({ pathname, status: response.status, type: response.headers.get('content-type') }).toEqual({
        pathname,
        status: 200,
        type,
      });
      expect(response.headers.get('cache-control')).toBe(cache);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const wasm = Buffer.from(await (await fetch(`${url}/assets/sqlite-Q1w2.wasm`)).arrayBuffer());
    expect(wasm.equals(WASM)).toBe(true);
    expect(await (await fetch(`${url}/docs/`)).text()).toBe('<p>docs</p>');
  });

  it('answers client routes with index.html, but a missing file with an extension declines', async () => {
    for (const route of ['/projects/42', '/board', '/a/b/c/']) {
      const response = await fetch(url + route);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe(REVALIDATE_CACHE);
      // `/a/b/c/` has no index.html of its own: the app's answers.
      expect(await response.text()).toBe(INDEX);
    }
    const missing = await fetch(`${url}/assets/gone-123.js`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('declined');
  });

  it('never serves a file outside its root', async () => {
    // Encoded separators get past URL normalisation; a symlink points outside.
    for (const attempt of ['/..%2Fsecret.txt', '/%2e%2e%2fsecret.txt', '/assets/..%2F..%2Fsecret.txt', '/escape.txt']) {
      const response = await fetch(url + attempt);
      expect(await response.text()).not.toContain('secret');
    }
    expect((await fetch(`${url}/bad%00name`)).status).toBe(400);
    expect((await fetch(`${url}/%E0%A4%A`)).status).toBe(400);
  });

  it('serves HEAD without a body, declines other methods, and revalidates with ETag and Last-Modified', async () => {
    const head = await fetch(`${url}/assets/index-AbC123.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('10');
    expect(await head.text()).toBe('');
    expect((await fetch(`${url}/index.html`, { method: 'POST', body: 'x' })).status).toBe(404);

    const first = await fetch(`${url}/`);
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect(etag).toMatch(/^W\/"/);
    const byTag = await fetch(`${url}/`, { headers: { 'if-none-match': etag } });
    expect(byTag.status).toBe(304);
    expect(byTag.headers.get('cache-control')).toBe(REVALIDATE_CACHE);
    expect((await fetch(`${url}/`, { headers: { 'if-none-match': 'W/"other"' } })).status).toBe(200);
    expect((await fetch(`${url}/`, { headers: { 'if-modified-since': lastModified } })).status).toBe(304);
    expect((await fetch(`${url}/`, { headers: { 'if-modified-since': new Date(0).toUTCString() } })).status).toBe(200);
  });
});
