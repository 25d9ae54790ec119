import {
  DEFAULT_BUCKET_PRIORITY,
  encodeLine,
  FerryError,
  formatOpId,
  type BucketChecksum,
  type OpId,
  type SyncRequest,
} from '@ferry/protocol';
import type { BucketDescription, BucketQuerier, CompiledSyncRules } from '@ferry/rules';
import type { Logger } from 'pino';
import type { AuthenticatedClient } from '../auth/authenticator.js';
import type { FerryMetrics } from '../metrics/metrics.js';
import type { BucketState, BucketStorageReader, CheckpointUpdate } from '../storage/types.js';
import { isStreamStopped, LineWriter, type LineSink } from './line-writer.js';
import type { SharedOpReader } from './op-cache.js';

export interface SyncSessionDeps {
  storage: BucketStorageReader;
  rules: CompiledSyncRules;
  opReader: SharedOpReader;
  maxBuckets: number;
  /** Interval of `token_expires_in` keepalive lines, ms. */
  keepaliveMs: number;
  metrics?: FerryMetrics | null;
  logger?: Logger | null;
  /** Clock (ms since epoch), for tests. */
  now?: () => number;
}

/**
 * Past this many merged entries a stuck client's pending change set is
 * dropped to "unknown" (one state re-read later) instead of growing.
 */
const MAX_MERGED_CHANGES = 10_000;

const EMPTY_STATE: BucketState = Object.freeze({ checksum: 0, count: 0, lastOpId: 0n });

/** Merges coalesced updates: later bucket states win; unknown (null) is contagious. */
function mergeUpdates(a: CheckpointUpdate, b: CheckpointUpdate): CheckpointUpdate {
  let changedBuckets: Map<string, BucketState> | null = null;
  if (
    a.changedBuckets !== null &&
    b.changedBuckets !== null &&
    a.changedBuckets.size + b.changedBuckets.size <= MAX_MERGED_CHANGES
  ) {
    changedBuckets = new Map(a.changedBuckets);
    for (const [bucket, state] of b.changedBuckets) changedBuckets.set(bucket, state);
  }
  let changedLookups: Set<string> | null = null;
  if (
    a.changedLookups !== null &&
    b.changedLookups !== null &&
    a.changedLookups.size + b.changedLookups.size <= MAX_MERGED_CHANGES
  ) {
    changedLookups = new Set([...a.changedLookups, ...b.changedLookups]);
  }
  return { checkpoint: b.checkpoint, previous: a.previous, changedBuckets, changedLookups };
}

function sameState(a: BucketState | undefined, b: BucketState): boolean {
  return a !== undefined && a.checksum === b.checksum && a.count === b.count && a.lastOpId === b.lastOpId;
}

/**
 * One client's sync stream (PowerSync protocol). Created by
 * {@link SyncSession.open}, which resolves the client's buckets before any
 * byte is written (so failures still become HTTP errors), then
 * {@link SyncSession.run} streams: a full checkpoint with the data the
 * client's `after` positions lack, then a `checkpoint_diff` for every later
 * checkpoint that changes its buckets, keepalives carrying the real seconds
 * left on the token, and `token_expires_in: 0` when it expires.
 *
 * Per update the session reads storage only where it cannot share: the
 * update's change set gives bucket states; data pages come from the shared
 * {@link SharedOpReader}; parameter rows are re-read only when one of the
 * client's lookups changed.
 */
export class SyncSession {
  readonly client: AuthenticatedClient;
  private readonly deps: SyncSessionDeps;
  private readonly querier: BucketQuerier;
  private readonly lookups: ReadonlySet<string>;
  private readonly now: () => number;
  private buckets: Map<string, BucketDescription>;
  /** The client's position per bucket: the last op id it holds. */
  private readonly positions = new Map<string, OpId>();
  /** Bucket states last announced to the client. */
  private readonly announced = new Map<string, BucketState>();
  private lastCheckpoint: OpId | null = null;
  /** The client id of the request (write checkpoints are scoped to user + client). */
  private readonly clientId: string | null;
  /** Highest covered write checkpoint of this user + client known to the session. */
  private coveredWriteCheckpoint: bigint | null = null;
  /** The write checkpoint last sent in a checkpoint line. */
  private sentWriteCheckpoint: bigint | null = null;
  private pending: CheckpointUpdate | null = null;
  private wake: (() => void) | null = null;
  private unsubscribe: (() => void) | null;
  private readonly stopController = new AbortController();

