/**
 * The browser benchmarks (issue 5): @ferry/client-web in Debian's Chromium
 * (the client-web harness page, a production Vite build served from
 * 127.0.0.1), against the service as a child process. One workspace holds
 * 5,000 tasks in 10 columns; users u1 and u2 are members.
 *
 * Every device is a fresh Chromium profile on disk (see web-page.ts for
 * why not Playwright's off-the-record contexts).
 *
 * - `web_initial_sync_5k_ms`: a fresh profile (empty origin storage,
 *   nothing cached) loads the page with `#autostart`, which opens the database
 *   (worker + WASM fetched and compiled), connects and waits for the first
 *   complete sync: the page's `performance.now()` then, i.e. from the
 *   navigation start. Five runs, each on a new profile and database name.
 * - `web_local_query_500_p50_ms`: in the synced page, the 500 tasks of one
 *   column ordered by title (index `by_column (column_id, title)`, as the
 *   Node `local_query` benchmark), `db.getAll`, p50 of 200 after 50 warm-up;
 *   `web_local_query_500_unindexed_p50_ms`: 500 of 5,000 by an unindexed
 *   ORDER BY … LIMIT 500, for comparison.
 * - `web_write_to_other_tab_p50_ms`: two tabs (pages of one profile) of u1
 *   on one database (multi-tab): a one-row UPDATE in one tab until the other
 *   tab's watch shows it. 100 after 10 warm-up.
 * - `web_write_to_other_user_p50_ms`: u1's leader tab updates a row; timed
 *   until u2's page (another profile: another device) shows it in a watch:
 *   upload → write API → Postgres → replication → u2's stream → u2's SQLite.
 *   100 after 10 warm-up.
 * - `web_wasm_gz_kb` / `web_js_gz_kb`: gzip -9 sizes of the `.wasm` and the
 *   JavaScript the page actually requested while loading and opening an
 *   OPFS database (page entry, the database worker, the lazily loaded
 *   SQLite glue and VFS).
 *
 * Times across pages use each page's `performance.timeOrigin +
 * performance.now()` (epoch milliseconds, sub-millisecond resolution), so
 * the Node-side `page.evaluate` round trips are not in the figures.
 */
import type { BrowserContext, Page } from 'playwright-core';
import type { BenchContext, Scenario } from './bench-context.js';
import { metric, percentile } from './harness.js';
import { callPage, gotoHarness, loadedSizes, pageValue, startWebBench, type WebBench } from './web-page.js';

const TASKS = 5_000;
const COLUMNS = 10;
const INITIAL_SYNC_RUNS = 5;
const QUERY_WARMUP = 50;
const QUERY_RUNS = 200;
const WRITE_WARMUP = 10;
const WRITE_RUNS = 100;
const TIMEOUT_MS = 30_000;

const WEB_DDL = `
  CREATE TABLE members (
    workspace_id text NOT NULL,
    user_id text NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
  );
  CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    column_id text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    done boolean NOT NULL,
    n integer NOT NULL,
    created_at timestamptz NOT NULL
  );
`;

const WEB_RULES = `
bucket_definitions:
  workspace_tasks:
    parameters: SELECT workspace_id FROM members WHERE user_id = request.user_id()
    data:
      - SELECT * FROM tasks WHERE workspace_id = bucket.workspace_id
`;

const WEB_WRITE_RULES = `
tables:
  tasks:
    operations: [insert, update, delete]
    columns: '*'
    where: "workspace_id IN (SELECT workspace_id FROM members WHERE user_id = request.user_id())"
`;

/** The client schema as the harness takes it (`SchemaSpec` in client-web's harness-api.ts). */
const SCHEMA = {
  tables: {
    tasks: {
      workspace_id: 'text',
      column_id: 'text',
      title: 'text',
      body: 'text',
      done: 'integer',
      n: 'integer',
      created_at: 'text',
    },
  },
  indexes: { tasks: { by_column: ['column_id', 'title'] } },
};

