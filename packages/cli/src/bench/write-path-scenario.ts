/**
 * The write path end to end, against the service as a child process:
 *
 * - `upload_apply_ops_per_s`: 10,000 PUTs POSTed straight to `/write` in
 *   batches of 1,000 ops (100 transactions of 10 ops each), timed until the
 *   last answer: the write API's apply rate into Postgres, on a table with
 *   `conflicts: off`. Three rounds.
 * - `upload_apply_tracked_ops_per_s`: the same on a table with conflict
 *   tracking (field stamps stored per row, every op HLC-stamped), rounds
 *   alternating with the untracked ones so both see the same machine;
 *   `upload_apply_tracked_ratio` = tracked / untracked.
 * - `upload_apply_mixed_*`: the same three with half the ops PATCHes of
 *   existing rows carrying `old` values (where tracking reads and compares
 *   the stored stamps).
 * - `a_to_b_p50_ms` / `a_to_b_p95_ms`: two connected Ferry clients of one
 *   user; client A updates one row in a `writeTransaction`, timed until B's
 *   `watch` shows the value (A's upload loop → write API → Postgres →
 *   replication → B's stream → B's SQLite). 200 writes after 10 warm-up.
 * - `offline_10k_drain_ms`: A, disconnected, makes 10,000 one-row inserts;
 *   then A connects, timed until B holds all 10,000 rows. Three rounds.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ferryConnector, type FerryDatabase } from '@ferry/client';
import { encodeHlc } from '@ferry/protocol';
import { openFerryDatabase } from '@ferry/client-node';
import {
  LISTS_ITEMS_DDL,
  USER_LISTS_RULES,
  ferryItemsSchema,
  insertItems,
  insertLists,
  itemId,
  listId,
} from './bench-data.js';
import type { BenchContext, Scenario } from './bench-context.js';
import { median, metric, percentile } from './harness.js';

const ITEMS_WRITE_RULES = `
tables:
  items:
    operations: [insert, update, delete]
    columns: '*'
    where: "list_id IN (SELECT id FROM lists WHERE owner_id = request.user_id())"
    conflicts: off
  tracked_items:
    operations: [insert, update, delete]
    columns: '*'
    where: "list_id IN (SELECT id FROM lists WHERE owner_id = request.user_id())"
`;

/** Same shape as items, written with conflict tracking; synced like items, so both rates include replication. */
const TRACKED_ITEMS_DDL = `CREATE TABLE tracked_items (LIKE items INCLUDING ALL)`;
const SYNC_RULES = `${USER_LISTS_RULES}      - SELECT * FROM tracked_items WHERE list_id = bucket.list_id
`;

const APPLY_OPS = 10_000;
const APPLY_BATCH_OPS = 1_000;
const APPLY_TX_OPS = 10;
const APPLY_ROUNDS = 3;
/** Rows the mixed workload updates (each once per run). */
const PATCHED_ROWS = APPLY_OPS / 2;
const A_TO_B_WRITES = 200;
const A_TO_B_WARMUP = 10;
const OFFLINE_WRITES = 10_000;
const OFFLINE_ROUNDS = 3;
const TIMEOUT_MS = 20_000;

