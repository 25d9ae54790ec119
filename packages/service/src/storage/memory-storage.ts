import {
  addChecksums,
  formatOpId,
  putChecksum,
  removeChecksum,
  rowToJson,
  type OpId,
  type OplogEntry,
  type SqliteRow,
  type SqliteValue,
} from '@ferry/protocol';
import type { BucketState, BucketStorageReader, CheckpointUpdate } from './types.js';

/** A row to put into a bucket. `data` is the row (or its exact JSON text). */
export interface MemoryPut {
  object_type: string;
  object_id: string;
  data: SqliteRow | string;
  subkey?: string | null;
}

/** A row to remove from a bucket. */
export interface MemoryRemove {
  object_type: string;
  object_id: string;
  subkey?: string | null;
}

export interface MemoryCommitOptions {
  /**
   * Publish the update without change sets (`changedBuckets` and
   * `changedLookups` null), as a storage that lost track would: readers must
   * re-read everything. Default false.
   */
  withoutChangeSets?: boolean;
}

/** How often each read method was called; lets tests see that reads are shared. */
export interface MemoryStorageStats {
  getLatestCheckpoint: number;
  getCheckpointState: number;
  getParameterRows: number;
  readBucketOps: number;
}

interface StoredOp {
  id: OpId;
  entry: OplogEntry;
}

const EMPTY_STATE: BucketState = Object.freeze({ checksum: 0, count: 0, lastOpId: 0n });

/**
 * A complete in-memory {@link BucketStorageReader} with a small writer API,
 * for tests of the stream API and for embedding.
 *
 * Writes are staged like a source transaction: `put`, `remove` and
 * `setParameterRows` assign op ids at once but stay invisible until
 * {@link commit} publishes a checkpoint covering them and notifies
 * subscribers with exactly what changed. It keeps every invariant of
 * `types.ts`; it does not compact.
 */
export class MemoryBucketStorage implements BucketStorageReader {
  readonly stats: MemoryStorageStats = {
    getLatestCheckpoint: 0,
    getCheckpointState: 0,
    getParameterRows: 0,
    readBucketOps: 0,
  };

  private sequence: OpId = 0n;
  private checkpoint: OpId | null = null;
  /** Committed ops per bucket, in op id order. */
  private readonly buckets = new Map<string, StoredOp[]>();
  /** State of each bucket at the latest checkpoint. */
  private readonly states = new Map<string, BucketState>();
  private readonly parameterRows = new Map<string, Record<string, SqliteValue>[]>();
  private pendingOps: { bucket: string; op: StoredOp }[] = [];
  private pendingLookups = new Map<string, Record<string, SqliteValue>[]>();
  private readonly listeners = new Set<{ previous: OpId | null; listener: (update: CheckpointUpdate) => void }>();

  /** Stages a PUT of a row into `bucket`; returns its op id. */
  put(bucket: string, row: MemoryPut): OpId {
    const data = typeof row.data === 'string' ? row.data : rowToJson(row.data);
    const id = ++this.sequence;
    const entry: OplogEntry = {
      op_id: formatOpId(id),
      op: 'PUT',
      object_type: row.object_type,
      object_id: row.object_id,
      data,
      checksum: putChecksum(row.object_type, row.object_id, data, row.subkey),
    };
    if (row.subkey != null) entry.subkey = row.subkey;
    this.pendingOps.push({ bucket, op: { id, entry } });
    return id;
  }

  /** Stages a REMOVE of a row from `bucket`; returns its op id. */
  remove(bucket: string, row: MemoryRemove): OpId {
    const id = ++this.sequence;
    const entry: OplogEntry = {
      op_id: formatOpId(id),
      op: 'REMOVE',
      object_type: row.object_type,
      object_id: row.object_id,
      data: null,
      checksum: removeChecksum(row.object_type, row.object_id, row.subkey),
    };
    if (row.subkey != null) entry.subkey = row.subkey;
    this.pendingOps.push({ bucket, op: { id, entry } });
    return id;
  }

  /** Stages the complete set of parameter rows stored under `lookup` (empty = none). */
  setParameterRows(lookup: string, rows: readonly Record<string, SqliteValue>[]): void {
    this.pendingLookups.set(
      lookup,
      rows.map((row) => ({ ...row })),
    );
  }