  private constructor(
    deps: SyncSessionDeps,
    client: AuthenticatedClient,
    request: SyncRequest,
    querier: BucketQuerier,
  ) {
    this.deps = deps;
    this.client = client;
    this.querier = querier;
    this.lookups = new Set(querier.lookups);
    this.now = deps.now ?? Date.now;
    this.buckets = new Map();
    this.clientId = request.client_id ?? null;
    for (const bucket of request.buckets) this.positions.set(bucket.name, BigInt(bucket.after));
    // Subscribe before the first read so no checkpoint published in between is missed.
    this.unsubscribe = deps.storage.subscribe((update) => this.onUpdate(update));
  }

  /**
   * Plans the client's sync: its buckets from the rules and the stored
   * parameter rows. Throws FerryError (e.g. FERRY_S4007 too many buckets);
   * nothing has been written then.
   */
  static async open(deps: SyncSessionDeps, client: AuthenticatedClient, request: SyncRequest): Promise<SyncSession> {
    const querier = deps.rules.querierFor({
      userId: client.userId,
      tokenPayload: client.payload,
      clientParameters: (request.parameters ?? {}) as Record<string, unknown>,
    });
    const session = new SyncSession(deps, client, request, querier);
    try {
      session.buckets = await session.resolveBuckets();
    } catch (error) {
      session.stop();
      throw error;
    }
    return session;
  }

  /** Number of buckets the client currently holds. */
  get bucketCount(): number {
    return this.buckets.size;
  }

  /** Stops the session: pending work ends at its next step and the storage subscription is released. */
  stop(): void {
    this.stopController.abort();
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.wake?.();
  }

  get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  /**
   * Streams to `sink` until the client disconnects (call {@link stop}), the
   * token expires, or an error occurs. Resolves with why it ended; ends
   * the sink itself only on token expiry (`'expired'`). Storage errors reject.
   */
  async run(sink: LineSink & { end(): unknown }): Promise<'stopped' | 'expired'> {
    const signal = this.stopController.signal;
    const writer = new LineWriter(sink, signal, this.deps.metrics ?? null);
    let expired = false;
    const expire = () => {
      if (this.stopped) return;
      expired = true;
      this.stop();
      writer.writeNow('token_expires_in', encodeLine({ token_expires_in: 0 }));
      sink.end();
    };
    const keepalive = () => {
      const msLeft = this.client.expiresAt.getTime() - this.now();
      if (msLeft <= 0) expire();
      else if (!writer.congested) {
        // Whole seconds left, and never 0 before the token has really expired.
        writer.writeNow('token_expires_in', encodeLine({ token_expires_in: Math.max(1, Math.floor(msLeft / 1000)) }));
      }
    };
    const interval = setInterval(keepalive, this.deps.keepaliveMs);
    const msLeft = this.client.expiresAt.getTime() - this.now();
    // setTimeout holds at most ~24.8 days; the keepalive catches anything later.
    const expiryTimer = msLeft < 2 ** 31 - 1 ? setTimeout(expire, Math.max(0, msLeft)) : null;
    try {
      keepalive();
      if (this.stopped) return expired ? 'expired' : 'stopped';
      await this.sendInitial(writer);
      while (!this.stopped) {
        const update = await this.nextUpdate();
        if (update === null) break;
        await this.applyUpdate(writer, update);
      }
    } catch (error) {
      if (!isStreamStopped(error)) throw error;
    } finally {
      clearInterval(interval);
      if (expiryTimer !== null) clearTimeout(expiryTimer);
      this.stop();
    }
    return expired ? 'expired' : 'stopped';
  }

  // ── internals ─────────────────────────────────────────────────────────────

