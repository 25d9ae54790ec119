/**
 * Local writes: what a write to a synced table costs on the client, upload
 * queue included (the queue trigger, stamping the ops with transaction id,
 * client id and HLC, and the commit). No Postgres and no service: a Ferry
 * client database on a temp file with the demo's `tasks` table (10
 * columns), never connected, so every write stays queued.
 *
 * - `local_write_p50_ms`: one-row `writeTransaction` (one INSERT), p50 of
 *   2,000 after 300 warm-up writes (p95 in the note).
 * - `local_insert_one_tx_rows_per_s`: 10,000 INSERTs in one
 *   `writeTransaction`; median of 5 rounds (after a warm-up round), each on
 *   a fresh database.
 * - `local_tx_per_s`: 10,000 one-row `writeTransaction`s back to back;
 *   median of 3 rounds, each on a fresh database.
 *
 * As a floor, the same one-row transaction on a bare better-sqlite3
 * connection (same table, WAL, synchronous=NORMAL, no triggers, no queue)
 * is measured interleaved with the first metric.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { FerryDatabase } from '@ferry/client';
import { BetterSqlite3Driver, openFerryDatabase } from '@ferry/client-node';
import { tasksSchema } from '../demo/schema.js';
import type { BenchContext, MetricSpec, Scenario } from './bench-context.js';
import { metric, percentile } from './harness.js';

const SINGLE_WARMUP = 300;
const SINGLE_RUNS = 2_000;
const ONE_TX_ROWS = 10_000;
const ONE_TX_ROUNDS = 5;
const TX_COUNT = 10_000;
const TX_ROUNDS = 3;

const INSERT_TASK = `INSERT INTO tasks
  (id, workspace_id, title, done, position, estimate, tags, assignee_id, created_at, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

const METRICS: MetricSpec[] = [
  { name: 'local_write_p50_ms', unit: 'ms', target: { op: '<', value: 0.3 } },
  { name: 'local_insert_one_tx_rows_per_s', unit: 'rows/s', target: { op: '>', value: 100_000 } },
  { name: 'local_tx_per_s', unit: 'tx/s', target: { op: '>', value: 5_000 } },
  { name: 'local_write_raw_sqlite_p50_ms', unit: 'ms' },
];

/** A task row like the demo writes (~200 bytes), unique by `n` within a database. */
function taskParams(n: number): (string | number)[] {
  const created = new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString();
  return [
    `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
    `workspace-${n % 10}`,
    `Task ${n}: write the quarterly report`,
    n % 3 === 0 ? 1 : 0,
    n,
    `${(n % 8) + 1}h`,
    '["ops","q3"]',
    `user-${n % 25}`,
    created,
    created,
  ];
}

function rate(count: number, ms: number): number {
  return count / (ms / 1000);
}

async function withDatabase<T>(ctx: BenchContext, label: string, fn: (db: FerryDatabase) => Promise<T>): Promise<T> {
  const dir = await ctx.tempDir(label);
  const db = await openFerryDatabase({ path: path.join(dir, 'client.db'), schema: tasksSchema });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function queued(db: FerryDatabase): Promise<number> {
  const row = await db.get<{ n: number }>('SELECT count(*) AS n FROM ferry_crud');
  return row.n;
}

/**
 * The table as Ferry creates it, minus Ferry: a plain table on a bare
 * better-sqlite3 connection configured as the driver configures its writer
 * (WAL, synchronous=NORMAL), used directly (prepared statements, no queue).
 */
function openRawFloor(file: string): BetterSqlite3Driver {
  const driver = new BetterSqlite3Driver({ path: file });
  const raw = driver.writer.db;
  raw.exec(`CREATE TABLE tasks (id TEXT PRIMARY KEY NOT NULL, workspace_id TEXT, title TEXT, done INTEGER,
    position INTEGER, estimate TEXT, tags TEXT, assignee_id TEXT, created_at TEXT, updated_at TEXT)`);
  raw.exec('CREATE INDEX by_workspace ON tasks (workspace_id, position)');
  return driver;
}

async function singleWrites(ctx: BenchContext): Promise<{ times: number[]; rawTimes: number[] }> {
  const rawDir = await ctx.tempDir('local-write-raw');
  const rawDriver = openRawFloor(path.join(rawDir, 'raw.db'));
  const raw = rawDriver.writer.db;
  try {
    const begin = raw.prepare('BEGIN IMMEDIATE');
    const insert = raw.prepare(INSERT_TASK);
    const commit = raw.prepare('COMMIT');
    return await withDatabase(ctx, 'local-write-single', async (db) => {
      const times: number[] = [];
      const rawTimes: number[] = [];
      for (let i = 0; i < SINGLE_WARMUP + SINGLE_RUNS; i++) {
        const params = taskParams(i);
        const started = performance.now();
        await db.writeTransaction((tx) => tx.execute(INSERT_TASK, params));
        const ms = performance.now() - started;
        const rawStarted = performance.now();
        begin.run();
        insert.run(...params);
        commit.run();
        const rawMs = performance.now() - rawStarted;
        if (i >= SINGLE_WARMUP) {
          times.push(ms);
          rawTimes.push(rawMs);
        }
      }
      const n = await queued(db);
      if (n !== SINGLE_WARMUP + SINGLE_RUNS)
        throw new Error(`${n} ops queued, expected ${SINGLE_WARMUP + SINGLE_RUNS}`);
      return { times, rawTimes };
    });
  } finally {
    await rawDriver.close();
  }
}

/** ms for ONE_TX_ROWS inserts in one writeTransaction, on a fresh database. */
async function oneTransactionRound(ctx: BenchContext): Promise<number> {
  return withDatabase(ctx, 'local-write-one-tx', async (db) => {
    const started = performance.now();
    await db.writeTransaction(async (tx) => {
      for (let i = 0; i < ONE_TX_ROWS; i++) await tx.execute(INSERT_TASK, taskParams(i));
    });
    const ms = performance.now() - started;
    const n = await queued(db);
    if (n !== ONE_TX_ROWS) throw new Error(`${n} ops queued, expected ${ONE_TX_ROWS}`);
    return ms;
  });
}

/** ms for TX_COUNT one-row writeTransactions back to back, on a fresh database. */
async function manyTransactionsRound(ctx: BenchContext): Promise<number> {
  return withDatabase(ctx, 'local-write-many-tx', async (db) => {
    const started = performance.now();
    for (let i = 0; i < TX_COUNT; i++) await db.writeTransaction((tx) => tx.execute(INSERT_TASK, taskParams(i)));
    const ms = performance.now() - started;
    const n = await queued(db);
    if (n !== TX_COUNT) throw new Error(`${n} ops queued, expected ${TX_COUNT}`);
    return ms;
  });
}

export const localWriteScenario: Scenario = {
  name: 'local_write',
  summary: 'local writes with the upload queue: one-row tx p50, 10,000 rows in one tx, 10,000 one-row tx',
  needsPostgres: false,
  metrics: METRICS,
  async run(ctx, out) {
    try {
      const { times, rawTimes } = await singleWrites(ctx);
      out.add(
        metric('local_write_p50_ms', 'ms', times, {
          value: percentile(times, 50),
          target: { op: '<', value: 0.3 },
          note: `p95 ${percentile(times, 95).toFixed(3)} ms; ${SINGLE_RUNS} one-row INSERT writeTransactions after ${SINGLE_WARMUP} warm-up`,
        }),
      );
      out.add(
        metric('local_write_raw_sqlite_p50_ms', 'ms', rawTimes, {
          value: percentile(rawTimes, 50),
          note: `floor: BEGIN/INSERT/COMMIT on bare better-sqlite3 (no queue), interleaved; p95 ${percentile(rawTimes, 95).toFixed(3)} ms`,
        }),
      );
    } catch (error) {
      out.fail('local_write_p50_ms', error);
      out.fail('local_write_raw_sqlite_p50_ms', error);
    }

    try {
      await oneTransactionRound(ctx); // warm-up
      const rates: number[] = [];
      for (let round = 0; round < ONE_TX_ROUNDS; round++) {
        const ms = await oneTransactionRound(ctx);
        rates.push(rate(ONE_TX_ROWS, ms));
        ctx.log(`local_write: ${ONE_TX_ROWS} rows in one transaction in ${ms.toFixed(1)} ms`);
      }
      out.add(
        metric('local_insert_one_tx_rows_per_s', 'rows/s', rates, {
          target: { op: '>', value: 100_000 },
          note: `${ONE_TX_ROWS} INSERTs in one writeTransaction; median of ${ONE_TX_ROUNDS} rounds, fresh database each`,
        }),
      );
    } catch (error) {
      out.fail('local_insert_one_tx_rows_per_s', error);
    }

    try {
      const rates: number[] = [];
      for (let round = 0; round < TX_ROUNDS; round++) {
        const ms = await manyTransactionsRound(ctx);
        rates.push(rate(TX_COUNT, ms));
        ctx.log(`local_write: ${TX_COUNT} one-row transactions in ${ms.toFixed(1)} ms`);
      }
      out.add(
        metric('local_tx_per_s', 'tx/s', rates, {
          target: { op: '>', value: 5_000 },
          note: `${TX_COUNT} one-row writeTransactions back to back; median of ${TX_ROUNDS} rounds, fresh database each`,
        }),
      );
    } catch (error) {
      out.fail('local_tx_per_s', error);
    }
  },
};
