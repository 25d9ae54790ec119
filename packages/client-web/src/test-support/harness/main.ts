/**
 * The test harness page: imports @ferry/client-web the way an app does and
 * exposes `window.ferryHarness` (see harness-api.ts). Nothing is opened
 * until a test asks, so the page also shows what importing costs.
 */
import { column, ferryConnector, Schema, Table, type FerryDatabase, type SqliteParam } from '@ferry/client';
import { openFerryDatabase, SqliteError, WebWorkerDriver, type WebVfsChoice } from '@ferry/client-web';
import { FerryError } from '@ferry/protocol';
import type { AutostartSpec, HarnessApi, HarnessError, HarnessResult, OpenSpec, SchemaSpec } from '../harness-api.js';
import { decodeValue, encodeValue, type Encoded } from '../wire-values.js';

function describeError(error: unknown): HarnessError {
  const e = error as { name?: unknown; code?: unknown; errno?: unknown; message?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'unknown',
    code: typeof e?.code === 'string' ? e.code : null,
    errno: typeof e?.errno === 'number' ? e.errno : null,
    message: typeof e?.message === 'string' ? e.message : String(error),
    sqlite: SqliteError.is(error),
    ferry: FerryError.is(error),
  };
}

async function attempt<T>(run: () => Promise<T>): Promise<HarnessResult<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
}

const params = (values: Encoded[] = []): SqliteParam[] => values.map((v) => decodeValue(v) as SqliteParam);

function buildSchema(spec: SchemaSpec): Schema {
  const kinds = { text: column.text, integer: column.integer, real: column.real };
  const tables: Record<string, Table> = {};
  for (const [name, columns] of Object.entries(spec.tables)) {
    const defs = Object.fromEntries(Object.entries(columns).map(([c, type]) => [c, kinds[type]]));
    tables[name] = new Table(defs, {
      localOnly: spec.localOnly?.includes(name) ?? false,
      ...(spec.indexes?.[name] === undefined ? {} : { indexes: spec.indexes[name] }),
    });
  }
  return new Schema(tables);
}

/** Answers `open`, then dies on the next request with an uncaught error. */
const CRASHING_WORKER = `
onmessage = (event) => {
  const request = event.data;
  if (request.kind === 'open') {
    postMessage({ kind: 'open', requestId: request.requestId, ok: true, result: { vfs: 'idb', sqliteVersion: '0' } });
    return;
  }
  setTimeout(() => { throw new Error('boom: the worker crashed'); }, 10);
};`;

const drivers = new Map<number, WebWorkerDriver>();
let nextDriver = 1;
let db: FerryDatabase | null = null;
interface WatchEntry {
  results: Encoded[];
  times: number[];
  /** Called with each new result's index. */
  listeners: Set<(index: number) => void>;
}

const watches = new Map<number, WatchEntry>();
let nextWatch = 1;

/** Epoch milliseconds with sub-millisecond resolution, comparable across pages of one machine. */
const epochNow = (): number => performance.timeOrigin + performance.now();

async function openDatabase(name: string, vfs: WebVfsChoice, spec: SchemaSpec, options: OpenSpec = {}) {
  const opened = await openFerryDatabase({
    name,
    schema: buildSchema(spec),
    vfs,
    ...(options.multiTab === undefined ? {} : { multiTab: options.multiTab }),
    ...(options.exclusive === undefined ? {} : { exclusive: options.exclusive }),
  });
  db = opened;
  return opened;
}

async function connectDatabase(endpoint: string, token: string): Promise<void> {
  await current().connect(ferryConnector({ endpoint, fetchToken: async () => token }), {
    retryDelay: { initialMs: 100, maxMs: 1000 },
  });
}

function current(): FerryDatabase {
  if (db === null) throw new Error('no database is open (call open first)');
  return db;
}

function driver(id: number): WebWorkerDriver {
  const found = drivers.get(id);
  if (found === undefined) throw new Error(`no driver ${id}`);
  return found;
}

