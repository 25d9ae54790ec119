/**
 * Multi-tab in Chromium against the real service: pages of one browser
 * context are tabs of one origin sharing one database (BroadcastChannel +
 * Web Locks). Only the leader opens a sync stream (counted on the service
 * and from each page's requests); server changes and every tab's writes
 * show in every tab's watches; a follower's write is uploaded by the leader;
 * the pending count shows in every tab; when the leader tab closes another
 * takes over. Reads in one tab while another writes wait for the file and
 * never fail with SQLITE_BUSY. On OPFS, and the hand-over and concurrency
 * tests on IndexedDB too.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHarness, harnessValue, startHarness, type HarnessFixture } from './test-support/browser-fixture.js';
import type { SchemaSpec } from './test-support/harness-api.js';
import { startSyncService, type SyncServiceFixture } from './test-support/service-fixture.js';
import { TODOS_RULES, TODOS_TABLE, TODOS_WRITE_RULES, todosSource } from './test-support/todos-fixture.js';
import { decodeValue, encodeValue } from './test-support/wire-values.js';

const SEED_ROWS = 300;

const SOURCE = todosSource(SEED_ROWS);

const SCHEMA: SchemaSpec = {
  tables: {
    ...TODOS_TABLE,
    notes: { body: 'text', n: 'integer' },
  },
  localOnly: ['notes'],
};

let fx: HarnessFixture;
let svc: SyncServiceFixture;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  [fx, svc] = await Promise.all([
    startHarness(),
    startSyncService({ database: 'ferry_web_tabs', source: SOURCE, rules: TODOS_RULES, writeRules: TODOS_WRITE_RULES }),
  ]);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await fx?.close();
  await svc?.stop();
});

async function newContext(): Promise<BrowserContext> {
  const context = await fx.browser.newContext();
  contexts.push(context);
  return context;
}

/** Polls `check` until it returns true. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sync streams open on the service right now. */
async function openStreams(): Promise<number> {
  return (await svc.service.metrics.connectedClients.get()).values[0]?.value ?? 0;
}

async function sourceCount(where = `owner = 'alice'`): Promise<number> {
  const [row] = await svc.query<{ c: number }>(`SELECT count(*)::int AS c FROM todos WHERE ${where}`);
  return row!.c;
}

/** One tab: a harness page with the database open, and the sync stream requests it made. */
interface Tab {
  page: Page;
  /** `POST /sync/stream` requests this page sent. */
  streamRequests: number;
}

async function openTab(context: BrowserContext, name: string, vfs: 'opfs' | 'idb'): Promise<Tab> {
  const page = await fx.newPage(context);
  const tab: Tab = { page, streamRequests: 0 };
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/sync/stream') tab.streamRequests++;
  });
  expect(await harnessValue(page, 'open', name, vfs, SCHEMA)).toEqual({ vfs, multiTab: true });
  return tab;
}

async function connectTab(tab: Tab): Promise<void> {
  await harnessValue(tab.page, 'connect', svc.url, await svc.token('alice'));
}

const status = (tab: Tab) => callHarness(tab.page, 'status');

async function getAll(tab: Tab, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  return decodeValue(await harnessValue(tab.page, 'getAll', sql, params.map(encodeValue))) as Record<string, unknown>[];
}

/** Starts a watch in `tab`; `last()` is its latest result. */
async function watch(tab: Tab, sql: string, params: unknown[] = []): Promise<{ last(): Promise<unknown> }> {
  const id = await callHarness(tab.page, 'watch', sql, params.map(encodeValue));
  await eventually(async () => (await callHarness(tab.page, 'watchResults', id)).length > 0, 'a first watch result');
  return {
    last: async () => {
      const results = await callHarness(tab.page, 'watchResults', id);
      return decodeValue(results.at(-1)!);
    },
  };
}

