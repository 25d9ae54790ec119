import { FerryService, parseConfig, type FerryConfig, type Logger } from '@ferry/service';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DEV_AUDIENCE, loadOrCreateDevKey, signDevToken, type DevKey } from './dev-keys.js';
import { createDemoAuth } from './dev/demo-auth.js';
import { chainHandlers, type RequestHandler } from './dev/request-handler.js';
import type { WebApp, WebMode } from './dev/web-app.js';
import { startEmbeddedPostgres, type RunningPostgres } from './embedded-postgres.js';
import { runMigrations } from './migrate.js';

export interface DevStackOptions {
  /**
   * Project folder with `migrations/`, `sync-rules.yaml` and (optional) `write-rules.yaml`, with
   * its (optional) hooks module `write-hooks.ts`.
   */
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
  /**
   * Serve the project's web app (`<projectDir>/web`, when it has an
   * `index.html`) on the service's port: `vite` = Vite's dev server with live
   * reload, `static` = one production build into `<stateDir>/web`, served
   * from disk. Default: no web app.
   */
  web?: WebMode;
  /** Mount the demo sign-in backend (`GET /demo/users`, `POST /demo/token`). Default false. */
  demoAuth?: boolean;
}

/** A running development stack: embedded Postgres + migrations + the service. */
export interface DevStack {
  readonly postgres: RunningPostgres;
  readonly service: FerryService;
  readonly databaseUrl: string;
  readonly devKey: DevKey;
  /** The web app served on the service's URL, or null (none asked for, or the project has no `web/index.html`). */
  readonly web: WebApp | null;
  /** The web app's folder when served. */
  readonly webDir: string | null;
  /** Signs a dev token for a user. */
  token(userId: string, expiresInSeconds?: number): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts what `ferry dev` runs: an embedded PostgreSQL 18 with
 * `wal_level=logical` (data under `.ferry/pg`), the project's migrations,
 * and the service trusting a generated Ed25519 dev key, with the write API
 * on when the project has `write-rules.yaml` (and its hooks from
 * `write-hooks.ts` when that exists). Optionally the project's web
 * app and the demo sign-in backend are served on the service's own port
 * (through its fallback hook), so the app and its sync endpoint share one
 * origin.
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
  const writeHooksFile = path.join(projectDir, 'write-hooks.ts');
  const writeRules = existsSync(writeRulesFile)
    ? {
        write_rules: {
          path: writeRulesFile,
          ...(existsSync(writeHooksFile) ? { hooks: writeHooksFile } : {}),
        },
      }
    : {};
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
    const webDir = path.join(projectDir, 'web');
    const serveWeb = options.web !== undefined && existsSync(path.join(webDir, 'index.html'));
    // The extra handlers need the listening service (Vite's HMR attaches to
    // its server); requests arriving before they exist wait for them.
    let resolveExtra!: (handler: RequestHandler) => void;
    const extra = new Promise<RequestHandler>((resolve) => (resolveExtra = resolve));
    const mountExtra = serveWeb || options.demoAuth === true;
    const service = await FerryService.start(
      { ...config, syncRules: { path: rulesFile, content: null } },
      {
        ...(options.logger ? { logger: options.logger } : {}),
        ...(mountExtra ? { fallback: async (req, res) => (await extra)(req, res) } : {}),
      },
    );
    service.logger.info({ applied: migrations.applied, skipped: migrations.skipped.length }, 'migrations');
    const handlers: RequestHandler[] = [];
    const closers: (() => Promise<void>)[] = [];
    let web: WebApp | null = null;
    try {
      if (options.demoAuth === true) {
        const demoAuth = createDemoAuth({
          databaseUrl,
          sign: (userId, expiresInSeconds) => signDevToken(devKey, { userId, expiresInSeconds }),
          endpoint: () => service.url,
        });
        closers.push(() => demoAuth.close());
        handlers.push(demoAuth);
      }
      if (serveWeb) {
        // Loaded on demand: only a served web app needs Vite.
        const { startWebApp } = await import('./dev/web-app.js');
        web = await startWebApp({
          webDir,
          mode: options.web!,
          outDir: path.join(stateDir, 'web'),
          httpServer: service.httpServer,
          logLevel: viteLogLevel(options.logLevel ?? 'info'),
        });
        closers.push(() => web!.close());
        handlers.push(web.handle);
      }
    } catch (error) {
      for (const close of closers.reverse()) await close().catch(() => {});
      await service.stop();
      throw error;
    }
    resolveExtra(chainHandlers(...handlers));
    let stopped = false;
    return {
      postgres,
      service,
      databaseUrl,
      devKey,
      web,
      webDir: web === null ? null : webDir,
      token: (userId, expiresInSeconds) =>
        signDevToken(devKey, { userId, ...(expiresInSeconds ? { expiresInSeconds } : {}) }),
      async stop() {
        if (stopped) return;
        stopped = true;
        for (const close of closers.reverse()) {
          await close().catch((error: unknown) => service.logger.warn({ err: error }, 'error stopping the web app'));
        }
        await service.stop();
        await postgres.stop();
      },
    };
  } catch (error) {
    await postgres.stop().catch(() => {});
    throw error;
  }
}

/** Vite's log level for the service's: Vite has no debug/trace levels, and `info` shows its reloads. */
function viteLogLevel(level: FerryConfig['logLevel']): 'info' | 'warn' | 'error' | 'silent' {
  if (level === 'silent') return 'silent';
  if (level === 'error' || level === 'fatal') return 'error';
  if (level === 'warn') return 'warn';
  return 'info';
}