function uuid(n: number, salt: string): string {
  const hex = (n.toString(16) + salt).padStart(32, '0').slice(-32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const writePathScenario: Scenario = {
  name: 'write_path',
  summary: 'write API apply rate; write on client A → visible on client B; 10,000 offline writes drained',
  needsPostgres: true,
  metrics: [
    { name: 'upload_apply_ops_per_s', unit: 'ops/s', target: { op: '>', value: 10_000 } },
    { name: 'upload_apply_tracked_ops_per_s', unit: 'ops/s' },
    { name: 'upload_apply_tracked_ratio', unit: 'ratio', target: { op: '>', value: 0.7 } },
    { name: 'upload_apply_mixed_ops_per_s', unit: 'ops/s' },
    { name: 'upload_apply_mixed_tracked_ops_per_s', unit: 'ops/s' },
    { name: 'upload_apply_mixed_tracked_ratio', unit: 'ratio', target: { op: '>', value: 0.7 } },
    { name: 'a_to_b_p50_ms', unit: 'ms', target: { op: '<', value: 50 } },
    { name: 'a_to_b_p95_ms', unit: 'ms', target: { op: '<', value: 150 } },
    { name: 'offline_10k_drain_ms', unit: 'ms' },
  ],
  async run(ctx, out) {
    await measureApplyRates(ctx, out);
    const db = await ctx.createDatabase('write');
    let service: Awaited<ReturnType<BenchContext['startService']>> | null = null;
    const clients: FerryDatabase[] = [];
    try {
      await db.client.query(LISTS_ITEMS_DDL);
      await db.client.query(TRACKED_ITEMS_DDL);
      await insertLists(db.client, 'u1', 10);
      await insertItems(db.client, 'u1', 10, 1, 1_000);
      service = await ctx.startService(db, USER_LISTS_RULES, { writeRulesYaml: ITEMS_WRITE_RULES });
      const url = service.url;
      const token = await ctx.token('u1');

      // ── A → B ───────────────────────────────────────────────────────────
      const dir = await ctx.tempDir('write');
      const open = async (name: string): Promise<FerryDatabase> => {
        const client = await openFerryDatabase({ path: path.join(dir, `${name}.db`), schema: ferryItemsSchema() });
        clients.push(client);
        return client;
      };
      const connector = ferryConnector({ endpoint: url, fetchToken: async () => token });
      const a = await open('a');
      const b = await open('b');
      await a.connect(connector);
      await b.connect(connector);
      await Promise.all([a.waitForFirstSync(), b.waitForFirstSync()]);
      const id = await itemId(db.client, 'u1', 1);

      let expected: number | null = null;
      let resolveSeen: ((at: number) => void) | null = null;
      const stopWatch = b.watch<{ n: number }>('SELECT n FROM items WHERE id = ?', [id], {
        onResult(rows) {
          const at = performance.now();
          if (expected !== null && rows[0] !== undefined && Number(rows[0].n) === expected) {
            const resolve = resolveSeen;
            resolveSeen = null;
            resolve?.(at);
          }
        },
      });
      const lags: number[] = [];
      try {
        for (let i = 1; i <= A_TO_B_WARMUP + A_TO_B_WRITES; i++) {
          const value = 2_000_000 + i;
          const seen = new Promise<number>((resolve, reject) => {
            resolveSeen = resolve;
            setTimeout(
              () => reject(new Error(`write ${i} not visible on B after ${TIMEOUT_MS} ms`)),
              TIMEOUT_MS,
            ).unref();
          });
          expected = value;
          const started = performance.now();
          await a.writeTransaction((tx) => tx.execute('UPDATE items SET n = ? WHERE id = ?', [value, id]));
          const at = await seen;
          if (i > A_TO_B_WARMUP) lags.push(at - started);
        }
      } finally {
        stopWatch();
      }
      const lagNote = `${A_TO_B_WRITES} one-row updates after ${A_TO_B_WARMUP} warm-up, one user on two devices; max ${Math.max(...lags).toFixed(1)} ms`;
      out.add(
        metric('a_to_b_p50_ms', 'ms', lags, {
          value: percentile(lags, 50),
          target: { op: '<', value: 50 },
          note: lagNote,
        }),
      );
      out.add(
        metric('a_to_b_p95_ms', 'ms', lags, {
          value: percentile(lags, 95),
          target: { op: '<', value: 150 },
          note: 'same samples as p50',
        }),
      );

      // ── 10,000 offline writes drained (three rounds) ────────────────────
      const drains: number[] = [];
      for (let round = 0; round < OFFLINE_ROUNDS; round++) {
        await a.disconnect();
        const before = Number((await b.get<{ n: number }>('SELECT count(*) AS n FROM items')).n);
        for (let i = 0; i < OFFLINE_WRITES; i++) {
          await a.writeTransaction((tx) =>
            tx.execute(
              'INSERT INTO items (id, list_id, title, body, done, n, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
              [
                uuid(round * OFFLINE_WRITES + i + 1, 'b'),
                listId('u1', i % 10),
                `Offline ${round} ${i}`,
                'written while offline',
                0,
                i,
                '2025-01-02T00:00:00.000Z',
              ],
            ),
          );
        }
        const started = performance.now();
        await a.connect(connector);
        await waitUntil(
          async () =>
            Number((await b.get<{ n: number }>('SELECT count(*) AS n FROM items')).n) >= before + OFFLINE_WRITES,
          `${OFFLINE_WRITES} offline writes visible on B`,
          120_000,
        );
        drains.push(performance.now() - started);
        const onServer = Number(
          (await db.client.query(`SELECT count(*) AS n FROM items WHERE title LIKE $1`, [`Offline ${round} %`])).rows[0]
            .n,
        );
        if (onServer !== OFFLINE_WRITES) {
          throw new Error(`Postgres holds ${onServer} offline rows of round ${round}, expected ${OFFLINE_WRITES}`);
        }
      }
      out.add(
        metric('offline_10k_drain_ms', 'ms', drains, {
          value: median(drains),
          note: `${OFFLINE_WRITES} one-row transactions queued offline, from connect until all visible on B; ${OFFLINE_ROUNDS} rounds`,
        }),
      );
    } finally {
      for (const client of clients) {
        await client.disconnect().catch(() => {});
        await client.close().catch(() => {});
      }
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};

/**
 * The apply-rate metrics, on a database and service of their own (so the
 * rows they write do not weigh on the latency measurements after them).
 */
async function measureApplyRates(ctx: BenchContext, out: Parameters<Scenario['run']>[1]): Promise<void> {
  const db = await ctx.createDatabase('write_apply');
  let service: Awaited<ReturnType<BenchContext['startService']>> | null = null;
  try {
    await db.client.query(LISTS_ITEMS_DDL);
    await db.client.query(TRACKED_ITEMS_DDL);
    await insertLists(db.client, 'u1', 10);
    service = await ctx.startService(db, SYNC_RULES, { writeRulesYaml: ITEMS_WRITE_RULES });
    const url = service.url;
    const token = await ctx.token('u1');

    // ── apply rate through the write API ────────────────────────────────
    const post = async (body: string): Promise<void> => {
      const response = await fetch(`${url}/write`, {
        method: 'POST',
        headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
        body,
      });
      const answer = (await response.json()) as { transactions?: { status: string }[] };
      if (response.status !== 200 || answer.transactions?.some((t) => t.status !== 'applied')) {
        throw new Error(`/write answered ${response.status}: ${JSON.stringify(answer).slice(0, 300)}`);
      }
    };
    const table = (tracked: boolean) => (tracked ? 'tracked_items' : 'items');
    const stamp = (tracked: boolean, counter: number) =>
      tracked ? { hlc: encodeHlc({ wallMs: Date.now(), counter, node: 'bench' }) } : {};
    const put = (tracked: boolean, n: number, salt: string, counter: number) => ({
      op: 'PUT',
      type: table(tracked),
      id: uuid(n, salt),
      ...stamp(tracked, counter),
      data: {
        list_id: listId('u1', n % 10),
        title: `Uploaded ${n}`,
        body: 'x'.repeat(40),
        done: n % 2,
        n,
        created_at: '2025-01-01T00:00:00.000Z',
      },
    });
    // Rows the mixed workload updates, inserted untimed (title `Uploaded m`).
    for (const tracked of [false, true]) {
      for (let b = 0; b < PATCHED_ROWS / APPLY_BATCH_OPS; b++) {
        const ops = Array.from({ length: APPLY_BATCH_OPS }, (_, i) =>
          put(tracked, b * APPLY_BATCH_OPS + i + 1, 'd', 0),
        );
        await post(JSON.stringify({ client_id: 'bench', transactions: [{ id: `base:${tracked}:${b}`, ops }] }));
      }
    }
    const titleOf = (m: number, round: number) => (round < 0 ? `Uploaded ${m}` : `Round ${round} ${m}`);

    /** One timed run: 10,000 ops; `mixed`: every other op a PATCH of an existing row's title (with `old`). */
    const applyRun = async (tracked: boolean, mixed: boolean, round: number): Promise<number> => {
      const bodies: string[] = [];
      let patched = 0;
      for (let b = 0; b < APPLY_OPS / APPLY_BATCH_OPS; b++) {
        const transactions = [];
        for (let t = 0; t < APPLY_BATCH_OPS / APPLY_TX_OPS; t++) {
          const ops: object[] = [];
          for (let o = 0; o < APPLY_TX_OPS; o++) {
            const n = ((round * APPLY_OPS + b * APPLY_BATCH_OPS + t * APPLY_TX_OPS + o) >>> 0) + 1;
            if (mixed && o % 2 === 1) {
              const m = ++patched;
              ops.push({
                op: 'PATCH',
                type: table(tracked),
                id: uuid(m, 'd'),
                ...stamp(tracked, o),
                data: { title: titleOf(m, round) },
                old: { title: titleOf(m, round - 1) },
              });
            } else ops.push(put(tracked, n, mixed ? 'c' : 'a', o));
          }
          transactions.push({ id: `bench:${tracked ? 't' : 'u'}:${mixed ? 'm' : 'p'}:${round}:${b}:${t}`, ops });
        }
        bodies.push(JSON.stringify({ client_id: 'bench', transactions }));
      }
      const started = performance.now();
      for (const body of bodies) await post(body);
      return APPLY_OPS / ((performance.now() - started) / 1000);
    };

    for (const mixed of [false, true]) {
      const rates: number[] = [];
      const trackedRates: number[] = [];
      const ratios: number[] = [];
      // Untracked and tracked runs alternate, so both see the same machine.
      for (let round = 0; round < APPLY_ROUNDS; round++) {
        rates.push(await applyRun(false, mixed, round));
        trackedRates.push(await applyRun(true, mixed, round));
        ratios.push(trackedRates.at(-1)! / rates.at(-1)!);
      }
      const prefix = mixed ? 'upload_apply_mixed' : 'upload_apply';
      const what = mixed
        ? `${APPLY_OPS / 2} PUTs + ${APPLY_OPS / 2} PATCHes of existing rows (with old values)`
        : `${APPLY_OPS} PUTs`;
      out.add(
        metric(`${prefix}_ops_per_s`, 'ops/s', rates, {
          value: median(rates),
          ...(mixed ? {} : { target: { op: '>', value: 10_000 } }),
          note: `${what}, ${APPLY_BATCH_OPS} ops per request, ${APPLY_TX_OPS} per transaction, ${APPLY_ROUNDS} rounds, conflicts: off`,
        }),
      );
      out.add(
        metric(`${prefix}_tracked_ops_per_s`, 'ops/s', trackedRates, {
          value: median(trackedRates),
          note: 'the same, HLC-stamped, on a table with conflict tracking (field stamps read, compared, written)',
        }),
      );
      out.add(
        metric(`${prefix}_tracked_ratio`, 'ratio', ratios, {
          value: median(ratios),
          target: { op: '>', value: 0.7 },
          note: 'tracked / untracked rate of back-to-back runs: tracking must cost under 30%',
        }),
      );
    }
  } finally {
    await service?.stop();
    await ctx.dropDatabase(db);
  }
}
