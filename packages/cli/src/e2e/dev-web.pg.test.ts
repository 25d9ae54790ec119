/**
 * `ferry dev` serves the project's web app and a demo sign-in backend on the
 * service's own URL. This runs the real CLI (own embedded Postgres, a copy
 * of apps/tasks) in both web modes, Vite with live reload and `--web-build`,
 * talks to it over HTTP and opens the app in Debian's Chromium; and checks
 * that `ferry start` serves no web app.
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTestDatabase } from '@ferry/test-utils';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cleanup,
  createTestKeys,
  dropInactiveSlots,
  pgQuery,
  rawServiceConfig,
  REPO_ROOT,
  runCli,
  tempDir,
  waitFor,
} from './stack.js';
import {
  copyProject as copyFixtureProject,
  startDev as startFixtureDev,
  stopDev,
  type DevProcess,
} from './web-app-fixture.js';

const FIELD = '22222222-2222-4222-8222-222222222222';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

let browser: Browser | null = null;
/** Debian's Chromium through playwright-core, launched once for the file. */
async function chromium(): Promise<Browser> {
  if (browser === null) {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const launched = browser;
    cleanup.add(() => launched.close());
  }
  return browser;
}

const copyProject = (prefix: string): Promise<string> => copyFixtureProject(cleanup, prefix);
const startDev = (project: string, extraArgs: string[] = []): Promise<DevProcess> =>
  startFixtureDev(cleanup, project, extraArgs);

/** The `src` of the page's module scripts, Vite's own client excluded. */
function moduleScripts(html: string): string[] {
  return [...html.matchAll(/<script\b[^>]*type="module"[^>]*\bsrc="([^"]+)"/g)]
    .map((m) => m[1]!)
    .filter((src) => !src.startsWith('/@vite/'));
}

