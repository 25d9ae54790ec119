/**
 * Initial copy: 1,000,000 rows (~100 B) exist before the service first
 * starts; time from spawning the service until `/ready` (copy done, first
 * checkpoint published), and its peak RSS over that whole time (VmHWM
 * since the process started).
 */
import type { Scenario } from './bench-context.js';
import { metric } from './harness.js';

const ROWS = 1_000_000;

const RULES = `
bucket_definitions:
  user_lists:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM events WHERE list_id = bucket.list_id
`;

export const snapshotScenario: Scenario = {
  name: 'snapshot',
  summary: '1M rows (~100 B) present before first start; spawn → /ready; service peak RSS',
  needsPostgres: true,
  metrics: [
    { name: 'snapshot_1m_rows_per_s', unit: 'rows/s' },
    { name: 'service_rss_snapshot_1m_mb', unit: 'MiB', target: { op: '<', value: 300 } },
  ],
  async run(ctx, out) {
    const db = await ctx.createDatabase('snapshot');
    let service: Awaited<ReturnType<typeof ctx.startService>> | null = null;
    try {
      await db.client.query(`
        CREATE TABLE lists (id text PRIMARY KEY, owner_id text NOT NULL, name text NOT NULL);
        CREATE TABLE events (id bigint PRIMARY KEY, list_id text NOT NULL, kind text NOT NULL, payload text NOT NULL, amount integer NOT NULL);
        INSERT INTO lists SELECT 'u1-list-' || k, 'u1', 'List ' || k FROM generate_series(0, 99) k;
      `);
      await db.client.query(
        `INSERT INTO events
         SELECT g, 'u1-list-' || (g % 100), (ARRAY['click','view','edit','share'])[1 + g % 4], md5(g::text), g % 1000
         FROM generate_series(1, $1::int) g`,
        [ROWS],
      );
      await db.client.query('ANALYZE events');
      ctx.log('snapshot: 1M rows inserted; starting the service');
      service = await ctx.startService(db, RULES, { readyTimeoutMs: 400_000 });
      const memory = await service.memory();
      const { rows } = await db.client.query<{ n: string; avg: number }>(
        `SELECT (SELECT coalesce(sum(count), 0) FROM ferry.bucket_state)::text AS n,
                (SELECT avg(octet_length(data))::float8 FROM (SELECT data FROM ferry.ops LIMIT 2000) s) AS avg`,
      );
      const stored = Number(rows[0]!.n);
      if (stored < ROWS) throw new Error(`service was ready with ${stored} ops stored, expected ≥ ${ROWS}`);
      const seconds = service.readyMs / 1000;
      const copySeconds = (service.readyMs - service.listeningMs) / 1000;
      ctx.log(
        `snapshot: ready after ${seconds.toFixed(1)} s (listening after ${(service.listeningMs / 1000).toFixed(2)} s), peak ${memory.hwmMb.toFixed(0)} MiB`,
      );
      out.add(
        metric('snapshot_1m_rows_per_s', 'rows/s', [ROWS / seconds], {
          note: `spawn → /ready ${seconds.toFixed(1)} s (copy after API up ${copySeconds.toFixed(1)} s = ${(ROWS / copySeconds).toFixed(0)} rows/s); rows ${rows[0]!.avg.toFixed(0)} B as stored; 100 buckets; single run`,
        }),
      );
      out.add(
        metric('service_rss_snapshot_1m_mb', 'MiB', [memory.hwmMb], {
          target: { op: '<', value: 300 },
          note: `VmHWM since process start, read at /ready; RSS then ${memory.rssMb.toFixed(0)} MiB`,
        }),
      );
    } finally {
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};
