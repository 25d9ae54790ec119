import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** Kinds of sync stream lines, the `kind` label of `ferry_sync_lines_sent_total`. */
export const SYNC_LINE_KINDS = [
  'checkpoint',
  'checkpoint_diff',
  'data',
  'checkpoint_complete',
  'partial_checkpoint_complete',
  'token_expires_in',
] as const;
export type SyncLineKind = (typeof SYNC_LINE_KINDS)[number];

/**
 * The service's Prometheus metrics, on a Registry of their own (never
 * prom-client's global default), so several service instances in one process
 * (tests, benchmarks) do not share counters.
 *
 * The stream API feeds the client-side metrics itself; the replicator's
 * metrics (`replicationLagMs`, `opsStored`, `snapshotRowsCopied`) are fed by
 * whoever composes the service, from the replicator's events.
 */
export interface FerryMetrics {
  readonly registry: Registry;
  /** Sync streams currently open. */
  readonly connectedClients: Gauge;
  /** Bytes written to sync streams (response bodies). */
  readonly bytesSent: Counter;
  /** Sync stream lines written, by kind. */
  readonly syncLinesSent: Counter<'kind'>;
  /** Checkpoints (full or diff) completed towards clients. */
  readonly checkpointsSent: Counter;
  /** HTTP requests answered, by route and status. */
  readonly httpRequests: Counter<'route' | 'status'>;
  /** Milliseconds between a source commit and its checkpoint being published (replicator). */
  readonly replicationLagMs: Gauge;
  /** Ops appended to bucket storage (replicator). */
  readonly opsStored: Counter;
  /** Rows copied by the initial snapshot (replicator). */
  readonly snapshotRowsCopied: Counter;
  /** The Prometheus text exposition of every metric. */
  render(): Promise<{ contentType: string; body: string }>;
}

export interface MetricsOptions {
  /** Also collect Node process metrics (RSS, event loop lag, GC). Default true. */
  processMetrics?: boolean;
  /** Prefix of every metric name. Default `ferry_`. */
  prefix?: string;
}

/** Creates the metrics of one service instance on a fresh Registry. */
export function createMetrics(options: MetricsOptions = {}): FerryMetrics {
  const prefix = options.prefix ?? 'ferry_';
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix });
  const registers = [registry];

  const syncLinesSent = new Counter({
    name: `${prefix}sync_lines_sent_total`,
    help: 'Sync stream lines written, by kind',
    labelNames: ['kind'] as const,
    registers,
  });
  // Start every kind at zero so rates exist from the first scrape.
  for (const kind of SYNC_LINE_KINDS) syncLinesSent.inc({ kind }, 0);

  return {
    registry,
    connectedClients: new Gauge({ name: `${prefix}connected_clients`, help: 'Sync streams currently open', registers }),
    bytesSent: new Counter({ name: `${prefix}bytes_sent_total`, help: 'Bytes written to sync streams', registers }),
    syncLinesSent,
    checkpointsSent: new Counter({
      name: `${prefix}checkpoints_sent_total`,
      help: 'Checkpoints (full or diff) completed towards clients',
      registers,
    }),
    httpRequests: new Counter({
      name: `${prefix}http_requests_total`,
      help: 'HTTP requests answered, by route and status',
      labelNames: ['route', 'status'] as const,
      registers,
    }),
    replicationLagMs: new Gauge({
      name: `${prefix}replication_lag_ms`,
      help: 'Milliseconds between a source commit and its checkpoint being published',
      registers,
    }),
    opsStored: new Counter({ name: `${prefix}ops_stored_total`, help: 'Ops appended to bucket storage', registers }),
    snapshotRowsCopied: new Counter({
      name: `${prefix}snapshot_rows_copied_total`,
      help: 'Rows copied by the initial snapshot',
      registers,
    }),
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
