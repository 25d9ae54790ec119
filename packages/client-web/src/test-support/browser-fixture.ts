/**
 * One browser test file's world: the harness built once with Vite, served
 * from 127.0.0.1, and Debian's Chromium. Pages are driven through
 * `window.ferryHarness` with {@link callHarness}.
 */
import { launchChromium, serveStatic, type StaticServer } from '@ferry/test-utils';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { buildHarness, type BuiltHarness } from './build-harness.js';
import type { HarnessApi, HarnessResult } from './harness-api.js';

export interface HarnessFixture {
  browser: Browser;
  server: StaticServer;
  built: BuiltHarness;
  /** Opens the harness in a new page (of `context`, or of a new context) and waits until it is ready. */
  newPage(context?: BrowserContext): Promise<Page>;
  close(): Promise<void>;
}

export async function startHarness(): Promise<HarnessFixture> {
  const built = await buildHarness();
  const server = await serveStatic(built.outDir);
  const browser = await launchChromium();
  const contexts: BrowserContext[] = [];
  return {
    browser,
    server,
    built,
    async newPage(context) {
      let ctx = context;
      if (ctx === undefined) {
        ctx = await browser.newContext();
        contexts.push(ctx);
      }
      const page = await ctx.newPage();
      page.on('pageerror', (error) => console.error('[page error]', error));
      await page.goto(`${server.url}/`);
      await page.waitForFunction(() => window.ferryHarnessReady === true);
      return page;
    },
    async close() {
      for (const ctx of contexts) await ctx.close().catch(() => undefined);
      await browser.close().catch(() => undefined);
      await server.close();
      await built.remove();
    },
  };
}

/** Calls `window.ferryHarness[method](...args)` in the page. */
export function callHarness<M extends keyof HarnessApi>(
  page: Page,
  method: M,
  ...args: Parameters<HarnessApi[M]>
): Promise<Awaited<ReturnType<HarnessApi[M]>>> {
  return page.evaluate(
    ({ method, args }) =>
      (window.ferryHarness[method] as (...a: unknown[]) => unknown)(...args) as Awaited<ReturnType<HarnessApi[M]>>,
    { method, args: args as unknown[] },
  );
}

/** The value of a successful harness result; throws with the page's error otherwise. */
export function unwrap<T>(result: HarnessResult<T>): T {
  if (!result.ok) {
    const e = result.error;
    throw new Error(`harness call failed: ${e.name} ${e.code ?? ''} ${e.message}`);
  }
  return result.value;
}

/** Calls a harness method that answers a {@link HarnessResult} and unwraps it. */
export async function harnessValue<M extends keyof HarnessApi>(
  page: Page,
  method: M,
  ...args: Parameters<HarnessApi[M]>
): Promise<Awaited<ReturnType<HarnessApi[M]>> extends HarnessResult<infer T> ? T : never> {
  const result = (await callHarness(page, method, ...args)) as HarnessResult<unknown>;
  return unwrap(result) as Awaited<ReturnType<HarnessApi[M]>> extends HarnessResult<infer T> ? T : never;
}
