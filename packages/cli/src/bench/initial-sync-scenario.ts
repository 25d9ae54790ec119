/**
 * Initial sync: a fresh client database, from `connect()` to its first
 * complete checkpoint, for 5k and 100k rows of ~200 B in 100 buckets (one
 * per list the user owns). Every client sync runs in its own child process
 * (cold, like an app's first start) so its peak RSS is the client's own.
 * Ferry's client and the official `@powersync/node` client alternate against
 * the same service and data. Before the timed runs, one raw stream per
 * user warms the service (JIT, shared op page cache) for both clients alike;
 * its time is reported as the cold figure.
 */
import path from 'node:path';
import { LISTS_ITEMS_DDL, USER_LISTS_RULES, averageOpBytes, insertItems, insertLists } from './bench-data.js';
import type { BenchContext, Scenario, ScenarioOutput } from './bench-context.js';
import { runJsonChild } from './child-processes.js';
import type { ClientSyncJob, ClientSyncResult } from './client-sync-child.js';
import { median, metric } from './harness.js';
import { measurePhasePeak, readProcCpuMs } from './proc.js';
import { rawInitialSync } from './raw-stream.js';

const LISTS = 100;
const RUNS_5K = 5;
const RUNS_100K = 3;
const CHILD_TIMEOUT_MS = 120_000;

const fmt = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');

