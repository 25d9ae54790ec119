/**
 * Child process entry: one initial sync by one client into a fresh database
 * file, timed from `connect()` to the first complete checkpoint
 * (`waitForFirstSync`). Prints one JSON line: `{ ms, rows, rssMb, hwmMb }`
 * (`hwmMb` = this process's peak RSS, i.e. the client's memory for the sync).
 *
 * Usage: node client-sync-child.js '<json ClientSyncJob>'
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openFerryDatabase } from '@ferry/client-node';
import { ferryItemsSchema } from './bench-data.js';

export interface ClientSyncJob {
  client: 'ferry' | 'powersync';
  url: string;
  token: string;
  /** Database file (must not exist yet). */
  dbPath: string;
}

export interface ClientSyncResult {
  ms: number;
  /** CPU time (user + system, all threads) of this process between connect() and the first sync, ms. */
  cpuMs: number;
  rows: number;
  rssMb: number;
  hwmMb: number;
}

const ITEM_COLUMNS = ['list_id', 'title', 'body', 'done', 'n', 'created_at'] as const;

async function memory(): Promise<{ rssMb: number; hwmMb: number }> {
  const status = await readFile('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

async function syncFerry(job: ClientSyncJob): Promise<{ ms: number; cpuMs: number; rows: number }> {
  const schema = ferryItemsSchema();
  const db = await openFerryDatabase({ path: job.dbPath, schema });
  try {
    const connector = { fetchCredentials: async () => ({ endpoint: job.url, token: job.token }) };
    const cpu = process.cpuUsage();
    const started = performance.now();
    await db.connect(connector);
    await db.waitForFirstSync();
    const ms = performance.now() - started;
    const cpuMs = cpuSince(cpu);
    const { count } = await db.get<{ count: number }>('SELECT count(*) AS count FROM items');
    await db.disconnect();
    return { ms, cpuMs, rows: Number(count) };
  } finally {
    await db.close();
  }
}

async function syncPowerSync(job: ClientSyncJob): Promise<{ ms: number; cpuMs: number; rows: number }> {
  // Loaded only here, so Ferry's runs never carry the PowerSync SDK in memory.
  const ps = await import('@powersync/node');
  const columns = Object.fromEntries(
    ITEM_COLUMNS.map((name) => [name, name === 'done' || name === 'n' ? ps.column.integer : ps.column.text]),
  );
  const schema = new ps.Schema({ items: new ps.Table(columns, { indexes: { by_list: ['list_id', 'title'] } }) });
  const db = new ps.PowerSyncDatabase({
    schema,
    database: { dbFilename: path.basename(job.dbPath), dbLocation: path.dirname(job.dbPath) },
  });
  try {
    await db.init();
    const connector = {
      fetchCredentials: async () => ({ endpoint: job.url, token: job.token }),
      uploadData: async () => {},
    };
    const cpu = process.cpuUsage();
    const started = performance.now();
    await db.connect(connector, { connectionMethod: ps.SyncStreamConnectionMethod.HTTP });
    await db.waitForFirstSync();
    const ms = performance.now() - started;
    const cpuMs = cpuSince(cpu);
    const row = await db.get<{ count: number }>('SELECT count(*) AS count FROM items');
    await db.disconnect();
    return { ms, cpuMs, rows: Number(row.count) };
  } finally {
    await db.close();
  }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as ClientSyncJob;
  const timing = job.client === 'powersync' ? await syncPowerSync(job) : await syncFerry(job);
  const mem = await memory();
  const result: ClientSyncResult = { ...timing, ...mem };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stdout.write(
      JSON.stringify({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) }) + '\n',
    );
    process.exit(1);
  },
);