const INDEXED_QUERY = 'SELECT * FROM tasks WHERE column_id = ? ORDER BY title';
const UNINDEXED_QUERY = 'SELECT * FROM tasks ORDER BY n DESC LIMIT 500';

type AutostartState =
  | { state: 'running' }
  | { state: 'done'; openedAt: number; connectedAt: number; firstSyncAt: number }
  | { state: 'failed'; error: { message: string } };

async function seed(client: BenchContextDb): Promise<string> {
  await client.query(WEB_DDL);
  await client.query(`INSERT INTO members (workspace_id, user_id) VALUES ('w1', 'u1'), ('w1', 'u2'), ('w2', 'u3')`);
  await client.query(
    `INSERT INTO tasks (id, workspace_id, column_id, title, body, done, n, created_at)
     SELECT md5('task:' || g)::uuid, 'w1', 'col-' || (g % $1::int),
            'Task ' || substr(md5('t' || g), 1, 10), md5('b' || g) || substr(md5('c' || g), 1, 8),
            g % 3 = 0, g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'
     FROM generate_series(1, $2::int) AS g`,
    [COLUMNS, TASKS],
  );
  // A task of another workspace: never synced to u1 or u2.
  await client.query(
    `INSERT INTO tasks (id, workspace_id, column_id, title, body, done, n, created_at)
     VALUES (md5('other')::uuid, 'w2', 'col-0', 'not yours', '', false, 0, now())`,
  );
  const { rows } = await client.query<{ id: string }>(`SELECT md5('task:1')::uuid::text AS id`);
  return rows[0]!.id;
}

type BenchContextDb = Awaited<ReturnType<BenchContext['createDatabase']>>['client'];

async function count(page: Page): Promise<number> {
  const rows = await pageValue<{ c: number }[]>(page, 'getAll', 'SELECT count(*) AS c FROM tasks');
  return rows[0]!.c;
}

/** Opens the harness in a new page of `context`, opens `name` and connects as `token`'s user. */
async function openConnected(web: WebBench, context: BrowserContext, name: string, endpoint: string, token: string) {
  const page = await context.newPage();
  await gotoHarness(page, web.url);
  await pageValue(page, 'open', name, 'opfs', SCHEMA);
  await pageValue(page, 'connect', endpoint, token);
  await pageValue(page, 'waitForFirstSync');
  return page;
}

/**
 * `writer` updates the title of `taskId` WRITE_WARMUP + WRITE_RUNS times; each
 * time until `reader`'s watch shows the new title. Returns the lags (ms).
 */
async function writeToWatch(writer: Page, reader: Page, taskId: string, label: string): Promise<number[]> {
  const watch = await callPage<number>(reader, 'watch', 'SELECT title FROM tasks WHERE id = ?', [taskId]);
  const lags: number[] = [];
  for (let i = 0; i < WRITE_WARMUP + WRITE_RUNS; i++) {
    const title = `${label} ${i} ${Date.now()}`;
    const seen = pageValue<number>(reader, 'watchUntil', watch, [{ title }], TIMEOUT_MS);
    seen.catch(() => undefined); // awaited below; not unhandled if the write fails first
    const { startedAt } = await pageValue<{ startedAt: number }>(
      writer,
      'timedExecute',
      'UPDATE tasks SET title = ? WHERE id = ?',
      [title, taskId],
    );
    const at = await seen;
    if (i >= WRITE_WARMUP) lags.push(at - startedAt);
  }
  return lags;
}

const kb = (bytes: number): number => bytes / 1024;

