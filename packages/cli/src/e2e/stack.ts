/**
 * Shared support for the end-to-end tests of the read path: a real Ferry
 * service on 127.0.0.1 over a real Postgres database, real Ferry clients on
 * SQLite files, dev-key tokens, and a `fetch` wrapper that observes (never
 * alters) the sync traffic. Nothing here mocks a Ferry component.
 */
import type { FerryConnector, FerryDatabase, Schema, SqliteParam } from '@ferry/client';
import { openFerryDatabase } from '@ferry/client-node';
import { NdjsonDecoder, type SyncLine } from '@ferry/protocol';
import { FerryService, parseConfig, type FerryConfig } from '@ferry/service';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase } from '@ferry/test-utils';
import pg from 'pg';
import { loadOrCreateDevKey, signDevToken, type DevKey } from '../dev-keys.js';

/** The audience every e2e service accepts. */
export const TEST_AUDIENCE = 'ferry-test';

/** Polls `check` until it returns a value other than `undefined`/`false`, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string | (() => string) } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const message = typeof options.message === 'function' ? options.message() : options.message;
      throw new Error(
        `waitFor timed out${message ? `: ${message}` : ''}${lastError ? ` (last error: ${String(lastError)})` : ''}`,
      );
    }
    await sleep(options.intervalMs ?? 50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A temp directory removed by {@link Cleanup}. */
export async function tempDir(cleanup: Cleanup, prefix = 'ferry-e2e-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanup.add(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** LIFO cleanup actions; errors are collected, not thrown half-way. */
export class Cleanup {
  private readonly actions: (() => Promise<unknown> | unknown)[] = [];

  add(action: () => Promise<unknown> | unknown): void {
    this.actions.push(action);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.actions.length > 0) {
      const action = this.actions.pop()!;
      try {
        // One hanging step (e.g. stopping a server that already died) must not block the others.
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('cleanup step timed out after 30 s')), 30_000);
        });
        try {
          await Promise.race([Promise.resolve().then(action), timeout]);
        } finally {
          clearTimeout(timer);
        }
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }
}

/** Runs SQL on a short-lived connection. */
export async function pgQuery<R extends Record<string, unknown> = Record<string, unknown>>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as R[];
  } finally {
    await client.end();
  }
}

