/**
 * The full Ferry client in Chromium against the real service: initial sync,
 * a live server change, a local write uploaded through `ferryConnector` to
 * Postgres and back, and the synced data still there after a reload with no
 * connection. Once on OPFS and once on the IndexedDB VFS (issue 5: "the
 * IndexedDB fallback passes the same sync tests").
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHarness, harnessValue, startHarness, type HarnessFixture } from './test-support/browser-fixture.js';
import type { SchemaSpec } from './test-support/harness-api.js';
import { startSyncService, type SyncServiceFixture } from './test-support/service-fixture.js';
import { TODOS_RULES, TODOS_TABLE, TODOS_WRITE_RULES, todosSource } from './test-support/todos-fixture.js';
import { decodeValue, encodeValue } from './test-support/wire-values.js';

const SEED_ROWS = 2000;

const SOURCE = todosSource(
  SEED_ROWS,
  `
  INSERT INTO todos (id, owner, title, n) VALUES ('big', 'alice', 'int8 max', 9223372036854775807);
  INSERT INTO todos (id, owner, title, n) VALUES ('bob-1', 'bob', 'not for alice', 1);
`,
);

const SCHEMA: SchemaSpec = {
  tables: TODOS_TABLE,
};

let fx: HarnessFixture;
let svc: SyncServiceFixture;

beforeAll(async () => {
  [fx, svc] = await Promise.all([
    startHarness(),
    startSyncService({ database: 'ferry_web_sync', source: SOURCE, rules: TODOS_RULES, writeRules: TODOS_WRITE_RULES }),
  ]);
});

afterAll(async () => {
  await fx?.close();
  await svc?.stop();
});

/** Polls `check` until it returns true. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What alice's client must hold: every source row she owns. */
async function aliceRows(): Promise<number> {
  const [row] = await svc.query<{ c: number }>(`SELECT count(*)::int AS c FROM todos WHERE owner = 'alice'`);
  return row!.c;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

for (const vfs of ['opfs', 'idb'] as const) {
  describe(`the client on ${vfs}`, () => {
    const name = `sync-${vfs}-${Date.now()}.db`;
    let page: Page;

    const getAll = async (sql: string, params: unknown[] = []) =>
      decodeValue(await harnessValue(page, 'getAll', sql, params.map(encodeValue))) as Record<string, unknown>[];

    it('syncs the initial rows, with int8 exact and nothing outside its buckets', async () => {
      page = await fx.newPage();
      expect(await harnessValue(page, 'open', name, vfs, SCHEMA)).toEqual({ vfs, multiTab: true });
      await harnessValue(page, 'connect', svc.url, await svc.token('alice'));
      const ms = await harnessValue(page, 'waitForFirstSync');
      const expected = await aliceRows();
      console.log(`[${vfs}] initial sync of ${expected} rows: ${ms.toFixed(0)} ms after connect`);
      expect(await getAll('SELECT count(*) AS c FROM todos')).toEqual([{ c: expected }]);
      expect(
        await getAll(`SELECT id, owner, title, n, done FROM todos WHERE id IN ('big', 'seed-00007') ORDER BY id`),
      ).toEqual([
        { id: 'big', owner: 'alice', title: 'int8 max', n: 9223372036854775807n, done: 0 },
        { id: 'seed-00007', owner: 'alice', title: 'todo 7', n: 7, done: 0 },
      ]);
      expect(await getAll(`SELECT id FROM todos WHERE owner <> 'alice'`)).toEqual([]);
    });

    it('queries 500 rows with ORDER BY from the page', async () => {
      const timing = await harnessValue(
        page,
        'timeQuery',
        'SELECT id, title, n, done FROM todos ORDER BY title DESC LIMIT 500',
        [],
        30,
      );
      expect(timing.rows).toBe(500);
      console.log(
        `[${vfs}] 500-row ORDER BY query in the page: p50 ${median(timing.durations).toFixed(2)} ms ` +
          `(min ${Math.min(...timing.durations).toFixed(2)}, max ${Math.max(...timing.durations).toFixed(2)})`,
      );
    });

    it('shows a server change live in a watched query', async () => {
      const watch = await callHarness(page, 'watch', `SELECT id, title FROM todos WHERE id = ?`, [
        encodeValue(`live-${vfs}`),
      ]);
      await eventually(async () => (await callHarness(page, 'watchResults', watch)).length > 0, 'first watch result');
      expect(decodeValue((await callHarness(page, 'watchResults', watch))[0]!)).toEqual([]);
      await svc.query(`INSERT INTO todos (id, owner, title) VALUES ($1, 'alice', 'from the server')`, [`live-${vfs}`]);
      await eventually(async () => {
        const results = await callHarness(page, 'watchResults', watch);
        return JSON.stringify(results.at(-1)) === JSON.stringify([{ id: `live-${vfs}`, title: 'from the server' }]);
      }, 'the server row in the watch');
      // A change to a row the user cannot see never arrives; a later visible one does, alone.
      await svc.query(`UPDATE todos SET title = 'changed' WHERE id = 'bob-1'`);
      await svc.query(`UPDATE todos SET title = 'edited on the server' WHERE id = $1`, [`live-${vfs}`]);
      await eventually(
        async () =>
          JSON.stringify(await getAll(`SELECT title FROM todos WHERE id = ?`, [`live-${vfs}`])) ===
          JSON.stringify([{ title: 'edited on the server' }]),
        'the server update',
      );
      expect(await getAll(`SELECT id FROM todos WHERE id = 'bob-1'`)).toEqual([]);
    });

    it('uploads a local write through ferryConnector to Postgres and back', async () => {
      const id = `local-${vfs}`;
      const written = await harnessValue(
        page,
        'execute',
        'INSERT INTO todos (id, owner, title, n, done) VALUES (?, ?, ?, ?, ?)',
        [id, 'alice', 'written in the browser', 9007199254740993n, 0].map(encodeValue),
      );
      expect(written.rowsAffected).toBe(1);
      await eventually(
        async () => (await svc.query(`SELECT 1 FROM todos WHERE id = $1`, [id])).length === 1,
        'the row in Postgres',
      );
      const [row] = await svc.query<{ owner: string; title: string; n: string }>(
        `SELECT owner, title, n::text AS n FROM todos WHERE id = $1`,
        [id],
      );
      expect(row).toEqual({ owner: 'alice', title: 'written in the browser', n: '9007199254740993' });
      await eventually(async () => (await callHarness(page, 'status')).pendingCount === 0, 'an empty upload queue');
      // An edit on the server to the uploaded row comes back down.
      await svc.query(`UPDATE todos SET done = true WHERE id = $1`, [id]);
      await eventually(
        async () => JSON.stringify(await getAll(`SELECT done FROM todos WHERE id = ?`, [id])) === '[{"done":1}]',
        'the server edit of the uploaded row',
      );
      expect((await callHarness(page, 'status')).uploadError).toBeNull();
    });

    it('keeps everything after a reload, with no connection', async () => {
      await harnessValue(page, 'close');
      await page.reload();
      await page.waitForFunction(() => window.ferryHarnessReady === true);
      expect(await harnessValue(page, 'open', name, vfs, SCHEMA)).toEqual({ vfs, multiTab: true });
      expect(await getAll('SELECT count(*) AS c FROM todos')).toEqual([{ c: await aliceRows() }]);
      expect(await getAll(`SELECT title, n, done FROM todos WHERE id = ?`, [`local-${vfs}`])).toEqual([
        { title: 'written in the browser', n: 9007199254740993n, done: 1 },
      ]);
      expect((await callHarness(page, 'status')).hasSynced).toBe(true);
      await harnessValue(page, 'close');
      await page.close();
    });
  });
}
