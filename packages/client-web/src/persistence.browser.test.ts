/**
 * Persistence in Chromium: what a page writes is there for the next page of
 * the same origin, after a clean close and after the page went away without
 * closing (reload), on OPFS and on IndexedDB.
 */
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harnessValue, startHarness, type HarnessFixture } from './test-support/browser-fixture.js';
import { decodeValue, encodeValue } from './test-support/wire-values.js';

let fx: HarnessFixture;
let context: BrowserContext;

beforeAll(async () => {
  fx = await startHarness();
  context = await fx.browser.newContext();
});

afterAll(async () => {
  await context?.close();
  await fx?.close();
});

for (const vfs of ['opfs', 'idb'] as const) {
  describe(`on ${vfs}`, () => {
    const name = `persist-${vfs}-${Date.now()}.db`;

    it('data written and closed in one page is read by a new page', async () => {
      const first = await fx.newPage(context);
      const { id } = await harnessValue(first, 'driverOpen', name, vfs);
      await harnessValue(first, 'driverExecute', id, 'CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT, n INTEGER)');
      await harnessValue(
        first,
        'driverExecuteBatch',
        id,
        'INSERT INTO notes VALUES (?, ?, ?)',
        Array.from({ length: 100 }, (_, i) => [`n${i}`, `body ${i}`, 2n ** 60n + BigInt(i)].map(encodeValue)),
      );
      await harnessValue(first, 'driverClose', id);
      await first.close();

      const second = await fx.newPage(context);
      const reopened = await harnessValue(second, 'driverOpen', name, vfs);
      expect(reopened.vfs).toBe(vfs);
      const result = await harnessValue(
        second,
        'driverExecute',
        reopened.id,
        'SELECT count(*) AS c, max(n) AS m FROM notes',
      );
      expect(decodeValue(result.rows)).toEqual([{ c: 100, m: 2n ** 60n + 99n }]);

      // Now write and leave without closing: the page reloads under the open database.
      await harnessValue(second, 'driverExecute', reopened.id, `INSERT INTO notes VALUES ('after', 'not closed', 1)`);
      await second.reload();
      await second.waitForFunction(() => window.ferryHarnessReady === true);
      const again = await harnessValue(second, 'driverOpen', name, vfs);
      const rows = await harnessValue(second, 'driverExecute', again.id, `SELECT body FROM notes WHERE id = 'after'`);
      expect(decodeValue(rows.rows)).toEqual([{ body: 'not closed' }]);
      expect(
        decodeValue((await harnessValue(second, 'driverExecute', again.id, 'SELECT count(*) AS c FROM notes')).rows),
      ).toEqual([{ c: 101 }]);
      await harnessValue(second, 'driverClose', again.id);
      await second.close();
    });

    it('another name is another database', async () => {
      const page = await fx.newPage(context);
      const { id } = await harnessValue(page, 'driverOpen', `other-${name}`, vfs);
      const tables = await harnessValue(
        page,
        'driverExecute',
        id,
        `SELECT name FROM sqlite_schema WHERE type = 'table'`,
      );
      expect(decodeValue(tables.rows)).toEqual([]);
      await harnessValue(page, 'driverClose', id);
      await page.close();
    });
  });
}
