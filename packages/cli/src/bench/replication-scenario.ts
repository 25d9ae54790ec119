/**
 * Replication throughput: while the service streams from its slot, insert
 * 100k rows in transactions of 1,000 as fast as one connection can, and
 * time from the first commit until the storage checkpoint covers the last
 * one (the op count over `ferry.bucket_state`, which is updated in each
 * checkpoint's transaction, reaches the rows inserted). Three rounds.
 */
import pg from 'pg';
import { performance } from 'node:perf_hooks';
import { LISTS_ITEMS_DDL, USER_LISTS_RULES, insertItems, insertLists } from './bench-data.js';
import type { Scenario } from './bench-context.js';
import { metric } from './harness.js';
import { measurePhasePeak, readProcCpuMs } from './proc.js';

const ROWS = 100_000;
const PER_TX = 1_000;
const ROUNDS = 3;
const LISTS = 100;
const DRAIN_TIMEOUT_MS = 120_000;

async function storedOps(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    'SELECT coalesce(sum(count), 0)::text AS n FROM ferry.bucket_state',
  );
  return Number(rows[0]!.n);
}

export const replicationScenario: Scenario = {
  name: 'replication',
  summary: '100k rows inserted in 1k-row transactions while streaming; first commit → checkpoint covers the last',
  needsPostgres: true,
  metrics: [{ name: 'replication_ops_per_s', unit: 'ops/s', target: { op: '>', value: 20_000 } }],
  async run(ctx, out) {
    const db = await ctx.createDatabase('replication');
    let service: Awaited<ReturnType<typeof ctx.startService>> | null = null;
    const poller = new pg.Client({ connectionString: db.url });
    try {
      await db.client.query(LISTS_ITEMS_DDL);
      await insertLists(db.client, 'u1', LISTS);
      service = await ctx.startService(db, USER_LISTS_RULES);
      await poller.connect();
      const rates: number[] = [];
      const notes: string[] = [];
      const peaks: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const before = await storedOps(poller);
        const base = round * ROWS;
        const cpuBefore = await readProcCpuMs(service.pid);
        const phase = await measurePhasePeak(service.pid, async () => {
          let firstCommit = 0;
          let lastCommit = 0;
          const inserting = (async () => {
            for (let from = 1; from <= ROWS; from += PER_TX) {
              await db.client.query('BEGIN');
              await insertItems(db.client, 'u1', LISTS, base + from, base + from + PER_TX - 1);
              await db.client.query('COMMIT');
              if (from === 1) firstCommit = performance.now();
            }
            lastCommit = performance.now();
          })();
          let covered = 0;
          let stored = before;
          const deadline = performance.now() + DRAIN_TIMEOUT_MS;
          while (stored < before + ROWS) {
            if (performance.now() > deadline)
              throw new Error(`storage covered ${stored - before} of ${ROWS} rows after ${DRAIN_TIMEOUT_MS} ms`);
            await new Promise((resolve) => setTimeout(resolve, 5));
            stored = await storedOps(poller);
          }
          covered = performance.now();
          await inserting;
          return { firstCommit, lastCommit, covered };
        });
        const { firstCommit, lastCommit, covered } = phase.result;
        const seconds = (covered - firstCommit) / 1000;
        rates.push(ROWS / seconds);
        peaks.push(phase.peakMb);
        const serviceCpu = ((await readProcCpuMs(service.pid)) - cpuBefore) / 1000;
        notes.push(
          `inserts ${((lastCommit - firstCommit) / 1000).toFixed(2)} s + drain ${((covered - lastCommit) / 1000).toFixed(2)} s, service CPU ${serviceCpu.toFixed(1)} s`,
        );
        ctx.log(
          `replication: round ${round + 1}: ${(ROWS / seconds).toFixed(0)} ops/s (${notes.at(-1)}), service peak ${phase.peakMb.toFixed(0)} MiB`,
        );
      }
      out.add(
        metric('replication_ops_per_s', 'ops/s', rates, {
          target: { op: '>', value: 20_000 },
          note: `${ROUNDS}×100k rows, 1k/tx, 100 buckets; ${notes.join('; ')}; service peak ${peaks.map((p) => p.toFixed(0)).join('/')} MiB`,
        }),
      );
    } finally {
      await poller.end().catch(() => {});
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};
