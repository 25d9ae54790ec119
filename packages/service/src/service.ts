import { FerryError } from '@ferry/protocol';
import { compileSyncRules, type CompiledSyncRules } from '@ferry/rules';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createAuthenticator } from './auth/index.js';
import type { FerryConfig } from './config/index.js';
import { createHttpServer, type FerryHttpServer, type HttpServerDeps } from './http/index.js';
import { createLogger, createMetrics, type FerryMetrics, type Logger } from './metrics/index.js';
import { Replicator } from './replication/index.js';
import { PostgresBucketStorage } from './storage/index.js';
import {
  checkWriteHooks,
  compileWriteRules,
  createWriteMetrics,
  loadWriteHooks,
  WriteApi,
  WriteCheckpoints,
  type WriteHooks,
  type WriteRules,
} from './write/index.js';

export interface FerryServiceOptions {
  /** Logger; default a pino logger at `config.logLevel` on stdout. */
  logger?: Logger;
  /**
   * Run the replicator in this process (default true). Several processes may
   * all say true: one wins the advisory lock and replicates, the others wait
   * and take over within a second if it dies. Say false for API-only
   * processes.
   */
  replicate?: boolean;
  /** Metrics registry options. */
  processMetrics?: boolean;
  /**
   * Serves requests no API route matched, on the API's port (see
   * `HttpServerDeps.fallback`); `ferry dev` serves the web app this way.
   */
  fallback?: HttpServerDeps['fallback'];
}

/**
 * The Ferry service: bucket storage, the replicator and the HTTP API, wired
 * from a normalized config. One lifecycle: `start()` resolves once the API
 * listens (replication continues in the background), `stop()` shuts down
 * in reverse order.
 */
export class FerryService {
  readonly config: FerryConfig;
  readonly rules: CompiledSyncRules;
  readonly storage: PostgresBucketStorage;
  readonly replicator: Replicator | null;
  readonly metrics: FerryMetrics;
  readonly logger: Logger;
  private readonly http: FerryHttpServer;
  private readonly writeCheckpoints: WriteCheckpoints;
  /** The write API, when `write_rules` are configured. */
  readonly writeApi: WriteApi | null;
  private replicatorRun: Promise<void> | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private compacting: Promise<void> | null = null;
  private address: { host: string; port: number; url: string } | null = null;
  private stopped = false;

  private constructor(parts: {
    config: FerryConfig;
    rules: CompiledSyncRules;
    storage: PostgresBucketStorage;
    replicator: Replicator | null;
    metrics: FerryMetrics;
    logger: Logger;
    http: FerryHttpServer;
    writeCheckpoints: WriteCheckpoints;
    writeApi: WriteApi | null;
  }) {
    this.config = parts.config;
    this.rules = parts.rules;
    this.storage = parts.storage;
    this.replicator = parts.replicator;
    this.metrics = parts.metrics;
    this.logger = parts.logger;
    this.http = parts.http;
    this.writeCheckpoints = parts.writeCheckpoints;
    this.writeApi = parts.writeApi;
  }