  private onUpdate(update: CheckpointUpdate): void {
    if (update.writeCheckpoints !== undefined && this.clientId !== null) {
      for (const wc of update.writeCheckpoints) {
        if (wc.userId === this.client.userId && wc.clientId === this.clientId) this.noteWriteCheckpoint(wc.id);
      }
    }
    this.pending = this.pending === null ? update : mergeUpdates(this.pending, update);
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async nextUpdate(): Promise<CheckpointUpdate | null> {
    while (this.pending === null && !this.stopped) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const update = this.pending;
    this.pending = null;
    return this.stopped ? null : update;
  }

  private noteWriteCheckpoint(id: bigint | null): void {
    if (id !== null && (this.coveredWriteCheckpoint === null || id > this.coveredWriteCheckpoint))
      this.coveredWriteCheckpoint = id;
  }

  /** The write checkpoint to put on the next checkpoint line, if it is new to the client. */
  private unsentWriteCheckpoint(): bigint | null {
    const covered = this.coveredWriteCheckpoint;
    if (covered === null || (this.sentWriteCheckpoint !== null && covered <= this.sentWriteCheckpoint)) return null;
    return covered;
  }

  private async resolveBuckets(): Promise<Map<string, BucketDescription>> {
    const buckets = new Map<string, BucketDescription>();
    for (const bucket of this.querier.staticBuckets) buckets.set(bucket.bucket, bucket);
    if (this.querier.lookups.length > 0) {
      const rows = await this.deps.storage.getParameterRows(this.querier.lookups);
      for (const bucket of this.querier.resolve(rows)) buckets.set(bucket.bucket, bucket);
    }
    if (buckets.size > this.deps.maxBuckets) {
      throw new FerryError(
        'FERRY_S4007',
        `the sync rules grant this client ${buckets.size} buckets, more than max_buckets_per_client (${this.deps.maxBuckets})`,
        { details: { buckets: buckets.size, limit: this.deps.maxBuckets } },
      );
    }
    return buckets;
  }

  private async sendInitial(writer: LineWriter): Promise<void> {
    // Wait for replication's first checkpoint (initial copy done).
    let waited = false;
    while ((await this.deps.storage.getLatestCheckpoint()) === null) {
      waited = true;
      if ((await this.nextUpdate()) === null) return;
    }
    if (this.stopped) return;
    // Parameter rows read before the first checkpoint may be incomplete.
    if (waited) this.buckets = await this.resolveBuckets();
    if (this.clientId !== null && this.deps.storage.getWriteCheckpoint !== undefined) {
      this.noteWriteCheckpoint(await this.deps.storage.getWriteCheckpoint(this.client.userId, this.clientId));
    }
    const { checkpoint, states } = await this.deps.storage.getCheckpointState([...this.buckets.keys()]);
    const writeCheckpoint = this.unsentWriteCheckpoint();
    if (writeCheckpoint !== null) this.sentWriteCheckpoint = writeCheckpoint;
    const entries = [...this.buckets.values()].map((description) => ({
      description,
      state: states.get(description.bucket) ?? EMPTY_STATE,
    }));
    for (const { description, state } of entries) this.announced.set(description.bucket, state);
    this.lastCheckpoint = checkpoint;
    await writer.write(
      'checkpoint',
      encodeLine({
        checkpoint: {
          last_op_id: formatOpId(checkpoint),
          ...(writeCheckpoint !== null ? { write_checkpoint: writeCheckpoint.toString() } : {}),
          buckets: entries.map((e) => this.checksumOf(e.description, e.state)),
        },
      }),
    );
    await this.sendData(writer, entries, checkpoint);
  }

  private async applyUpdate(writer: LineWriter, update: CheckpointUpdate): Promise<void> {
    const lastCheckpoint = this.lastCheckpoint;
    if (lastCheckpoint === null) return; // not started yet; the initial checkpoint covers it
    let setChanged = false;
    const changedLookups = update.changedLookups;
    let lookupsChanged = false;
    if (this.lookups.size > 0) {
      if (changedLookups === null) lookupsChanged = true;
      else for (const lookup of this.lookups) if (changedLookups.has(lookup)) lookupsChanged = true;
    }
    if (lookupsChanged) {
      const next = await this.resolveBuckets();
      setChanged = next.size !== this.buckets.size || [...next.keys()].some((bucket) => !this.buckets.has(bucket));
      this.buckets = next;
    }

    // The update's change set is usable only if it continues from what the client has.
    const continuous = update.changedBuckets !== null && update.previous !== null && update.previous <= lastCheckpoint;
    let target: OpId;
    let states: Map<string, BucketState>;
    if (setChanged || !continuous) {
      ({ checkpoint: target, states } = await this.deps.storage.getCheckpointState([...this.buckets.keys()]));
    } else {
      if (update.checkpoint <= lastCheckpoint) {
        await this.sendWriteCheckpointOnly(writer, lastCheckpoint);
        return;
      }
      target = update.checkpoint;
      states = new Map();
      // Walk the smaller side: with many clients, this runs once per client per checkpoint.
      const changed = update.changedBuckets!;
      if (changed.size <= this.buckets.size) {
        for (const [bucket, state] of changed) if (this.buckets.has(bucket)) states.set(bucket, state);
      } else {
        for (const bucket of this.buckets.keys()) {
          const state = changed.get(bucket);
          if (state !== undefined) states.set(bucket, state);
        }
      }
    }
    if (target < lastCheckpoint) target = lastCheckpoint;

    const updated: { description: BucketDescription; state: BucketState }[] = [];
    for (const [bucket, state] of states) {
      const description = this.buckets.get(bucket);
      if (description !== undefined && !sameState(this.announced.get(bucket), state))
        updated.push({ description, state });
    }
    const removed = [...this.announced.keys()].filter((bucket) => !this.buckets.has(bucket));
    this.lastCheckpoint = target;
    if (updated.length === 0 && removed.length === 0) {
      // Nothing of this client's changed; a newly covered write checkpoint still goes out.
      await this.sendWriteCheckpointOnly(writer, target);
      return;
    }
    const writeCheckpoint = this.unsentWriteCheckpoint();
    if (writeCheckpoint !== null) this.sentWriteCheckpoint = writeCheckpoint;

    for (const bucket of removed) {
      this.announced.delete(bucket);
      this.positions.delete(bucket);
    }
    for (const { description, state } of updated) this.announced.set(description.bucket, state);
    await writer.write(
      'checkpoint_diff',
      encodeLine({
        checkpoint_diff: {
          last_op_id: formatOpId(target),
          ...(writeCheckpoint !== null ? { write_checkpoint: writeCheckpoint.toString() } : {}),
          updated_buckets: updated.map((e) => this.checksumOf(e.description, e.state)),
          removed_buckets: removed,
        },
      }),
    );
    await this.sendData(writer, updated, target);
  }

  /**
   * An empty `checkpoint_diff` + `checkpoint_complete` at `checkpoint` carrying
   * a newly covered write checkpoint (the PowerSync client waits for it before
   * applying its local writes). No-op if there is none to send.
   */
  private async sendWriteCheckpointOnly(writer: LineWriter, checkpoint: OpId): Promise<void> {
    const writeCheckpoint = this.unsentWriteCheckpoint();
    if (writeCheckpoint === null) return;
    this.sentWriteCheckpoint = writeCheckpoint;
    await writer.write(
      'checkpoint_diff',
      encodeLine({
        checkpoint_diff: {
          last_op_id: formatOpId(checkpoint),
          write_checkpoint: writeCheckpoint.toString(),
          updated_buckets: [],
          removed_buckets: [],
        },
      }),
    );
    await this.sendData(writer, [], checkpoint);
  }

  /** Sends the ops each bucket lacks, highest priority first, then `checkpoint_complete`. */
  private async sendData(
    writer: LineWriter,
    entries: { description: BucketDescription; state: BucketState }[],
    checkpoint: OpId,
  ): Promise<void> {
    const lastOpId = formatOpId(checkpoint);
    const byPriority = [...entries].sort((a, b) => a.description.priority - b.description.priority);
    for (let i = 0; i < byPriority.length; i++) {
      const { description, state } = byPriority[i]!;
      let after = this.positions.get(description.bucket) ?? 0n;
      while (after < state.lastOpId) {
        const page = await this.deps.opReader.read(description.bucket, after, checkpoint, state.lastOpId);
        if (this.stopped) return;
        if (page.count === 0) break;
        await writer.write('data', page.line);
        after = page.lastOpId;
        this.positions.set(description.bucket, after);
      }
      const next = byPriority[i + 1];
      const priority = description.priority;
      if (priority < DEFAULT_BUCKET_PRIORITY && next !== undefined && next.description.priority !== priority) {
        await writer.write(
          'partial_checkpoint_complete',
          encodeLine({ partial_checkpoint_complete: { last_op_id: lastOpId, priority } }),
        );
      }
    }
    await writer.write('checkpoint_complete', encodeLine({ checkpoint_complete: { last_op_id: lastOpId } }));
    this.deps.metrics?.checkpointsSent.inc();
  }

  private checksumOf(description: BucketDescription, state: BucketState): BucketChecksum {
    return { bucket: description.bucket, checksum: state.checksum, count: state.count, priority: description.priority };
  }
}
