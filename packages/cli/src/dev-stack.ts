import { FerryService, parseConfig, type FerryConfig, type Logger } from '@ferry/service';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DEV_AUDIENCE, loadOrCreateDevKey, signDevToken, type DevKey } from './dev-keys.js';
import { startEmbeddedPostgres, type RunningPostgres } from './embedded-postgres.js';
import { runMigrations } from './migrate.js';

export interface DevStackOptions {
  /** Project folder with `migrations/`, `sync-rules.yaml` and (optional) `write-rules.yaml`. */
  projectDir: string;
  /** Where Ferry keeps dev state (Postgres data, dev key). Default `<projectDir>/.ferry`. */
  stateDir?: string;
  /** HTTP port of the service (0 = any free port). */
  port?: number;
  /** Port of the embedded Postgres (0 = any free port). */
  pgPort?: number;
  /** Database name in the embedded Postgres. */
  database?: string;
  logger?: Logger;
  logLevel?: FerryConfig['logLevel'];
}

/** A running development stack: embedded Postgres + migrations + the service. */
export interface DevStack {
  readonly postgres: RunningPostgres;
  readonly service: FerryService;
  readonly databaseUrl: string;
  readonly devKey: DevKey;
  /** Signs a dev token for a user. */
  token(userId: string, expiresInSeconds?: number): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts what `ferry dev` runs: an embedded PostgreSQL 18 with
 * `wal_level=logical` (data under `.ferry/pg`), the project's migrations,
 * and the service trusting a generated Ed25519 dev key, with the write API
 * on when the project has `write-rules.yaml`.
 */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const projectDir = path.resolve(options.projectDir);
  const stateDir = path.resolve(options.stateDir ?? path.join(projectDir, '.ferry'));
  const rulesFile = path.join(projectDir, 'sync-rules.yaml');
  if (!existsSync(rulesFile)) {
    throw new Error(
      `no sync rules at ${rulesFile}: ferry dev expects sync-rules.yaml (and migrations/*.sql) in the project folder`,
    );
  }
  const writeRulesFile = path.join(projectDir, 'write-rules.yaml');
  const writeRules = existsSync(writeRulesFile) ? { write_rules: { path: writeRulesFile } } : {};
  const database = options.database ?? 'ferry';
  const postgres = await startEmbeddedPostgres({ dataDir: path.join(stateDir, 'pg'), port: options.pgPort ?? 0 });
  try {
    await postgres.createDatabase(database);
    const databaseUrl = postgres.url(database);
    const migrations = await runMigrations(databaseUrl, path.join(projectDir, 'migrations'));
    const devKey = await loadOrCreateDevKey(path.join(stateDir, 'dev-key.json'));
    const configText = JSON.stringify({
      replication: { connection: databaseUrl },
      sync_rules: { content: await readFile(rulesFile, 'utf8') },
      ...writeRules,
      client_auth: { audience: [DEV_AUDIENCE], jwks: { keys: [devKey.publicJwk] } },
      api: { host: '127.0.0.1', port: options.port ?? 8080 },
      log_level: options.logLevel ?? 'info',
    });
    const config = parseConfig(configText, path.join(stateDir, 'ferry.dev.yaml'));
    const service = await FerryService.start(
      { ...config, syncRules: { path: rulesFile, content: null } },
      options.logger ? { logger: options.logger } : {},
    );
    service.logger.info({ applied: migrations.applied, skipped: migrations.skipped.length }, 'migrations');
    return {
      postgres,
      service,
      databaseUrl,
      devKey,
      token: (userId, expiresInSeconds) =>
        signDevToken(devKey, { userId, ...(expiresInSeconds ? { expiresInSeconds } : {}) }),
      async stop() {
        await service.stop();
        await postgres.stop();
      },
    };
  } catch (error) {
    await postgres.stop().catch(() => {});
    throw error;
  }
}