/** Drops replication slots of the database that nobody uses any more. */
export async function dropInactiveSlots(url: string): Promise<void> {
  await pgQuery(
    url,
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
      WHERE database = current_database() AND NOT active`,
  );
}

// ── tokens ─────────────────────────────────────────────────────────────────

/** A signing key the e2e services trust, and a way to mint tokens with it. */
export interface TestKeys {
  devKey: DevKey;
  /** The JWKS to put in `client_auth.jwks`. */
  jwks: { keys: unknown[] };
  token(
    userId: string,
    options?: { expiresInSeconds?: number; audience?: string; claims?: Record<string, unknown> },
  ): Promise<string>;
}

export async function createTestKeys(dir: string): Promise<TestKeys> {
  const devKey = await loadOrCreateDevKey(path.join(dir, 'dev-key.json'));
  return {
    devKey,
    jwks: { keys: [devKey.publicJwk] },
    token: (userId, options = {}) =>
      signDevToken(devKey, {
        userId,
        audience: options.audience ?? TEST_AUDIENCE,
        ...(options.expiresInSeconds === undefined ? {} : { expiresInSeconds: options.expiresInSeconds }),
        ...(options.claims === undefined ? {} : { claims: options.claims }),
      }),
  };
}

// ── the service ────────────────────────────────────────────────────────────

export interface ServiceSetup {
  databaseUrl: string;
  rules: string;
  /** Write rules YAML (`write_rules.content`); without it the write API answers 404. */
  writeRules?: string;
  keys: TestKeys;
  /** 0 = any free port. */
  port?: number;
  logLevel?: FerryConfig['logLevel'];
  /** Extra raw config keys merged at the top level. */
  extra?: Record<string, unknown>;
}

/** The raw (snake_case) config of an e2e service, as a user would write it in ferry.yaml. */
export function rawServiceConfig(
  setup: Omit<ServiceSetup, 'rules'> & { rules: string | { path: string } },
): Record<string, unknown> {
  return {
    replication: { connection: setup.databaseUrl, slot_name: slotNameFor(setup.databaseUrl) },
    sync_rules: typeof setup.rules === 'string' ? { content: setup.rules } : { path: setup.rules.path },
    ...(setup.writeRules === undefined ? {} : { write_rules: { content: setup.writeRules } }),
    client_auth: { audience: [TEST_AUDIENCE], jwks: setup.keys.jwks },
    api: { host: '127.0.0.1', port: setup.port ?? 0 },
    log_level: setup.logLevel ?? (process.env['FERRY_DEBUG'] ? 'debug' : 'warn'),
    ...setup.extra,
  };
}

/**
 * A replication slot name unique to the database. Slots are cluster-wide and
 * the config default (`ferry_slot`) is one fixed name, so test files sharing
 * the run's Postgres must each pick their own.
 */
export function slotNameFor(databaseUrl: string): string {
  const database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  return `ferry_${database.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

export function serviceConfig(setup: ServiceSetup): FerryConfig {
  return parseConfig(JSON.stringify(rawServiceConfig(setup)), 'ferry.e2e.yaml');
}

/** Starts a service and waits until its initial copy is done. */
export async function startService(setup: ServiceSetup): Promise<FerryService> {
  const service = await FerryService.start(serviceConfig(setup), { processMetrics: false });
  try {
    await service.waitUntilReady({ timeoutMs: 30_000 });
  } catch (error) {
    await service.stop();
    throw error;
  }
  return service;
}

/** What a service-backed e2e file works against. */
export interface ServiceFixture {
  /** Its own database on the run's Postgres. */
  url: string;
  /** A temp dir (client databases, keys), removed by the cleanup. */
  dir: string;
  keys: TestKeys;
  /** The running service; stopped by the cleanup (reassign it if a test restarts the service). */
  service: FerryService;
}

/**
 * The lifecycle every service-backed e2e file shares: a fresh database with
 * `source` run in it (then `beforeService`, e.g. rows the snapshot must copy),
 * a temp dir, dev keys and a ready service. Everything is undone by
 * `cleanup.run()`: the service stops, and the database's inactive
 * replication slots are dropped last, since all files share one Postgres.
 */
export async function startServiceFixture(
  cleanup: Cleanup,
  options: {
    database: string;
    source: string;
    rules: string;
    writeRules?: string;
    port?: number;
    beforeService?: (url: string) => Promise<void>;
    /** More `write_rules` keys (e.g. `hooks`, a file it writes into the fixture's dir). */
    writeRulesExtra?: (dir: string) => Promise<Record<string, unknown>>;
  },
): Promise<ServiceFixture> {
  const url = await createTestDatabase(options.database);
  cleanup.add(() => dropInactiveSlots(url));
  await pgQuery(url, options.source);
  await options.beforeService?.(url);
  const dir = await tempDir(cleanup);
  const keys = await createTestKeys(dir);
  const writeRulesExtra = await options.writeRulesExtra?.(dir);
  const fixture: ServiceFixture = {
    url,
    dir,
    keys,
    service: await startService({
      databaseUrl: url,
      rules: options.rules,
      keys,
      ...(options.writeRules === undefined ? {} : { writeRules: options.writeRules }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(writeRulesExtra === undefined
        ? {}
        : { extra: { write_rules: { content: options.writeRules, ...writeRulesExtra } } }),
    }),
  };
  cleanup.add(() => fixture.service.stop());
  return fixture;
}

// ── observing the sync traffic ─────────────────────────────────────────────

/** One `POST /sync/stream` seen by a {@link SyncTraffic}. */
export interface ObservedStream {
  /** The JSON request body. */
  request: { buckets?: { name: string; after: string }[]; [key: string]: unknown };
  status: number;
  /** Control lines received (checkpoint, checkpoint_diff, checkpoint_complete, ...), data lines excluded. */
  lines: SyncLine[];
  /** Ops received in `data` lines, per bucket. */
  opsByBucket: Map<string, number>;
  /** Total ops received in `data` lines. */
  dataOps: number;
  /** Whether the response body has ended. */
  ended: boolean;
}

/**
 * Wraps the real global `fetch` and tees every `/sync/stream` response so
 * tests can count connections and received ops. The client reads the
 * response exactly as the service sent it.
 */
export class SyncTraffic {
  readonly streams: ObservedStream[] = [];
  readonly fetch: typeof fetch;

  constructor(base: typeof fetch = globalThis.fetch) {
    this.fetch = async (input, init) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (!url.endsWith('/sync/stream')) return base(input, init);
      const request = typeof init?.body === 'string' ? (JSON.parse(init.body) as ObservedStream['request']) : {};
      const response = await base(input, init);
      const observed: ObservedStream = {
        request,
        status: response.status,
        lines: [],
        opsByBucket: new Map(),
        dataOps: 0,
        ended: false,
      };
      this.streams.push(observed);
      if (response.body === null) {
        observed.ended = true;
        return response;
      }
      const [forClient, forUs] = response.body.tee();
      void this.consume(forUs, observed);
      return new Response(forClient, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    };
  }

  private async consume(body: ReadableStream<Uint8Array>, observed: ObservedStream): Promise<void> {
    const decoder = new NdjsonDecoder();
    const onLine = (line: string): void => {
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      if (typeof message !== 'object' || message === null) return;
      if ('data' in message) {
        const data = (message as { data: { bucket: string; data: unknown[] } }).data;
        observed.dataOps += data.data.length;
        observed.opsByBucket.set(data.bucket, (observed.opsByBucket.get(data.bucket) ?? 0) + data.data.length);
      } else {
        observed.lines.push(message as SyncLine);
      }
    };
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        decoder.push(value, onLine);
      }
      const rest = decoder.end();
      if (rest !== '') onLine(rest);
    } catch {
      // the client aborted the stream: it ends here too
    } finally {
      observed.ended = true;
    }
  }

  /** Successful (2xx) stream requests. */
  get connections(): ObservedStream[] {
    return this.streams.filter((s) => s.status >= 200 && s.status < 300);
  }

  /** Data ops received over every stream from index `from` on. */
  dataOpsSince(from = 0): number {
    return this.streams.slice(from).reduce((sum, s) => sum + s.dataOps, 0);
  }
}

// ── clients ────────────────────────────────────────────────────────────────

export interface TestClient {
  db: FerryDatabase;
  traffic: SyncTraffic;
  path: string;
  /** Number of times the default connector was asked for credentials (0 with a custom one). */
  credentialRequests(): number;
  connect(): Promise<void>;
}

/**
 * Opens a Ferry client on a fresh SQLite file and (unless `connect: false`)
 * connects it to `endpoint` as `userId`. Closed by `cleanup`.
 */
export async function openClient(options: {
  cleanup: Cleanup;
  dir: string;
  schema: Schema;
  endpoint: () => string;
  token: () => Promise<string>;
  name?: string;
  connect?: boolean;
  path?: string;
  /** The connector to use (e.g. one that uploads); default: credentials only, no uploads. */
  connector?: FerryConnector;
  /** The client's wall clock (default Date.now). */
  now?: () => number;
}): Promise<TestClient> {
  const file =
    options.path ?? path.join(options.dir, `${options.name ?? 'client'}-${Math.random().toString(36).slice(2)}.db`);
  const traffic = new SyncTraffic();
  const db = await openFerryDatabase({
    path: file,
    schema: options.schema,
    fetch: traffic.fetch,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  options.cleanup.add(() => db.close());
  let requests = 0;
  const connector: FerryConnector = options.connector ?? {
    fetchCredentials: async () => {
      requests++;
      return { endpoint: options.endpoint(), token: await options.token() };
    },
  };
  const client: TestClient = {
    db,
    traffic,
    path: file,
    credentialRequests: () => requests,
    connect: () => db.connect(connector, { retryDelay: { initialMs: 100, maxMs: 1000 } }),
  };
  if (options.connect !== false) await client.connect();
  return client;
}

/** Waits until a query on the client returns rows equal (deep) to `expected`, or fails showing the last rows. */
export async function waitForRows(
  db: FerryDatabase,
  sql: string,
  expected: unknown[],
  options: { timeoutMs?: number; params?: SqliteParam[] } = {},
): Promise<void> {
  let last: unknown[] = [];
  const want = JSON.stringify(expected);
  await waitFor(
    async () => {
      last = await db.getAll(sql, options.params ?? []);
      return JSON.stringify(last) === want;
    },
    {
      timeoutMs: options.timeoutMs ?? 20_000,
      message: () => `${sql}\n  expected ${want}\n  last     ${JSON.stringify(last)}\n  status ${describeStatus(db)}`,
    },
  );
}

/** A one-line description of a client's sync status, for failure messages. */
export function describeStatus(db: FerryDatabase): string {
  const s = db.currentStatus;
  return JSON.stringify({
    connected: s.connected,
    connecting: s.connecting,
    hasSynced: s.hasSynced,
    downloading: s.downloading,
    downloadError: s.downloadError
      ? `${(s.downloadError as { code?: string }).code ?? ''} ${s.downloadError.message}`
      : null,
  });
}

// ── a service in a child process ───────────────────────────────────────────

/** The repository root (where `packages/` lives). */
export const REPO_ROOT = path.resolve(fileURLToPath(new URL('../../../../', import.meta.url)));

/** A `ferry` CLI process started from the TypeScript sources. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `ferry <args>` as `node --conditions=ferry-source --import tsx
 * packages/cli/src/bin.ts <args>` from the repository root.
 */
export function runCli(args: string[], options: { cleanup?: Cleanup; env?: Record<string, string> } = {}): CliProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=ferry-source', '--import', 'tsx', path.join(REPO_ROOT, 'packages/cli/src/bin.ts'), ...args],
    { cwd: REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const cli: CliProcess = { child, output: () => output, exited };
  // Safety net: never outlive the test worker, even when a cleanup step before ours hangs.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  options.cleanup?.add(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  return cli;
}

/** Waits until `GET <url>/health` answers 200. */
export async function waitForHealthy(baseUrl: string, cli?: CliProcess, timeoutMs = 45_000): Promise<void> {
  await waitFor(
    async () => {
      if (cli && (cli.child.exitCode !== null || cli.child.signalCode !== null)) {
        throw new Error(`the process exited (${cli.child.exitCode ?? cli.child.signalCode}):\n${cli.output()}`);
      }
      const response = await fetch(`${baseUrl}/health`).catch(() => null);
      return response?.status === 200;
    },
    { timeoutMs, message: () => `${baseUrl}/health never answered 200${cli ? `; output:\n${cli.output()}` : ''}` },
  );
}