/** Waits until exactly one of `tabs` leads; returns [leader, followers]. */
async function leaderOf(tabs: Tab[]): Promise<[Tab, Tab[]]> {
  let leaders: Tab[] = [];
  await eventually(async () => {
    const flags = await Promise.all(tabs.map(async (tab) => (await status(tab)).isSyncLeader));
    leaders = tabs.filter((_, i) => flags[i]);
    return leaders.length === 1;
  }, 'exactly one leader tab');
  return [leaders[0]!, tabs.filter((tab) => tab !== leaders[0])];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('two tabs on opfs', () => {
  const name = `tabs-opfs-${Date.now()}.db`;
  let context: BrowserContext;
  let tabs: Tab[];
  let leader: Tab;
  let follower: Tab;

  it('share one sync stream, and both hold the synced data', async () => {
    context = await newContext();
    const first = await openTab(context, name, 'opfs');
    const second = await openTab(context, name, 'opfs');
    tabs = [first, second];
    await connectTab(first);
    await connectTab(second);
    await harnessValue(first.page, 'waitForFirstSync');
    await harnessValue(second.page, 'waitForFirstSync');
    [leader, [follower]] = (await leaderOf(tabs)) as [Tab, [Tab]];
    const expected = await sourceCount();
    for (const tab of tabs) expect(await getAll(tab, 'SELECT count(*) AS c FROM todos')).toEqual([{ c: expected }]);
    await eventually(async () => (await openStreams()) === 1, 'one open stream on the service');
    // And it stays that way: the follower never opened one.
    await sleep(500);
    expect(await openStreams()).toBe(1);
    expect(leader.streamRequests).toBeGreaterThanOrEqual(1);
    expect(follower.streamRequests).toBe(0);
    expect((await status(follower)).connected).toBe(true); // the leader's status, mirrored
    expect((await status(follower)).hasSynced).toBe(true);
  });

  it('shows a server change in both tabs’ watches', async () => {
    const sql = 'SELECT id, title FROM todos WHERE id = ?';
    const watches = await Promise.all(tabs.map((tab) => watch(tab, sql, ['srv-1'])));
    for (const w of watches) expect(await w.last()).toEqual([]);
    await svc.query(`INSERT INTO todos (id, owner, title) VALUES ('srv-1', 'alice', 'from the server')`);
    for (const w of watches) {
      await eventually(
        async () => JSON.stringify(await w.last()) === JSON.stringify([{ id: 'srv-1', title: 'from the server' }]),
        'the server row in a tab’s watch',
      );
    }
  });

  it('uploads a follower’s write through the leader, shows it in the other tab, with the pending count in both', async () => {
    const watchInLeader = await watch(leader, 'SELECT title FROM todos WHERE id = ?', ['from-follower']);
    // Offline: the upload cannot go, so the pending write is visible in both tabs.
    await context.setOffline(true);
    await harnessValue(
      follower.page,
      'execute',
      'INSERT INTO todos (id, owner, title, n, done) VALUES (?, ?, ?, ?, ?)',
      ['from-follower', 'alice', 'written in the follower', 1, 0].map(encodeValue),
    );
    await eventually(
      async () => JSON.stringify(await watchInLeader.last()) === JSON.stringify([{ title: 'written in the follower' }]),
      'the follower’s write in the leader’s watch',
    );
    await eventually(async () => (await status(follower)).pendingCount === 1, 'pending 1 in the follower');
    await eventually(async () => (await status(leader)).pendingCount === 1, 'pending 1 in the leader');
    expect(await svc.query(`SELECT 1 FROM todos WHERE id = 'from-follower'`)).toEqual([]);

    await context.setOffline(false);
    await eventually(
      async () => (await svc.query(`SELECT 1 FROM todos WHERE id = 'from-follower'`)).length === 1,
      'the follower’s write in Postgres',
    );
    const [row] = await svc.query(`SELECT owner, title FROM todos WHERE id = 'from-follower'`);
    expect(row).toEqual({ owner: 'alice', title: 'written in the follower' });
    for (const tab of tabs) {
      await eventually(async () => (await status(tab)).pendingCount === 0, 'pending 0 in every tab');
    }
    // A write in the leader reaches the follower too.
    const watchInFollower = await watch(follower, 'SELECT title FROM todos WHERE id = ?', ['from-leader']);
    await harnessValue(
      leader.page,
      'execute',
      'INSERT INTO todos (id, owner, title, n, done) VALUES (?, ?, ?, ?, ?)',
      ['from-leader', 'alice', 'written in the leader', 2, 0].map(encodeValue),
    );
    await eventually(
      async () => JSON.stringify(await watchInFollower.last()) === JSON.stringify([{ title: 'written in the leader' }]),
      'the leader’s write in the follower’s watch',
    );
    await eventually(
      async () => (await svc.query(`SELECT 1 FROM todos WHERE id = 'from-leader'`)).length === 1,
      'the leader’s write in Postgres',
    );
    await eventually(async () => (await openStreams()) === 1, 'one open stream after going online again');
    expect(follower.streamRequests).toBe(0);
  });

  it('hands the sync over when the leader tab closes, to exactly one of the others', async () => {
    const third = await openTab(context, name, 'opfs');
    await connectTab(third);
    tabs.push(third);
    await sleep(300);
    expect(third.streamRequests).toBe(0);
    expect((await leaderOf(tabs))[0]).toBe(leader);

    await leader.page.close();
    const remaining = tabs.filter((tab) => tab !== leader);
    const [next, [other]] = (await leaderOf(remaining)) as [Tab, [Tab]];
    await eventually(async () => next.streamRequests > 0, 'the new leader opened a stream');
    await eventually(async () => (await openStreams()) === 1, 'one open stream after the hand-over');
    expect(other.streamRequests).toBe(0);

    // The new leader keeps syncing both ways, for both remaining tabs.
    const watches = await Promise.all(
      remaining.map((tab) => watch(tab, 'SELECT title FROM todos WHERE id = ?', ['after-handover'])),
    );
    await svc.query(`INSERT INTO todos (id, owner, title) VALUES ('after-handover', 'alice', 'still syncing')`);
    for (const w of watches) {
      await eventually(
        async () => JSON.stringify(await w.last()) === JSON.stringify([{ title: 'still syncing' }]),
        'a server change after the hand-over',
      );
    }
    await harnessValue(
      other.page,
      'execute',
      'UPDATE todos SET title = ? WHERE id = ?',
      ['edited after the hand-over', 'seed-00001'].map(encodeValue),
    );
    await eventually(
      async () =>
        (await svc.query(`SELECT 1 FROM todos WHERE id = 'seed-00001' AND title = 'edited after the hand-over'`))
          .length === 1,
      'a follower’s write uploaded by the new leader',
    );
    for (const tab of remaining) {
      await eventually(async () => (await status(tab)).pendingCount === 0, 'pending 0 after the hand-over');
      expect(await getAll(tab, 'SELECT count(*) AS c FROM todos')).toEqual([{ c: await sourceCount() }]);
    }
    for (const tab of remaining) await harnessValue(tab.page, 'close');
    for (const tab of remaining) await tab.page.close();
    await eventually(async () => (await openStreams()) === 0, 'no stream once every tab closed');
  });
});

describe('two tabs on idb', () => {
  it('share one stream and hand over when the leader closes', async () => {
    const name = `tabs-idb-${Date.now()}.db`;
    const context = await newContext();
    const tabs = [await openTab(context, name, 'idb'), await openTab(context, name, 'idb')];
    for (const tab of tabs) await connectTab(tab);
    for (const tab of tabs) await harnessValue(tab.page, 'waitForFirstSync');
    const [leader, [follower]] = (await leaderOf(tabs)) as [Tab, [Tab]];
    await eventually(async () => (await openStreams()) === 1, 'one open stream');
    expect(follower.streamRequests).toBe(0);
    expect(await getAll(follower, 'SELECT count(*) AS c FROM todos')).toEqual([{ c: await sourceCount() }]);

    await leader.page.close();
    await eventually(async () => (await status(follower)).isSyncLeader, 'the follower leads');
    await eventually(async () => follower.streamRequests > 0, 'the new leader opened a stream');
    await eventually(async () => (await openStreams()) === 1, 'one open stream after the hand-over');
    const w = await watch(follower, 'SELECT title FROM todos WHERE id = ?', ['idb-handover']);
    await svc.query(`INSERT INTO todos (id, owner, title) VALUES ('idb-handover', 'alice', 'synced after hand-over')`);
    await eventually(
      async () => JSON.stringify(await w.last()) === JSON.stringify([{ title: 'synced after hand-over' }]),
      'a server change after the hand-over',
    );
    await harnessValue(follower.page, 'close');
    await follower.page.close();
  });
});

for (const vfs of ['opfs', 'idb'] as const) {
  it(`reads in one tab during another tab's writes wait for the file, never fail (${vfs})`, async () => {
    const name = `tabs-busy-${vfs}-${Date.now()}.db`;
    const context = await newContext();
    const writer = await openTab(context, name, vfs);
    const reader = await openTab(context, name, vfs);
    const TRANSACTIONS = 25;
    const ROWS_PER_TRANSACTION = 40;
    const READS = 150;
    const writes = (async () => {
      for (let t = 0; t < TRANSACTIONS; t++) {
        const rows = Array.from({ length: ROWS_PER_TRANSACTION }, (_, i) =>
          [`n-${t}-${i}`, 'x'.repeat(200), t].map(encodeValue),
        );
        await harnessValue(writer.page, 'executeEach', 'INSERT INTO notes (id, body, n) VALUES (?, ?, ?)', rows, true);
      }
    })();
    // Reads and single-statement writes of the other tab, while the first tab's transactions run.
    const reads = harnessValue(
      reader.page,
      'timeQuery',
      'SELECT count(*) AS c, sum(length(body)) AS s FROM notes',
      [],
      READS,
    );
    const otherWrites = harnessValue(
      reader.page,
      'executeEach',
      'INSERT INTO notes (id, body, n) VALUES (?, ?, ?)',
      Array.from({ length: 20 }, (_, i) => [`r-${i}`, 'y', -1].map(encodeValue)),
    );
    await Promise.all([writes, reads, otherWrites]);
    const total = TRANSACTIONS * ROWS_PER_TRANSACTION + 20;
    for (const tab of [writer, reader]) {
      expect(await getAll(tab, 'SELECT count(*) AS c FROM notes')).toEqual([{ c: total }]);
    }
    for (const tab of [writer, reader]) await harnessValue(tab.page, 'close');
  });
}

describe('options', () => {
  it('multiTab defaults to false with exclusive, and exclusive + multiTab is an error', async () => {
    const page = await fx.newPage();
    const name = `tabs-options-${Date.now()}.db`;
    const failed = await callHarness(page, 'open', name, 'opfs', SCHEMA, { exclusive: true, multiTab: true });
    expect(failed).toMatchObject({
      ok: false,
      error: { ferry: true, code: 'FERRY_C1013', message: expect.stringMatching(/exclusive/) },
    });
    expect(await harnessValue(page, 'open', name, 'opfs', SCHEMA, { exclusive: true })).toEqual({
      vfs: 'opfs',
      multiTab: false,
    });
    await harnessValue(page, 'close');
    expect(await harnessValue(page, 'open', name, 'opfs', SCHEMA, { multiTab: false })).toEqual({
      vfs: 'opfs',
      multiTab: false,
    });
    await harnessValue(page, 'close');
    await page.close();
  });
});
