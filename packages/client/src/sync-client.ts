import { FerryError, NdjsonDecoder, type BucketChecksum, type SyncLine, type SyncRequest } from '@ferry/protocol';
import type { BucketStore } from './bucket-store.js';
import { retryDelay, sleep, type RetryDelayOptions } from './backoff.js';
import { requireCredentials, type FerryConnector } from './connector.js';

import type { SqliteConnection } from './driver.js';
import type { FerryLogger } from './logger.js';
import type { ResolvedTable } from './schema.js';
import type { SyncStatusPatch } from './sync-status.js';

/** What the sync loop needs from its database. */
export interface SyncHost {
  readonly store: BucketStore;
  readonly logger: FerryLogger;
  /** Runs `fn` in one write transaction (serialized with every other write); commits when it resolves. */
  writeSync<T>(fn: (conn: SqliteConnection) => Promise<T>): Promise<T>;
  /** Reports tables changed by a committed apply. */
  notifyChanged(tables: ReadonlySet<string>): void;
  /** The schema's synced tables. */
  syncedTables(): readonly ResolvedTable[];
  clientId(): Promise<string>;
  setStatus(patch: SyncStatusPatch): void;
  /** Called after each applied checkpoint with the time recorded in the database. */
  checkpointApplied(at: Date): void;
}

export interface SyncOptions {
  /** `request.parameters()` for the sync rules. */
  params?: Record<string, unknown>;
  /** The fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Reconnect delays (default 250 ms … 30 s, jittered). */
  retryDelay?: RetryDelayOptions;
  /**
   * Stage received data (one write transaction) once this many bytes are
   * pending (default 4 MiB) …
   */
  maxPendingBytes?: number;
  /**
   * … or once the oldest pending data has waited this long (default
   * 1000 ms), and always before a checkpoint is applied. Staged data
   * survives a dropped connection: the next stream resumes after it.
   */
  maxPendingMs?: number;
}

/** Why a stream ended. */
type StreamEnd = 'ended' | 'reconnect';

interface TargetCheckpoint {
  lastOpId: string;
  buckets: Map<string, BucketChecksum>;
  /** The highest write checkpoint of this client the service has replicated past, if it said. */
  writeCheckpoint: string | null;
}

const DATA_PREFIX = '{"data":';

/**
 * The download loop: opens `POST /sync/stream`, stages what arrives,
 * applies complete checkpoints, and reconnects with backoff and fresh
 * credentials until stopped. One instance per `connect()`.
 */
export class SyncClient {
  private readonly host: SyncHost;
  private readonly connector: FerryConnector;
  private readonly options: SyncOptions;
  private readonly controller = new AbortController();
  private running: Promise<void> | null = null;
  private attempt = 0;
  private consecutiveMismatches = 0;

  constructor(host: SyncHost, connector: FerryConnector, options: SyncOptions = {}) {
    this.host = host;
    this.connector = connector;
    this.options = options;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.running ??= this.run();
  }

