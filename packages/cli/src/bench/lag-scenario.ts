/**
 * Replication lag end to end: a connected Ferry client watches one row;
 * 200 single-row UPDATEs, one at a time, each timed from just before the
 * UPDATE is sent (auto-commit) until the client's `watch` reports the new
 * value from its local SQLite. A few warm-up updates are not counted.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openFerryDatabase } from '@ferry/client-node';
import { LISTS_ITEMS_DDL, USER_LISTS_RULES, ferryItemsSchema, insertItems, insertLists, itemId } from './bench-data.js';
import type { Scenario } from './bench-context.js';
import { median, metric, percentile } from './harness.js';

const UPDATES = 200;
const WARMUP = 10;
const TIMEOUT_MS = 10_000;

export const lagScenario: Scenario = {
  name: 'lag',
  summary: '200 single-row UPDATEs one at a time: commit → visible in a connected Ferry client (watch)',
  needsPostgres: true,
  metrics: [
    { name: 'replication_lag_p50_ms', unit: 'ms', target: { op: '<', value: 20 } },
    { name: 'replication_lag_p95_ms', unit: 'ms', target: { op: '<', value: 60 } },
  ],
  async run(ctx, out) {
    const db = await ctx.createDatabase('lag');
    let service: Awaited<ReturnType<typeof ctx.startService>> | null = null;
    let client: Awaited<ReturnType<typeof openFerryDatabase>> | null = null;
    try {
      await db.client.query(LISTS_ITEMS_DDL);
      await insertLists(db.client, 'u1', 10);
      await insertItems(db.client, 'u1', 10, 1, 1_000);
      service = await ctx.startService(db, USER_LISTS_RULES);
      const dir = await ctx.tempDir('lag');
      client = await openFerryDatabase({ path: path.join(dir, 'client.db'), schema: ferryItemsSchema() });
      const token = await ctx.token('u1');
      const url = service.url;
      await client.connect({ fetchCredentials: async () => ({ endpoint: url, token }) });
      await client.waitForFirstSync();
      const id = await itemId(db.client, 'u1', 1);

      let expected: number | null = null;
      let resolveSeen: ((at: number) => void) | null = null;
      let watchError: unknown = null;
      const stopWatch = client.watch<{ n: number }>('SELECT n FROM items WHERE id = ?', [id], {
        onResult(rows) {
          const at = performance.now();
          if (expected !== null && rows[0] !== undefined && Number(rows[0].n) === expected) {
            const resolve = resolveSeen;
            resolveSeen = null;
            resolve?.(at);
          }
        },
        onError(error) {
          watchError = error;
        },
      });
      try {
        const lags: number[] = [];
        const commits: number[] = [];
        for (let i = 1; i <= WARMUP + UPDATES; i++) {
          if (watchError !== null) throw watchError;
          const value = 1_000_000 + i;
          const seen = new Promise<number>((resolve, reject) => {
            resolveSeen = resolve;
            setTimeout(
              () => reject(new Error(`update ${i} not visible in the client after ${TIMEOUT_MS} ms`)),
              TIMEOUT_MS,
            ).unref();
          });
          expected = value;
          const started = performance.now();
          await db.client.query('UPDATE items SET n = $1 WHERE id = $2', [value, id]);
          const committed = performance.now();
          const at = await seen;
          if (i > WARMUP) {
            lags.push(at - started);
            commits.push(committed - started);
          }
        }
        const note = `${UPDATES} updates after ${WARMUP} warm-up; UPDATE round trip median ${median(commits).toFixed(2)} ms; max ${Math.max(...lags).toFixed(1)} ms`;
        out.add(
          metric('replication_lag_p50_ms', 'ms', lags, {
            value: percentile(lags, 50),
            target: { op: '<', value: 20 },
            note,
          }),
        );
        out.add(
          metric('replication_lag_p95_ms', 'ms', lags, {
            value: percentile(lags, 95),
            target: { op: '<', value: 60 },
            note: 'same samples as p50',
          }),
        );
      } finally {
        stopWatch();
      }
    } finally {
      await client?.disconnect().catch(() => {});
      await client?.close().catch(() => {});
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};