  /** Compiles the rules, migrates storage, starts replication and listens. */
  static async start(config: FerryConfig, options: FerryServiceOptions = {}): Promise<FerryService> {
    const logger = options.logger ?? createLogger(config.logLevel);
    const rules = await loadRules(config);
    const writeRules = await loadWriteRules(config);
    const writeHooks = writeRules === null ? null : await loadCheckedWriteHooks(config, writeRules);
    const metrics = createMetrics({ processMetrics: options.processMetrics ?? true });
    const storage = new PostgresBucketStorage({
      connectionString: config.storage.connection,
      schema: config.storage.schema,
      onListenerError: (error) => logger.warn({ err: error }, 'checkpoint listener lost its connection; reconnecting'),
    });
    await storage.migrate();

    const replicator =
      options.replicate === false
        ? null
        : new Replicator({
            sourceConnectionString: config.replication.connection,
            storage,
            rules,
            ...(config.replication.slotName ? { slotName: config.replication.slotName } : {}),
            ...(config.replication.publication ? { publicationName: config.replication.publication } : {}),
          });
    if (replicator) bindReplicator(replicator, metrics, logger);

    // Binds the write rules to the live source schema (FERRY_S1202 on a mismatch) before serving anything.
    let writeApi: WriteApi | null = null;
    if (writeRules !== null) {
      try {
        writeApi = await WriteApi.open({
          rules: writeRules,
          connectionString: config.replication.connection,
          schema: config.storage.schema,
          logger,
          metrics: createWriteMetrics(metrics.registry),
          hooks: writeHooks,
          maxClockSkewMs: config.writeRules!.maxClockSkewMs,
        });
      } catch (error) {
        await storage.close();
        throw error;
      }
    }
    const authenticator = createAuthenticator(config.clientAuth, { logger });
    const writeCheckpoints = new WriteCheckpoints({
      sourceConnectionString: config.replication.connection,
      storage,
    });
    const http = createHttpServer({
      storage,
      rules,
      authenticator,
      api: config.api,
      metrics,
      logger,
      readiness: async () => (await storage.getLatestCheckpoint()) !== null,
      writeCheckpoints,
      ...(writeApi === null ? {} : { write: writeApi, maxWriteBytes: config.writeRules!.maxRequestBytes }),
      ...(options.fallback === undefined ? {} : { fallback: options.fallback }),
    });
    const service = new FerryService({
      config,
      rules,
      storage,
      replicator,
      metrics,
      logger,
      http,
      writeCheckpoints,
      writeApi,
    });
    try {
      if (replicator) {
        service.replicatorRun = replicator.run();
        service.scheduleCompaction();
      }
      service.address = await http.listen();
    } catch (error) {
      await service.stop();
      throw error;
    }
    logger.info({ url: service.address.url, replicate: replicator !== null }, 'ferry service listening');
    return service;
  }

  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:8080`. */
  get url(): string {
    if (!this.address) throw new Error('the service is not listening');
    return this.address.url;
  }

  get port(): number {
    if (!this.address) throw new Error('the service is not listening');
    return this.address.port;
  }

  /** The API's node:http server, e.g. to attach a WebSocket upgrade handler on the same port. */
  get httpServer(): Server {
    return this.http.server;
  }

  get connectedClients(): number {
    return this.http.connectedClients;
  }

  /** Resolves once the initial copy is done and a first checkpoint is published. */
  async waitUntilReady(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    while ((await this.storage.getLatestCheckpoint()) === null) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (Date.now() > deadline) throw new Error('timed out waiting for the initial copy to complete');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Compacts bucket op logs now (superseded ops become MOVE, dead prefixes
   * CLEAR; checksums never change). Runs only where this process replicates.
   */
  async compact(): Promise<void> {
    if (this.compacting) return this.compacting;
    this.compacting = (async () => {
      try {
        const result = await this.storage.compact();
        if (result.moved > 0 || result.cleared > 0) this.logger.info(result, 'compacted bucket storage');
        if (this.writeApi !== null && this.config.writeRules !== null) {
          const pruned = await this.writeApi.pruneIdempotencyKeys(this.config.writeRules.idempotencyRetentionHours);
          if (pruned > 0) this.logger.info({ pruned }, 'forgot idempotency keys past their retention');
          const tombstones = await this.writeApi.pruneTombstones(this.config.writeRules.idempotencyRetentionHours);
          if (tombstones > 0) this.logger.info({ tombstones }, 'forgot delete tombstones past the retention');
        }
      } catch (error) {
        this.logger.warn({ err: error }, 'compaction failed; it will run again');
      } finally {
        this.compacting = null;
      }
    })();
    return this.compacting;
  }

  private scheduleCompaction(): void {
    const seconds = this.config.storage.compactIntervalSeconds;
    if (seconds <= 0) return;
    this.compactTimer = setInterval(() => {
      if (this.replicator?.state === 'streaming') void this.compact();
    }, seconds * 1000);
    this.compactTimer.unref();
  }

  /** Stops the API, then replication, then storage. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.compactTimer) clearInterval(this.compactTimer);
    await this.compacting;
    await this.http.close().catch((error: unknown) => this.logger.warn({ err: error }, 'error closing HTTP server'));
    if (this.replicator) {
      await this.replicator.stop();
      await this.replicatorRun?.catch((error: unknown) => this.logger.error({ err: error }, 'replicator failed'));
    }
    await this.writeCheckpoints.close();
    await this.writeApi?.close();
    await this.storage.close();
    this.logger.info('ferry service stopped');
  }
}

async function loadRules(config: FerryConfig): Promise<CompiledSyncRules> {
  if (config.syncRules.content !== null) {
    return compileSyncRules(config.syncRules.content, { file: config.file ?? 'ferry.yaml (sync_rules.content)' });
  }
  const file = config.syncRules.path!;
  const text = await readFile(file, 'utf8');
  return compileSyncRules(text, { file });
}

/** Compiles the configured write rules, or null when `write_rules` is not set. */
async function loadWriteRules(config: FerryConfig): Promise<WriteRules | null> {
  const source = config.writeRules;
  if (source === null) return null;
  if (source.content !== null) {
    // Positions are within the inline text, so say so in the file name.
    return compileWriteRules(source.content, { file: `${config.file ?? 'ferry.yaml'} (write_rules.content)` });
  }
  const file = source.path!;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new FerryError('FERRY_S1201', `${file}: cannot read the write rules file: ${(cause as Error).message}`, {
      cause,
    });
  }
  return compileWriteRules(text, { file });
}

/**
 * Loads the configured write hooks module (null without one) and checks it
 * against the rules: every merge function they name exists, every validator
 * is for a table of the rules (FERRY_S1203 otherwise).
 */
async function loadCheckedWriteHooks(config: FerryConfig, rules: WriteRules): Promise<WriteHooks | null> {
  const file = config.writeRules?.hooks ?? null;
  const hooks = file === null ? null : await loadWriteHooks(file);
  checkWriteHooks(rules, hooks, file);
  return hooks;
}

function bindReplicator(replicator: Replicator, metrics: FerryMetrics, logger: Logger): void {
  const copied = new Map<string, number>();
  replicator.on('state', (state) => logger.info({ state }, 'replicator state'));
  replicator.on('opsStored', ({ count }) => metrics.opsStored.inc(count));
  replicator.on('checkpoint', ({ lagMs }) => {
    if (lagMs !== null) metrics.replicationLagMs.set(lagMs);
  });
  replicator.on('snapshotProgress', (progress) => {
    const before = copied.get(progress.table) ?? 0;
    if (progress.rowsCopied > before) metrics.snapshotRowsCopied.inc(progress.rowsCopied - before);
    copied.set(progress.table, progress.rowsCopied);
    logger.info(progress, progress.done ? 'initial copy of table done' : 'initial copy progress');
  });
  replicator.on('evaluationError', (event) => logger.warn(event, 'sync rules could not evaluate a row; it is skipped'));
  replicator.on('replicationError', ({ error, phase, retryInMs }) =>
    logger.error({ err: error, phase, retryInMs }, 'replication failed; retrying'),
  );
}