  /** Stops the loop and waits until it has (any open stream is cancelled). */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.running;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      let delay: number;
      try {
        this.host.setStatus({ connecting: true });
        const end = await this.streamOnce(signal);
        if (end === 'reconnect') {
          delay =
            this.consecutiveMismatches > 1 ? retryDelay(this.consecutiveMismatches - 2, this.options.retryDelay) : 0;
        } else {
          delay = retryDelay(0, this.options.retryDelay);
        }
      } catch (error) {
        if (signal.aborted) break;
        this.report(error);
        delay = retryDelay(this.attempt++, this.options.retryDelay);
      }
      this.host.setStatus({
        connected: false,
        connecting: !signal.aborted,
        downloading: false,
        downloadProgress: null,
      });
      await sleep(delay, signal);
    }
    this.host.setStatus({ connected: false, connecting: false, downloading: false, downloadProgress: null });
  }

  private report(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.host.logger.warn('ferry sync: stream failed', {
      error: err.message,
      ...(FerryError.is(err) ? { code: err.code } : {}),
    });
    this.host.setStatus({ downloadError: err });
  }

  private async streamOnce(outer: AbortSignal): Promise<StreamEnd> {
    const credentials = await requireCredentials(this.connector);

    const buckets = await this.host.writeSync((conn) => this.host.store.positions(conn));
    const body: SyncRequest = {
      buckets,
      include_checksum: true,
      raw_data: true,
      client_id: await this.host.clientId(),
      parameters: this.options.params ?? {},
    };
    const stream = new AbortController();
    const abortStream = (): void => stream.abort();
    outer.addEventListener('abort', abortStream);
    try {
      // stop() may have come while credentials or positions were read: open no stream then.
      if (outer.aborted) return 'ended';
      const doFetch = this.options.fetch ?? globalThis.fetch;
      const response = await doFetch(`${credentials.endpoint.replace(/\/+$/, '')}/sync/stream`, {
        method: 'POST',
        headers: {
          authorization: `Token ${credentials.token}`,
          'content-type': 'application/json',
          accept: 'application/x-ndjson',
        },
        body: JSON.stringify(body),
        signal: stream.signal,
      });
      if (response.status === 401) {
        this.connector.invalidateCredentials?.();
        const detail = await response.text().catch(() => '');
        throw new FerryError('FERRY_C1002', `the sync service rejected the credentials (401)`, {
          details: { body: detail },
        });
      }
      if (!response.ok || response.body === null) {
        const detail = await response.text().catch(() => '');
        throw new FerryError('FERRY_C1008', `the sync service answered HTTP ${response.status}`, {
          details: { status: response.status, body: detail },
        });
      }
      this.host.setStatus({ connected: true, connecting: false });
      return await this.readStream(response.body, stream);
    } finally {
      outer.removeEventListener('abort', abortStream);
      stream.abort();
    }
  }

  private async readStream(body: ReadableStream<Uint8Array>, stream: AbortController): Promise<StreamEnd> {
    const reader = body.getReader();
    const cancel = (): void => {
      reader.cancel().catch(() => {});
    };
    stream.signal.addEventListener('abort', cancel);
    const session = new StreamSession(this, this.host, {
      maxPendingBytes: this.options.maxPendingBytes ?? 4 * 1024 * 1024,
      maxPendingMs: this.options.maxPendingMs ?? 1000,
    });
    const decoder = new NdjsonDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const lines: string[] = [];
        decoder.push(value, (line) => lines.push(line));
        const end = await session.handleLines(lines);
        if (end !== undefined) return end;
        if (stream.signal.aborted) {
          await session.flush();
          return 'ended';
        }
        // Stage in large batches (few commits), but not too late: progress shows, and a dropped connection keeps it.
        await session.flushIfDue();
      }
      const rest = decoder.end();
      const end = await session.handleLines(rest === '' ? [] : [rest]);
      if (end !== undefined) return end;
      await session.flush();
      return 'ended';
    } catch (error) {
      // Keep what arrived intact before the failure: it is valid and saves a re-download.
      await session.flush().catch(() => {});
      throw error;
    } finally {
      stream.signal.removeEventListener('abort', cancel);
      reader.releaseLock();
    }
  }

  /** @internal */
  checkpointApplied(): void {
    this.attempt = 0;
    this.consecutiveMismatches = 0;
  }

  /** @internal */
  checksumMismatch(): void {
    this.consecutiveMismatches++;
  }

  /** @internal */
  tokenExpired(): void {
    this.connector.invalidateCredentials?.();
  }
}

/** The state of one open stream: the checkpoint being downloaded and data not yet staged. */
class StreamSession {
  private readonly client: SyncClient;
  private readonly host: SyncHost;
  private readonly maxPendingBytes: number;
  private readonly maxPendingMs: number;
  private target: TargetCheckpoint | null = null;
  private pending: string[] = [];
  private pendingBytes = 0;
  /** When the oldest pending line arrived (Date.now()), or null when nothing is pending. */
  private pendingSince: number | null = null;
  /** Ops staged towards the target checkpoint (since the last applied one), and ops it needs. */
  private progress = { downloadedOps: 0, totalOps: 0 };
  /** Ops in the pending (received, not yet staged) lines. */
  private pendingOps = 0;