export const initialSyncScenario: Scenario = {
  name: 'initial_sync',
  summary: 'fresh client, connect → first complete checkpoint, 5k and 100k rows; Ferry vs @powersync/node; RSS',
  needsPostgres: true,
  metrics: [
    { name: 'initial_sync_5k_ms', unit: 'ms', target: { op: '<', value: 250 } },
    { name: 'initial_sync_100k_ms', unit: 'ms', target: { op: '<', value: 1500 } },
    { name: 'initial_sync_100k_powersync_client_ms', unit: 'ms' },
    { name: 'initial_sync_100k_raw_stream_ms', unit: 'ms' },
    { name: 'client_rss_100k_mb', unit: 'MiB' },
    { name: 'service_rss_100k_mb', unit: 'MiB', target: { op: '<', value: 300 } },
  ],
  async run(ctx: BenchContext, out: ScenarioOutput) {
    const db = await ctx.createDatabase('initial_sync');
    let service: Awaited<ReturnType<BenchContext['startService']>> | null = null;
    try {
      await db.client.query(LISTS_ITEMS_DDL);
      await insertLists(db.client, 'u5k', LISTS);
      await insertLists(db.client, 'u100k', LISTS);
      await insertItems(db.client, 'u5k', LISTS, 1, 5_000);
      await insertItems(db.client, 'u100k', LISTS, 1, 100_000);
      ctx.log('initial_sync: 105k rows inserted; starting the service');
      service = await ctx.startService(db, USER_LISTS_RULES);
      const opBytes = await averageOpBytes(db.client);
      ctx.log(
        `initial_sync: service ready in ${service.readyMs.toFixed(0)} ms; average row ${opBytes.toFixed(0)} B as synced`,
      );
      const dir = await ctx.tempDir('initial-sync');
      const childJs = path.join(ctx.distDir, 'client-sync-child.js');
      // FERRY_BENCH_CLIENT_PROF=<dir>: CPU-profile every client process (for diagnosis; slows them down).
      const profDir = process.env['FERRY_BENCH_CLIENT_PROF'];
      const profArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
      let runId = 0;
      const sync = async (
        client: ClientSyncJob['client'],
        user: string,
      ): Promise<ClientSyncResult & { serviceCpuMs: number }> => {
        const job: ClientSyncJob = {
          client,
          url: service!.url,
          token: await ctx.token(user),
          dbPath: path.join(dir, `${client}-${user}-${runId++}.db`),
        };
        const serviceCpu = await readProcCpuMs(service!.pid);
        const result = await runJsonChild<ClientSyncResult>(childJs, [JSON.stringify(job)], CHILD_TIMEOUT_MS, profArgs);
        return { ...result, serviceCpuMs: (await readProcCpuMs(service!.pid)) - serviceCpu };
      };
      const expect = (result: ClientSyncResult, rows: number, what: string) => {
        if (result.rows !== rows) throw new Error(`${what}: synced ${result.rows} rows, expected ${rows}`);
        return result;
      };

      // Warm-up: the first stream of each user fills the service's op page cache.
      const cold5k = await rawInitialSync(service.url, await ctx.token('u5k'), 'warm-5k');
      const cold100k = await rawInitialSync(service.url, await ctx.token('u100k'), 'warm-100k');
      const raw100k: number[] = [];
      for (let i = 0; i < 3; i++)
        raw100k.push((await rawInitialSync(service.url, await ctx.token('u100k'), `raw-${i}`)).ms);
      out.add(
        metric('initial_sync_100k_raw_stream_ms', 'ms', raw100k, {
          note: `service share: raw HTTP stream to first checkpoint_complete, no client db (${(cold100k.bytes / 1e6).toFixed(1)} MB, ${cold100k.dataLines} data lines); cold first stream ${cold100k.ms.toFixed(0)} ms`,
        }),
      );

      // 5k, Ferry's client.
      const ferry5k: number[] = [];
      const ferry5kCpu: number[] = [];
      for (let i = 0; i < RUNS_5K; i++) {
        const result = expect(await sync('ferry', 'u5k'), 5_000, 'ferry 5k');
        ferry5k.push(result.ms);
        ferry5kCpu.push(result.cpuMs);
      }
      out.add(
        metric('initial_sync_5k_ms', 'ms', ferry5k, {
          target: { op: '<', value: 250 },
          note: `${RUNS_5K} cold client processes; rows ${opBytes.toFixed(0)} B; 100 buckets; client CPU median ${median(ferry5kCpu).toFixed(0)} ms; cold raw stream ${cold5k.ms.toFixed(0)} ms`,
        }),
      );

      // 100k: Ferry and PowerSync alternate; service peak RSS per Ferry run.
      const ferry100k: number[] = [];
      const ferryCpu: number[] = [];
      const ferryServiceCpu: number[] = [];
      const powersyncCpu: number[] = [];
      const ferryRss: number[] = [];
      const serviceRss: number[] = [];
      const powersync100k: number[] = [];
      const powersyncRss: number[] = [];
      const serviceRssPowersync: number[] = [];
      let powersyncError: unknown = null;
      for (let i = 0; i < RUNS_100K; i++) {
        const ferry = await measurePhasePeak(service.pid, () => sync('ferry', 'u100k'));
        expect(ferry.result, 100_000, 'ferry 100k');
        ferry100k.push(ferry.result.ms);
        ferryCpu.push(ferry.result.cpuMs);
        ferryServiceCpu.push(ferry.result.serviceCpuMs);
        ferryRss.push(ferry.result.hwmMb);
        serviceRss.push(ferry.peakMb);
        ctx.log(
          `initial_sync: ferry 100k run ${i + 1}: ${ferry.result.ms.toFixed(0)} ms, client peak ${ferry.result.hwmMb.toFixed(0)} MiB, service peak ${ferry.peakMb.toFixed(0)} MiB`,
        );
        if (powersyncError === null) {
          try {
            const ps = await measurePhasePeak(service.pid, () => sync('powersync', 'u100k'));
            expect(ps.result, 100_000, 'powersync 100k');
            powersync100k.push(ps.result.ms);
            powersyncCpu.push(ps.result.cpuMs);
            powersyncRss.push(ps.result.hwmMb);
            serviceRssPowersync.push(ps.peakMb);
            ctx.log(
              `initial_sync: powersync 100k run ${i + 1}: ${ps.result.ms.toFixed(0)} ms, client peak ${ps.result.hwmMb.toFixed(0)} MiB`,
            );
          } catch (error) {
            powersyncError = error;
            ctx.log(`initial_sync: @powersync/node failed: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
      }
      out.add(
        metric('initial_sync_100k_ms', 'ms', ferry100k, {
          target: { op: '<', value: 1500 },
          note: `${RUNS_100K} cold client processes, alternating with @powersync/node; client CPU ${fmt(ferryCpu)} ms, service CPU ${fmt(ferryServiceCpu)} ms (10 ms ticks)`,
        }),
      );
      if (powersyncError !== null) out.fail('initial_sync_100k_powersync_client_ms', powersyncError);
      else {
        const ratio = median(ferry100k) / median(powersync100k);
        out.add(
          metric('initial_sync_100k_powersync_client_ms', 'ms', powersync100k, {
            note: `@powersync/node 1.1.0 over HTTP, same service/data; Ferry/PowerSync = ${ratio.toFixed(2)}; client CPU ${fmt(powersyncCpu)} ms; client peak RSS ${fmt(powersyncRss)} MiB`,
          }),
        );
      }
      out.add(
        metric('client_rss_100k_mb', 'MiB', ferryRss, {
          note: 'VmHWM of the Ferry client process (node + better-sqlite3) per 100k sync',
        }),
      );
      out.add(
        metric('service_rss_100k_mb', 'MiB', serviceRss, {
          target: { op: '<', value: 300 },
          note: `service VmHWM during each Ferry 100k sync (reset at start)${serviceRssPowersync.length ? `; during PowerSync syncs ${fmt(serviceRssPowersync)}` : ''}`,
        }),
      );
    } finally {
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};