const harness: HarnessApi = {
  driverOpen: (name, vfs, exclusive) =>
    attempt(async () => {
      const opened = await WebWorkerDriver.open({ name, vfs, exclusive: exclusive ?? false });
      const id = nextDriver++;
      drivers.set(id, opened);
      return { id, vfs: opened.vfs, sqliteVersion: opened.sqliteVersion };
    }),
  driverOpenSpecial: (kind, vfs) =>
    attempt(async () => {
      const opened = await WebWorkerDriver.open({
        name: `special-${kind}-${Date.now()}.db`,
        vfs,
        createWorker: () => {
          if (kind === 'missing') return new Worker(new URL('/no-such-worker.js', location.href), { type: 'module' });
          if (kind === 'no-opfs')
            return new Worker(new URL('./no-opfs-worker.ts', import.meta.url), { type: 'module' });
          return new Worker(URL.createObjectURL(new Blob([CRASHING_WORKER], { type: 'text/javascript' })));
        },
      });
      const id = nextDriver++;
      drivers.set(id, opened);
      return { id, vfs: opened.vfs };
    }),
  driverExecute: (id, sql, values) =>
    attempt(async () => {
      const result = await driver(id).writer.execute(sql, params(values));
      return {
        rows: encodeValue(result.rows),
        rowsAffected: result.rowsAffected,
        insertId: encodeValue(result.insertId),
      };
    }),
  driverExecuteBatch: (id, sql, paramSets) =>
    attempt(() =>
      driver(id).writer.executeBatch(
        sql,
        paramSets.map((set) => params(set)),
      ),
    ),
  driverTimeQuery: (id, sql, values, times) =>
    attempt(async () => {
      const connection = driver(id).writer;
      const durations: number[] = [];
      let rows = 0;
      for (let i = 0; i < times; i++) {
        const start = performance.now();
        rows = (await connection.execute(sql, params(values))).rows.length;
        durations.push(performance.now() - start);
      }
      return { durations, rows };
    }),
  driverClose: (id) =>
    attempt(async () => {
      await driver(id).close();
      drivers.delete(id);
      return null;
    }),
  open: (name, vfs, spec, options) =>
    attempt(async () => {
      const opened = await openDatabase(name, vfs, spec, options);
      return { vfs: opened.vfs, multiTab: opened.multiTab };
    }),
  execute: (sql, values) =>
    attempt(async () => {
      const result = await current().execute(sql, params(values));
      return {
        rows: encodeValue(result.rows),
        rowsAffected: result.rowsAffected,
        insertId: encodeValue(result.insertId),
      };
    }),
  executeEach: (sql, paramSets, transaction) =>
    attempt(async () => {
      const database = current();
      if (transaction === true) {
        await database.writeTransaction(async (tx) => {
          for (const set of paramSets) await tx.execute(sql, params(set));
        });
      } else {
        for (const set of paramSets) await database.execute(sql, params(set));
      }
      return paramSets.length;
    }),
  timedExecute: (sql, values) =>
    attempt(async () => {
      const startedAt = epochNow();
      await current().execute(sql, params(values));
      return { startedAt, endedAt: epochNow() };
    }),
  getAll: (sql, values) => attempt(async () => encodeValue(await current().getAll(sql, params(values)))),
  connect: (endpoint, token) =>
    attempt(async () => {
      await connectDatabase(endpoint, token);
      return null;
    }),
  disconnect: () =>
    attempt(async () => {
      await current().disconnect();
      return null;
    }),
  waitForFirstSync: () =>
    attempt(async () => {
      const start = performance.now();
      await current().waitForFirstSync();
      return performance.now() - start;
    }),
  status: () => {
    const s = current().currentStatus;
    return {
      connected: s.connected,
      hasSynced: s.hasSynced,
      pendingCount: s.pendingCount,
      uploading: s.uploading,
      isSyncLeader: current().isSyncLeader,
      downloadError: s.downloadError?.message ?? null,
      uploadError: s.lastUploadError?.message ?? null,
    };
  },
  watch: (sql, values) => {
    const id = nextWatch++;
    const entry: WatchEntry = { results: [], times: [], listeners: new Set() };
    watches.set(id, entry);
    const record = (result: Encoded): void => {
      entry.times.push(epochNow());
      entry.results.push(result);
      for (const listener of entry.listeners) listener(entry.results.length - 1);
    };
    current().watch(sql, params(values), {
      onResult: (rows) => record(encodeValue(rows)),
      onError: (error) => record({ error: String(error) }),
    });
    return id;
  },
  watchResults: (id) => watches.get(id)?.results ?? [],
  watchTimes: (id) => watches.get(id)?.times ?? [],
  watchUntil: (id, expected, timeoutMs) =>
    attempt(
      () =>
        new Promise<number>((resolve, reject) => {
          const entry = watches.get(id);
          if (entry === undefined) throw new Error(`no watch ${id}`);
          const want = JSON.stringify(expected);
          const found = entry.results.findIndex((result) => JSON.stringify(result) === want);
          if (found >= 0) {
            resolve(entry.times[found]!);
            return;
          }
          const listener = (index: number): void => {
            if (JSON.stringify(entry.results[index]) !== want) return;
            entry.listeners.delete(listener);
            clearTimeout(timer);
            resolve(entry.times[index]!);
          };
          const timer = setTimeout(() => {
            entry.listeners.delete(listener);
            reject(new Error(`watch ${id} did not show ${want} within ${timeoutMs} ms`));
          }, timeoutMs);
          entry.listeners.add(listener);
        }),
    ),
  timeQuery: (sql, values, times) =>
    attempt(async () => {
      const database = current();
      const durations: number[] = [];
      let rows = 0;
      for (let i = 0; i < times; i++) {
        const start = performance.now();
        rows = (await database.getAll(sql, params(values))).length;
        durations.push(performance.now() - start);
      }
      return { durations, rows };
    }),
  timeQueries: (sql, paramSets) =>
    attempt(async () => {
      const database = current();
      const durations: number[] = [];
      const rows: number[] = [];
      for (const set of paramSets) {
        const bound = params(set);
        const start = performance.now();
        const result = await database.getAll(sql, bound);
        durations.push(performance.now() - start);
        rows.push(result.length);
      }
      return { durations, rows };
    }),
  close: () =>
    attempt(async () => {
      await db?.close();
      db = null;
      return null;
    }),
};

window.ferryHarness = harness;

/**
 * `#autostart=<json AutostartSpec>`: open, connect and wait for the first
 * sync right away, recording when each step finished (ms since the
 * navigation started), for the page-load-to-synced benchmark.
 */
function autostart(): void {
  const prefix = '#autostart=';
  if (!location.hash.startsWith(prefix)) return;
  const spec = JSON.parse(decodeURIComponent(location.hash.slice(prefix.length))) as AutostartSpec;
  window.ferryAutostart = { state: 'running' };
  void (async () => {
    try {
      await openDatabase(spec.name, spec.vfs, spec.schema);
      const openedAt = performance.now();
      await connectDatabase(spec.endpoint, spec.token);
      const connectedAt = performance.now();
      await current().waitForFirstSync();
      window.ferryAutostart = { state: 'done', openedAt, connectedAt, firstSyncAt: performance.now() };
    } catch (error) {
      window.ferryAutostart = { state: 'failed', error: describeError(error) };
    }
  })();
}

autostart();
window.ferryHarnessReady = true;
document.getElementById('state')!.textContent = 'ready';