  constructor(client: SyncClient, host: SyncHost, limits: { maxPendingBytes: number; maxPendingMs: number }) {
    this.client = client;
    this.host = host;
    this.maxPendingBytes = limits.maxPendingBytes;
    this.maxPendingMs = limits.maxPendingMs;
  }

  /** Handles lines in order; returns how the stream must end, or undefined to keep reading. */
  async handleLines(lines: readonly string[]): Promise<StreamEnd | undefined> {
    for (const line of lines) {
      if (line.startsWith(DATA_PREFIX)) {
        this.addData(line);
        if (this.pendingBytes >= this.maxPendingBytes) await this.flush();
        continue;
      }
      let message: SyncLine;
      try {
        message = JSON.parse(line) as SyncLine;
      } catch (cause) {
        throw new FerryError('FERRY_C1003', 'the sync stream sent a line that is not JSON', {
          cause,
          details: { line: line.slice(0, 200) },
        });
      }
      if (typeof message !== 'object' || message === null) continue;
      if ('data' in message) {
        this.addData(line);
        continue;
      }
      // checkpoint_complete stages what is pending in the transaction that applies the checkpoint.
      if (!('checkpoint_complete' in message)) await this.flush();
      const end = await this.handleControl(message);
      if (end !== undefined) return end;
    }
    return undefined;
  }

  private addData(line: string): void {
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.pendingSince ??= Date.now();
    if (this.target !== null) {
      this.pendingOps += countOps(line);
      this.reportProgress();
    }
  }

  /** Reports staged plus pending ops as the download progress. */
  private reportProgress(): void {
    const { downloadedOps, totalOps } = this.progress;
    this.host.setStatus({
      downloadProgress: { downloadedOps: Math.min(totalOps, downloadedOps + this.pendingOps), totalOps },
    });
  }

  /** Takes the pending data lines (the caller stages them). */
  private takePending(): string[] {
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingSince = null;
    this.pendingOps = 0;
    return lines;
  }

  /** Stages pending data when enough bytes are pending or the oldest has waited long enough. */
  async flushIfDue(): Promise<void> {
    if (this.pendingSince === null) return;
    if (this.pendingBytes >= this.maxPendingBytes || Date.now() - this.pendingSince >= this.maxPendingMs) {
      await this.flush();
    }
  }

