/**
 * What every scenario gets from the run: the one embedded Postgres, a fresh
 * database per scenario (dropped afterwards), the service as a child
 * process, dev tokens, and a place for temp files.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { signDevToken, type DevKey } from '../dev-keys.js';
import { quoteIdent, type RunningPostgres } from '../embedded-postgres.js';
import type { MetricResult } from './harness.js';
import { startServiceProcess, type StartedService } from './service-process.js';

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /**
   * A connection for setup and measurements (closed by `drop`). It commits
   * with `synchronous_commit = on`, as production does: the run's server
   * defaults to off (unsafeFast), and then a commit's WAL reaches logical
   * replication only when the WAL writer flushes (every wal_writer_delay =
   * 200 ms), which would add up to 200 ms to every measured change.
   */
  readonly client: pg.Client;
}

export interface BenchContext {
  readonly repoRoot: string;
  /** The run's temp folder (removed at the end). */
  readonly tmpDir: string;
  /** `packages/cli/dist/bench` (where the child entry points are). */
  readonly distDir: string;
  readonly pg: RunningPostgres;
  readonly devKey: DevKey;
  /** Prints a progress line (stderr, so stdout keeps the table). */
  log(message: string): void;
  /** Signs a dev token for `userId` valid for an hour. */
  token(userId: string): Promise<string>;
  /** A fresh empty database and a connection to it. */
  createDatabase(label: string): Promise<BenchDatabase>;
  /** Closes the connection, drops the database's replication slots and the database. */
  dropDatabase(db: BenchDatabase): Promise<void>;
  /** A fresh temp folder under the run's. */
  tempDir(label: string): Promise<string>;
  /** Services started through this context (their log tails are printed when a scenario fails). */
  readonly services: StartedService[];
  /** Starts the service on `db` with `rulesYaml`; resolves once `/ready`. */
  startService(
    db: BenchDatabase,
    rulesYaml: string,
    options?: { readyTimeoutMs?: number; writeRulesYaml?: string },
  ): Promise<StartedService>;
}

/** A metric a scenario promises, so a failure can be reported against it. */
export interface MetricSpec {
  name: string;
  unit: string;
  target?: MetricResult['target'];
}

export interface ScenarioOutput {
  add(result: MetricResult): void;
  /** Marks a metric failed (when part of a scenario fails but the rest goes on). */
  fail(name: string, error: unknown): void;
}

export interface Scenario {
  /** Name for `--only`. */
  name: string;
  summary: string;
  /** Every metric it reports, in table order. */
  metrics: MetricSpec[];
  /** True if it needs Postgres and the service. */
  needsPostgres: boolean;
  run(ctx: BenchContext, out: ScenarioOutput): Promise<void>;
}

let databaseCounter = 0;

export function createBenchContext(options: {
  repoRoot: string;
  tmpDir: string;
  pg: RunningPostgres;
  devKey: DevKey;
}): BenchContext {
  const { repoRoot, tmpDir, devKey } = options;
  const distDir = path.join(repoRoot, 'packages/cli/dist/bench');
  const binJs = path.join(repoRoot, 'packages/cli/dist/bin.js');
  const ctx: BenchContext = {
    repoRoot,
    tmpDir,
    distDir,
    pg: options.pg,
    devKey,
    services: [],
    log: (message) => process.stderr.write(`[bench] ${message}\n`),
    token: (userId) => signDevToken(devKey, { userId, expiresInSeconds: 3600 }),
    async createDatabase(label) {
      const name = `bench_${label}_${process.pid}_${databaseCounter++}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
      await options.pg.createDatabase(name);
      const url = options.pg.url(name);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query('SET synchronous_commit = on');
      return { name, url, client };
    },
    async dropDatabase(db) {
      await db.client.end().catch(() => {});
      const admin = new pg.Client({ connectionString: options.pg.url('postgres') });
      await admin.connect();
      try {
        await admin.query(
          `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`,
          [db.name],
        );
        await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(db.name)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
    async tempDir(label) {
      return mkdtemp(path.join(tmpDir, `${label}-`));
    },
    async startService(db, rulesYaml, serviceOptions = {}) {
      const dir = await ctx.tempDir('service');
      const service = await startServiceProcess({
        binJs,
        dir,
        databaseUrl: db.url,
        rulesYaml,
        devKey,
        slotName: `${db.name}_slot`.slice(0, 63),
        ...(serviceOptions.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: serviceOptions.readyTimeoutMs }),
        ...(serviceOptions.writeRulesYaml === undefined ? {} : { writeRulesYaml: serviceOptions.writeRulesYaml }),
      });
      ctx.services.push(service);
      return service;
    },
  };
  return ctx;
}

/** Removes a folder, ignoring errors (cleanup paths). */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}