/** Opens the app in a fresh context; fails the test on uncaught page errors. */
async function openApp(url: string) {
  const context = await (await chromium()).newContext();
  cleanup.add(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${url}/`);
  return { page, errors };
}

/** The demo backend's token for `user`. */
async function demoToken(url: string, user: string) {
  const response = await fetch(`${url}/demo/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('ferry dev: the web app through Vite, and the demo sign-in backend, on one URL', () => {
  let dev: DevProcess;
  let project: string;
  beforeAll(async () => {
    project = await copyProject('ferry-dev-web-');
    dev = await startDev(project);
  });
  afterAll(() => stopDev(dev));

  it("serves the app's HTML at / and its modules, transformed", async () => {
    const response = await fetch(`${dev.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain('/@vite/client'); // Vite's dev server, with its live-reload client
    const scripts = moduleScripts(html);
    expect(scripts.length).toBeGreaterThan(0);
    const module = await fetch(new URL(scripts[0]!, `${dev.url}/`));
    expect(module.status).toBe(200);
    expect(module.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await module.text()).toMatch(/^import /m); // TypeScript compiled to an ES module
    // A client route answers the app too; the API keeps its routes.
    const route = await fetch(`${dev.url}/workspaces/${FIELD}`);
    expect(route.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await (await fetch(`${dev.url}/health`)).json()).toEqual({ status: 'ok' });
  });

  it('lists the seeded users and signs real dev tokens for them', async () => {
    const users = await fetch(`${dev.url}/demo/users`);
    expect(users.status).toBe(200);
    expect(await users.json()).toEqual({
      users: [
        { id: 'alice', workspaces: 2 },
        { id: 'bob', workspaces: 1 },
      ],
    });

    const before = Date.now();
    const { status, body } = await demoToken(dev.url, 'alice');
    expect(status).toBe(200);
    expect(body['endpoint']).toBe(dev.url);
    expect(typeof body['token']).toBe('string');
    const expiresAt = Date.parse(body['expiresAt'] as string);
    expect(expiresAt).toBeGreaterThan(before + 30 * 60_000);
    const auth = { authorization: `Token ${body['token'] as string}` };

    // The sync stream accepts it: alice's buckets arrive, her tasks with them.
    const controller = new AbortController();
    cleanup.add(() => controller.abort());
    const stream = await fetch(`${dev.url}/sync/stream`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ buckets: [], include_checksum: true, raw_data: true, client_id: 'dev-web-test' }),
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let text = '';
    while (!text.includes('checkpoint_complete')) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    expect(text).toContain('checkpoint_complete');
    expect(text).toContain('Record the demo video'); // "Launch plan", alice's only
    expect(text).toContain('Check the north pumps');

    // The write API accepts it: a task alice adds lands in Postgres.
    const id = randomUUID();
    const write = await fetch(`${dev.url}/write`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: 'dev-web-test',
        transactions: [
          {
            id: `dev-web-test:${id}`,
            ops: [{ op: 'PUT', type: 'tasks', id, data: { workspace_id: FIELD, title: 'Added through /write' } }],
          },
        ],
      }),
    });
    expect(write.status).toBe(200);
    expect(await write.json()).toEqual({
      transactions: [{ id: `dev-web-test:${id}`, status: 'applied', ops: [{ status: 'applied' }] }],
    });
    expect(await pgQuery(dev.databaseUrl, 'SELECT title FROM tasks WHERE id = $1', [id])).toEqual([
      { title: 'Added through /write' },
    ]);
  });

  it('answers an unknown user 404 and a malformed or misdirected request with a code', async () => {
    const unknown = await demoToken(dev.url, 'mallory');
    expect(unknown.status).toBe(404);
    expect(unknown.body['error']).toMatchObject({ code: 'FERRY_S4004' });
    expect(JSON.stringify(unknown.body)).not.toContain('token":');

    const malformed = await fetch(`${dev.url}/demo/token`, { method: 'POST', body: '{"name":' });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4001');
    const noUser = await fetch(`${dev.url}/demo/token`, { method: 'POST', body: '{"name":"alice"}' });
    expect(noUser.status).toBe(400);

    const wrongMethod = await fetch(`${dev.url}/demo/token`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(((await wrongMethod.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4005');
  });

  it('renders the board in Chromium (users from the demo backend, local SQLite on OPFS, a first sync) and reloads when a file changes', async () => {
    const { page, errors } = await openApp(dev.url);
    await page.locator('[data-user="alice"]').waitFor({ timeout: 30_000 });
    const users = await page
      .locator('[data-user]')
      .evaluateAll((items) => items.map((i) => i.getAttribute('data-user')));
    expect(users).toEqual(['alice', 'bob']);
    // The worker's SQLite WASM loaded (WebAssembly.instantiateStreaming only accepts application/wasm).
    await page.getByText(/^Local SQLite 3\.\d+\.\d+ on OPFS/).waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Sign in as bob' }).click();
    await page.getByText('Check the north pumps').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('signed-in-as').textContent()).toBe('Signed in as bob');

    // Live reload over the service's own port: edit index.html, the open page follows.
    const title = await page.title();
    const indexFile = path.join(project, 'web', 'index.html');
    const html = await readFile(indexFile, 'utf8');
    await writeFile(indexFile, html.replace(/<title>([^<]*)<\/title>/, '<title>$1 (edited)</title>'));
    await waitFor(async () => (await page.title()) === `${title} (edited)`, {
      timeoutMs: 30_000,
      message: () => `the page never reloaded with the edited title; output:\n${dev.cli.output().slice(-2000)}`,
    });
    expect(errors).toEqual([]);
  });
});

describe('ferry dev --web-build: the built app served from disk', () => {
  let dev: DevProcess;
  let project: string;
  beforeAll(async () => {
    project = await copyProject('ferry-dev-build-');
    dev = await startDev(project, ['--web-build']);
  });
  afterAll(() => stopDev(dev));

  it('serves index.html, hashed assets with long caching, .wasm as application/wasm, and client routes', async () => {
    const index = await fetch(`${dev.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    expect(html).not.toContain('/@vite/client');

    const [script] = moduleScripts(html);
    expect(script).toMatch(/^\/assets\/[\w-]+-[\w-]{6,}\.js$/); // content-hashed name
    const module = await fetch(`${dev.url}${script!}`);
    expect(module.status).toBe(200);
    expect(module.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(module.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');

    const built = await readdir(path.join(project, '.ferry', 'web', 'assets'));
    const wasm = built.filter((file) => file.endsWith('.wasm'));
    expect(wasm.length).toBeGreaterThan(0);
    const wasmResponse = await fetch(`${dev.url}/assets/${wasm[0]!}`);
    expect(wasmResponse.status).toBe(200);
    expect(wasmResponse.headers.get('content-type')).toBe('application/wasm');
    expect(wasmResponse.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(Buffer.from(await wasmResponse.arrayBuffer()).subarray(0, 4)).toEqual(Buffer.from('\0asm', 'latin1'));

    const route = await fetch(`${dev.url}/workspaces/${FIELD}`);
    expect(route.status).toBe(200);
    expect(await route.text()).toBe(html);
    expect((await fetch(`${dev.url}/assets/missing-0000.js`)).status).toBe(404);
    expect((await demoToken(dev.url, 'bob')).status).toBe(200);
  });

  it('renders in Chromium from the built files, with the app shell cached for offline use', async () => {
    const { page, errors } = await openApp(dev.url);
    await page.locator('[data-user="bob"]').waitFor({ timeout: 30_000 });
    await page.getByText(/^Local SQLite 3\.\d+\.\d+ on OPFS/).waitFor({ timeout: 30_000 });
    await page.getByTestId('offline-ready').waitFor({ timeout: 30_000 });
    const precache = (await (await fetch(`${dev.url}/precache.json`)).json()) as { files: string[] };
    expect(precache.files).toContain('index.html');
    expect(precache.files.some((file) => file.endsWith('.wasm'))).toBe(true);
    expect(errors).toEqual([]);
  });
});

describe('ferry start', () => {
  it('serves no web app and no demo backend: / answers 404 as before', async () => {
    const databaseUrl = await createTestDatabase('dev_web_start');
    cleanup.add(() => dropInactiveSlots(databaseUrl));
    const project = path.join(REPO_ROOT, 'apps/tasks');
    for (const file of (await readdir(path.join(project, 'migrations'))).filter((f) => f.endsWith('.sql')).sort()) {
      await pgQuery(databaseUrl, await readFile(path.join(project, 'migrations', file), 'utf8'));
    }
    const dir = await tempDir(cleanup, 'ferry-start-');
    const config = rawServiceConfig({
      databaseUrl,
      rules: { path: path.join(project, 'sync-rules.yaml') },
      keys: await createTestKeys(dir),
      logLevel: 'info',
    });
    const configFile = path.join(dir, 'ferry.yaml');
    await writeFile(configFile, JSON.stringify(config)); // JSON is YAML
    const cli = runCli(['start', '--config', configFile], { cleanup });
    const url = await waitFor(
      () => {
        if (cli.child.exitCode !== null) throw new Error(`ferry start exited:\n${cli.output()}`);
        return /"url":"(http:\/\/[^"]+)","replicate"/.exec(cli.output())?.[1];
      },
      { timeoutMs: 60_000, message: () => `ferry start printed no URL:\n${cli.output()}` },
    );
    for (const pathname of ['/', '/index.html', '/demo/users', '/@vite/client']) {
      const response = await fetch(`${url}${pathname}`);
      expect({ pathname, status: response.status }).toEqual({ pathname, status: 404 });
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4004');
    }
    expect((await fetch(`${url}/demo/token`, { method: 'POST', body: '{"user":"alice"}' })).status).toBe(404);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});