  /** Stages pending data lines in one transaction. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const lines = this.takePending();
    const staged = await this.host.writeSync((conn) => this.host.store.stageData(conn, lines));
    let ops = 0;
    for (const { ops: n } of staged.values()) ops += n;
    if (this.target !== null) {
      this.progress = {
        downloadedOps: Math.min(this.progress.totalOps, this.progress.downloadedOps + ops),
        totalOps: this.progress.totalOps,
      };
      this.reportProgress();
    }
  }

  private async handleControl(message: SyncLine): Promise<StreamEnd | undefined> {
    if ('checkpoint' in message) {
      const { checkpoint } = message;
      this.target = {
        lastOpId: checkpoint.last_op_id,
        buckets: new Map(checkpoint.buckets.map((b) => [b.bucket, b])),
        writeCheckpoint: checkpoint.write_checkpoint ?? null,
      };
      await this.updateBuckets({ keep: [...this.target.buckets.keys()] });
      return undefined;
    }
    if ('checkpoint_diff' in message) {
      const diff = message.checkpoint_diff;
      if (this.target === null) throw new FerryError('FERRY_C1003', 'checkpoint_diff before any checkpoint');
      for (const bucket of diff.updated_buckets) this.target.buckets.set(bucket.bucket, bucket);
      for (const name of diff.removed_buckets) this.target.buckets.delete(name);
      this.target.lastOpId = diff.last_op_id;
      if (diff.write_checkpoint != null) this.target.writeCheckpoint = diff.write_checkpoint;
      await this.updateBuckets({ remove: diff.removed_buckets });
      return undefined;
    }
    if ('checkpoint_complete' in message) {
      return this.complete(message.checkpoint_complete.last_op_id);
    }
    if ('partial_checkpoint_complete' in message) {
      // Priorities are not applied separately yet: the full checkpoint_complete applies everything atomically.
      this.host.logger.debug('ferry sync: partial checkpoint complete', { ...message.partial_checkpoint_complete });
      return undefined;
    }
    if ('token_expires_in' in message) {
      if (message.token_expires_in <= 0) {
        this.host.logger.info('ferry sync: token expired, reconnecting with fresh credentials');
        this.client.tokenExpired();
        return 'reconnect';
      }
      return undefined;
    }
    return undefined; // unknown line kinds are ignored, as the protocol allows
  }

  private async updateBuckets(which: { keep: readonly string[] } | { remove: readonly string[] }): Promise<void> {
    const target = this.target!;
    const names = [...target.buckets.keys()];
    const buckets = [...target.buckets.values()];
    this.progress = await this.host.writeSync(async (conn) => {
      const removed = await this.host.store.deleteBuckets(conn, which);
      if (removed.length > 0) this.host.logger.debug('ferry sync: buckets removed', { buckets: removed });
      await this.host.store.beginCheckpoint(conn);
      await this.host.store.ensureBuckets(conn, names);
      return this.host.store.progress(conn, buckets);
    });
    this.host.setStatus({ downloading: true });
    this.reportProgress();
  }

  private async complete(lastOpId: string): Promise<StreamEnd | undefined> {
    const target = this.target;
    if (target === null) throw new FerryError('FERRY_C1003', 'checkpoint_complete before any checkpoint');
    if (lastOpId !== target.lastOpId) {
      throw new FerryError(
        'FERRY_C1003',
        `checkpoint_complete for ${lastOpId}, but the checkpoint is ${target.lastOpId}`,
      );
    }
    const buckets = [...target.buckets.values()];
    const tables = this.host.syncedTables();
    const now = new Date();
    const lines = this.takePending();
    const outcome = await this.host.writeSync(async (conn) => {
      if (lines.length > 0) await this.host.store.stageData(conn, lines);
      const mismatches = await this.host.store.validate(conn, buckets);
      if (mismatches.length > 0) {
        await this.host.store.resetBuckets(
          conn,
          mismatches.map((m) => m.bucket),
        );
        return { mismatches, changed: new Set<string>() };
      }
      const changed = await this.host.store.applyDirty(conn, tables, new Map(buckets.map((b) => [b.bucket, b.count])), {
        writeCheckpoint: target.writeCheckpoint,
      });
      await conn.execute(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES ('last_synced_at', ?)`, [
        now.toISOString(),
      ]);
      return { mismatches, changed };
    });
    if (outcome.mismatches.length > 0) {
      const error = new FerryError(
        'FERRY_C1004',
        `checksum mismatch in ${outcome.mismatches.length} bucket(s) at checkpoint ${lastOpId}; nothing applied, re-downloading`,
        { details: { checkpoint: lastOpId, mismatches: outcome.mismatches } },
      );
      this.host.logger.warn(error.message, { code: error.code, mismatches: outcome.mismatches });
      this.host.setStatus({ downloadError: error, downloading: false, downloadProgress: null });
      this.client.checksumMismatch();
      return 'reconnect';
    }
    this.host.notifyChanged(outcome.changed);
    this.client.checkpointApplied();
    this.host.checkpointApplied(now);
    this.progress = { downloadedOps: 0, totalOps: 0 };
    this.host.setStatus({
      downloading: false,
      downloadProgress: null,
      lastSyncedAt: now,
      hasSynced: true,
      downloadError: undefined,
    });
    // After a first sync the row index may be missing (see BucketStore.beginCheckpoint): build it now,
    // once the data is visible, rather than inside the apply or at the next checkpoint.
    await this.host.store.buildRowIndex((fn) => this.host.writeSync(fn));
    return undefined;
  }
}

// Without the opening quote: V8 finds this pattern several times faster.
const OP_KEY = 'op_id"';

/**
 * The number of ops in a `data` line, for progress only (staging counts
 * exactly): counts `op_id"`, the end of each op's `"op_id"` key. Quotes
 * inside raw row data are escaped, so row data never matches.
 */
export function countOps(line: string): number {
  let n = 0;
  for (let at = line.indexOf(OP_KEY); at >= 0; at = line.indexOf(OP_KEY, at + OP_KEY.length)) n++;
  return n;
}