export const webScenario: Scenario = {
  name: 'web',
  summary: 'Chromium: page load → 5,000 tasks synced; 500-row query in the page; write → other tab / other user; sizes',
  needsPostgres: true,
  metrics: [
    { name: 'web_initial_sync_5k_ms', unit: 'ms', target: { op: '<', value: 1_000 } },
    { name: 'web_local_query_500_p50_ms', unit: 'ms', target: { op: '<', value: 3 } },
    { name: 'web_local_query_500_unindexed_p50_ms', unit: 'ms' },
    { name: 'web_write_to_other_tab_p50_ms', unit: 'ms' },
    { name: 'web_write_to_other_user_p50_ms', unit: 'ms', target: { op: '<', value: 100 } },
    { name: 'web_wasm_gz_kb', unit: 'KB' },
    { name: 'web_js_gz_kb', unit: 'KB' },
  ],
  async run(ctx, out) {
    const db = await ctx.createDatabase('web');
    let web: WebBench | null = null;
    let service: Awaited<ReturnType<BenchContext['startService']>> | null = null;
    try {
      const taskId = await seed(db.client);
      service = await ctx.startService(db, WEB_RULES, { writeRulesYaml: WEB_WRITE_RULES });
      ctx.log('building the client-web harness page (Vite, production)');
      web = await startWebBench(ctx.repoRoot, ctx.tmpDir);
      const [u1, u2] = await Promise.all([ctx.token('u1'), ctx.token('u2')]);

      // ── page load → first complete sync, fresh storage each run ──────────
      const syncs: number[] = [];
      const connects: number[] = [];
      let firstRunRequests: string[] = [];
      let queryPage: Page | null = null;
      for (let run = 0; run < INITIAL_SYNC_RUNS; run++) {
        const context = await web.newProfile();
        const page = context.pages()[0] ?? (await context.newPage());
        const spec = {
          name: `web-initial-${run}-${Date.now()}.db`,
          vfs: 'opfs',
          schema: SCHEMA,
          endpoint: service.url,
          token: u1,
        };
        const requestsBefore = web.requests.length;
        await page.goto(`${web.url}/#autostart=${encodeURIComponent(JSON.stringify(spec))}`);
        await page.waitForFunction(
          () => (globalThis as { ferryAutostart?: { state: string } }).ferryAutostart?.state !== 'running',
          undefined,
          { timeout: TIMEOUT_MS, polling: 20 },
        );
        const state = await page.evaluate(
          () => (globalThis as unknown as { ferryAutostart: AutostartState }).ferryAutostart,
        );
        if (state.state !== 'done') {
          throw new Error(
            `initial sync run ${run} failed: ${state.state === 'failed' ? state.error.message : state.state}`,
          );
        }
        const rows = await count(page);
        if (rows !== TASKS) throw new Error(`initial sync run ${run}: ${rows} tasks, expected ${TASKS}`);
        syncs.push(state.firstSyncAt);
        connects.push(state.connectedAt);
        if (run === 0) firstRunRequests = web.requests.slice(requestsBefore);
        if (run === INITIAL_SYNC_RUNS - 1) queryPage = page;
        else await context.close();
        ctx.log(
          `initial sync run ${run}: ${state.firstSyncAt.toFixed(0)} ms (db open + connect at ${state.connectedAt.toFixed(0)} ms)`,
        );
      }
      out.add(
        metric('web_initial_sync_5k_ms', 'ms', syncs, {
          target: { op: '<', value: 1_000 },
          note: `navigation start → first complete sync of ${TASKS} tasks, a fresh Chromium profile (empty storage, nothing cached) + database per run; db open + connect done at median ${percentile(connects, 50).toFixed(0)} ms`,
        }),
      );

      // ── the gzipped sizes of what that first page loaded ─────────────────
      const sizes = await loadedSizes(web.outDir, firstRunRequests);
      const wasmGz = sizes.wasm.reduce((s, f) => s + f.gzipBytes, 0);
      const jsGz = sizes.js.reduce((s, f) => s + f.gzipBytes, 0);
      out.add(
        metric('web_wasm_gz_kb', 'KB', [], {
          value: kb(wasmGz),
          note: `${sizes.wasm.map((f) => `${f.file.replace(/^assets\//, '')} ${kb(f.bytes).toFixed(0)} KB raw`).join(', ')} (OPFS build)`,
        }),
      );
      out.add(
        metric('web_js_gz_kb', 'KB', [], {
          value: kb(jsGz),
          note: `${sizes.js.length} files loaded: ${sizes.js.map((f) => `${f.file.replace(/^assets\//, '').replace(/-[\w-]{8}\.js$/, '')} ${kb(f.gzipBytes).toFixed(1)}`).join(', ')}`,
        }),
      );

      // ── local query in the synced page ───────────────────────────────────
      const page = queryPage!;
      const plan = await pageValue<{ detail: string }[]>(page, 'getAll', `EXPLAIN QUERY PLAN ${INDEXED_QUERY}`, [
        'col-0',
      ]);
      const planText = plan.map((p) => p.detail).join('; ');
      if (!/USING INDEX/i.test(planText) || /TEMP B-TREE/i.test(planText)) {
        throw new Error(`the query does not use the index for filter and order: ${planText}`);
      }
      const paramSets = Array.from({ length: QUERY_WARMUP + QUERY_RUNS }, (_, i) => [`col-${i % COLUMNS}`]);
      const indexed = await pageValue<{ durations: number[]; rows: number[] }>(
        page,
        'timeQueries',
        INDEXED_QUERY,
        paramSets,
      );
      if (indexed.rows.some((r) => r !== TASKS / COLUMNS)) throw new Error(`indexed query: unexpected row counts`);
      const times = indexed.durations.slice(QUERY_WARMUP);
      out.add(
        metric('web_local_query_500_p50_ms', 'ms', times, {
          value: percentile(times, 50),
          target: { op: '<', value: 3 },
          note: `db.getAll in the page, ${QUERY_RUNS} runs after ${QUERY_WARMUP} warm-up, p95 ${percentile(times, 95).toFixed(2)} ms; plan: ${planText}`,
        }),
      );
      const unindexed = await pageValue<{ durations: number[]; rows: number[] }>(
        page,
        'timeQueries',
        UNINDEXED_QUERY,
        Array.from({ length: QUERY_WARMUP + QUERY_RUNS }, () => []),
      );
      const unindexedTimes = unindexed.durations.slice(QUERY_WARMUP);
      out.add(
        metric('web_local_query_500_unindexed_p50_ms', 'ms', unindexedTimes, {
          value: percentile(unindexedTimes, 50),
          note: `${UNINDEXED_QUERY} (sorts 5,000 rows), same runs`,
        }),
      );
      await page.context().close();

      // ── a write in one tab → the other tab (same user, multi-tab) ────────
      const tabsContext = await web.newProfile();
      const name = `web-tabs-${Date.now()}.db`;
      const tabA = await openConnected(web, tabsContext, name, service.url, u1);
      const tabB = await openConnected(web, tabsContext, name, service.url, u1);
      const leaderA = (await callPage<{ isSyncLeader: boolean }>(tabA, 'status')).isSyncLeader;
      const [leader, follower] = leaderA ? [tabA, tabB] : [tabB, tabA];
      const tabLags = await writeToWatch(follower, leader, taskId, 'tab');
      out.add(
        metric('web_write_to_other_tab_p50_ms', 'ms', tabLags, {
          value: percentile(tabLags, 50),
          note: `follower tab's UPDATE → leader tab's watch; ${WRITE_RUNS} after ${WRITE_WARMUP} warm-up, p95 ${percentile(tabLags, 95).toFixed(1)} ms`,
        }),
      );

      // ── a write by u1 → u2's page (another profile) ──────────────────────
      const otherContext = await web.newProfile();
      const other = await openConnected(web, otherContext, `web-u2-${Date.now()}.db`, service.url, u2);
      const userLags = await writeToWatch(leader, other, taskId, 'user');
      out.add(
        metric('web_write_to_other_user_p50_ms', 'ms', userLags, {
          value: percentile(userLags, 50),
          target: { op: '<', value: 100 },
          note: `u1's UPDATE → upload → Postgres → replication → u2's watch; ${WRITE_RUNS} after ${WRITE_WARMUP} warm-up, p95 ${percentile(userLags, 95).toFixed(1)} ms`,
        }),
      );
      await otherContext.close();
      await tabsContext.close();
    } finally {
      await web?.close();
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};