  /**
   * Publishes everything staged as one checkpoint and notifies subscribers.
   * The checkpoint is the last staged op id, or a fresh id from the sequence
   * when only parameter rows changed (or nothing did), so checkpoints always
   * strictly increase.
   */
  commit(options: MemoryCommitOptions = {}): OpId {
    const checkpoint =
      this.pendingOps.length > 0 && this.pendingOps.at(-1)!.op.id === this.sequence ? this.sequence : ++this.sequence;
    const changedBuckets = new Map<string, BucketState>();
    for (const { bucket, op } of this.pendingOps) {
      let ops = this.buckets.get(bucket);
      if (ops === undefined) this.buckets.set(bucket, (ops = []));
      ops.push(op);
      const state = this.states.get(bucket) ?? EMPTY_STATE;
      const next: BucketState = {
        checksum: addChecksums(state.checksum, op.entry.checksum),
        count: state.count + 1,
        lastOpId: op.id,
      };
      this.states.set(bucket, next);
      changedBuckets.set(bucket, next);
    }
    const changedLookups = new Set<string>();
    for (const [lookup, rows] of this.pendingLookups) {
      if (rows.length === 0) this.parameterRows.delete(lookup);
      else this.parameterRows.set(lookup, rows);
      changedLookups.add(lookup);
    }
    this.pendingOps = [];
    this.pendingLookups = new Map();
    this.checkpoint = checkpoint;

    const withoutChangeSets = options.withoutChangeSets ?? false;
    for (const subscription of this.listeners) {
      const update: CheckpointUpdate = {
        checkpoint,
        previous: subscription.previous,
        changedBuckets: withoutChangeSets ? null : changedBuckets,
        changedLookups: withoutChangeSets ? null : changedLookups,
      };
      subscription.previous = checkpoint;
      // Deliver asynchronously, as a real storage's notification channel would.
      queueMicrotask(() => {
        if (this.listeners.has(subscription)) subscription.listener(update);
      });
    }
    return checkpoint;
  }

  async getLatestCheckpoint(): Promise<OpId | null> {
    this.stats.getLatestCheckpoint++;
    return this.checkpoint;
  }

  async getCheckpointState(
    buckets: readonly string[],
  ): Promise<{ checkpoint: OpId; states: Map<string, BucketState> }> {
    this.stats.getCheckpointState++;
    const states = new Map<string, BucketState>();
    for (const bucket of buckets) states.set(bucket, { ...(this.states.get(bucket) ?? EMPTY_STATE) });
    return { checkpoint: this.checkpoint ?? 0n, states };
  }

  async getParameterRows(lookups: readonly string[]): Promise<Map<string, Record<string, SqliteValue>[]>> {
    this.stats.getParameterRows++;
    const result = new Map<string, Record<string, SqliteValue>[]>();
    for (const lookup of lookups) {
      const rows = this.parameterRows.get(lookup);
      if (rows !== undefined)
        result.set(
          lookup,
          rows.map((row) => ({ ...row })),
        );
    }
    return result;
  }

  async readBucketOps(bucket: string, after: OpId, upTo: OpId, limit: number): Promise<OplogEntry[]> {
    this.stats.readBucketOps++;
    const ops = this.buckets.get(bucket);
    const visibleUpTo = this.checkpoint === null ? 0n : upTo < this.checkpoint ? upTo : this.checkpoint;
    if (ops === undefined || limit <= 0) return [];
    // First op with id > after (binary search: ids increase along the log).
    let lo = 0;
    let hi = ops.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ops[mid]!.id <= after) lo = mid + 1;
      else hi = mid;
    }
    const out: OplogEntry[] = [];
    for (let i = lo; i < ops.length && out.length < limit; i++) {
      const op = ops[i]!;
      if (op.id > visibleUpTo) break;
      out.push({ ...op.entry });
    }
    return out;
  }

  /**
   * Every update describes the changes since the previous one this listener
   * saw; the first one is relative to the checkpoint that was the latest when
   * the listener subscribed (`previous: null` only if there was none).
   */
  subscribe(listener: (update: CheckpointUpdate) => void): () => void {
    const subscription = { previous: this.checkpoint, listener };
    this.listeners.add(subscription);
    return () => {
      this.listeners.delete(subscription);
    };
  }

  /** Number of open subscriptions (for tests of unsubscribe on disconnect). */
  get subscriberCount(): number {
    return this.listeners.size;
  }
}
