/**
 * Local query: a Ferry client database with 5,000 rows in `items` (index
 * `by_list` on list_id, title); a query returning 500 rows with an indexed
 * filter and ORDER BY, through `db.getAll`. p50 over 300 runs after 50
 * warm-up runs. No Postgres: the rows are written locally, then the run
 * waits out the driver's deferred WAL checkpoint (1 s after a write) so it
 * measures reads, not that write-side cost. As a floor, the same statement
 * runs straight on a second better-sqlite3 connection, interleaved.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { BetterSqlite3Driver, openFerryDatabase } from '@ferry/client-node';
import { ferryItemsSchema } from './bench-data.js';
import type { Scenario } from './bench-context.js';
import { consume, metric, percentile } from './harness.js';

const ROWS = 5_000;
const LISTS = 10;
const WARMUP = 50;
const RUNS = 300;
const QUERY = 'SELECT * FROM items WHERE list_id = ? ORDER BY title';

export const localQueryScenario: Scenario = {
  name: 'local_query',
  summary: '500 of 5,000 rows by an indexed filter with ORDER BY, db.getAll, p50 of 300',
  needsPostgres: false,
  metrics: [
    { name: 'local_query_500_p50_ms', unit: 'ms', target: { op: '<', value: 0.5 } },
    { name: 'local_query_500_p95_ms', unit: 'ms' },
    { name: 'local_query_500_raw_sqlite_p50_ms', unit: 'ms' },
  ],
  async run(ctx, out) {
    const dir = await ctx.tempDir('local-query');
    const file = path.join(dir, 'client.db');
    const db = await openFerryDatabase({ path: file, schema: ferryItemsSchema() });
    try {
      await db.writeTransaction(async (tx) => {
        for (let i = 0; i < ROWS; i++) {
          await tx.execute(
            'INSERT INTO items (id, list_id, title, body, done, n, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [
              `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
              `list-${i % LISTS}`,
              `Item ${(i * 7919) % ROWS} title`,
              'b'.repeat(40),
              i % 3 === 0 ? 1 : 0,
              i,
              new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
            ],
          );
        }
      });
      const plan = await db.getAll<{ detail: string }>(`EXPLAIN QUERY PLAN ${QUERY}`, ['list-0']);
      const planText = plan.map((p) => p.detail).join('; ');
      if (!/USING INDEX/i.test(planText) || /TEMP B-TREE/i.test(planText)) {
        throw new Error(`the query does not use the index for filter and order: ${planText}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const raw = new BetterSqlite3Driver({ path: file });
      const times: number[] = [];
      const rawTimes: number[] = [];
      try {
        const statement = raw.reader!.db.prepare(QUERY);
        for (let i = 0; i < WARMUP + RUNS; i++) {
          const list = `list-${i % LISTS}`;
          const started = performance.now();
          const rows = await db.getAll(QUERY, [list]);
          const ms = performance.now() - started;
          if (rows.length !== ROWS / LISTS)
            throw new Error(`query returned ${rows.length} rows, expected ${ROWS / LISTS}`);
          consume(rows);
          const rawStarted = performance.now();
          consume(statement.all(list));
          const rawMs = performance.now() - rawStarted;
          if (i >= WARMUP) {
            times.push(ms);
            rawTimes.push(rawMs);
          }
        }
      } finally {
        await raw.close();
      }
      out.add(
        metric('local_query_500_p50_ms', 'ms', times, {
          value: percentile(times, 50),
          target: { op: '<', value: 0.5 },
          note: `${RUNS} runs after ${WARMUP} warm-up; plan: ${planText}`,
        }),
      );
      out.add(metric('local_query_500_p95_ms', 'ms', times, { value: percentile(times, 95), note: 'same samples' }));
      out.add(
        metric('local_query_500_raw_sqlite_p50_ms', 'ms', rawTimes, {
          value: percentile(rawTimes, 50),
          note: 'floor: the same statement on a bare better-sqlite3 connection (stmt.all), interleaved',
        }),
      );
    } finally {
      await db.close();
    }
  },
};
