/**
 * Bucket storage: the contract between the replicator (writer) and the sync
 * stream (readers). Implementations: `PostgresBucketStorage` (production,
 * schema `ferry`) and `MemoryBucketStorage` (tests of the stream API); both
 * must pass the same conformance suite.
 *
 * Invariants every implementation keeps:
 * 1. Op ids come from one strictly increasing sequence across all buckets.
 * 2. A checkpoint C covers exactly the ops with op_id <= C that were written
 *    by complete source transactions; ops of a source transaction become
 *    visible atomically with the checkpoint that covers them.
 * 3. A bucket's checksum at C is the wrapping u32 sum of the checksums of its
 *    ops with op_id <= C; its count is their number. Compaction may replace
 *    ops with MOVE/CLEAR but never changes a bucket's checksum at any C at or
 *    after the compacted range.
 * 4. Readers never see an op with op_id > the checkpoint they asked about.
 */
import type { OpId, OplogEntry, SqliteValue } from '@ferry/protocol';

/** A bucket's state at a checkpoint. Absent buckets are empty: checksum 0, count 0. */
export interface BucketState {
  checksum: number;
  count: number;
  /** Last op id in the bucket at or before the checkpoint; 0n if empty. */
  lastOpId: OpId;
}

/** What changed between two consecutive published checkpoints. */
export interface CheckpointUpdate {
  /** The new checkpoint (its last op id). */
  checkpoint: OpId;
  /**
   * The checkpoint this update is relative to: the previous published one,
   * which for a listener's first update is the checkpoint that was current
   * when it subscribed (null if there was none).
   */
  previous: OpId | null;
  /**
   * Buckets whose state changed in (previous, checkpoint], with their state at
   * `checkpoint`. `null` means "unknown or too many": readers must re-read
   * the state of the buckets they care about.
   */
  changedBuckets: ReadonlyMap<string, BucketState> | null;
  /**
   * Lookups whose parameter rows changed in (previous, checkpoint]. `null`
   * means unknown: readers must re-resolve all their lookups.
   */
  changedLookups: ReadonlySet<string> | null;
  /**
   * Write checkpoints that became covered by replication (the source LSN they
   * wait for is stored) since the previous notification, for every user and
   * client; each session picks its own. May repeat an id already delivered.
   * Absent or empty when none. An update may carry only these (then
   * `checkpoint` may equal `previous` and nothing else changed).
   */
  writeCheckpoints?: readonly CoveredWriteCheckpoint[];
}

/** A write checkpoint replication has passed. */
export interface CoveredWriteCheckpoint {
  id: bigint;
  userId: string;
  clientId: string;
}

/** The read side, used by the sync stream API. All methods are safe to call concurrently. */
export interface BucketStorageReader {
  /** The latest published checkpoint, or null if replication has not completed its initial copy. */
  getLatestCheckpoint(): Promise<OpId | null>;

  /**
   * The state of `buckets` at one consistent checkpoint (the latest at the
   * time of the call), read atomically. Buckets with no ops are returned as
   * empty states.
   */
  getCheckpointState(buckets: readonly string[]): Promise<{ checkpoint: OpId; states: Map<string, BucketState> }>;

  /**
   * Parameter rows stored under each lookup at the latest checkpoint. Lookups
   * with no rows may be absent from the map.
   */
  getParameterRows(lookups: readonly string[]): Promise<Map<string, Record<string, SqliteValue>[]>>;

  /**
   * Up to `limit` ops of `bucket` with after < op_id <= upTo, in op id order,
   * ready for the wire. Never loads more than `limit` ops into memory.
   */
  readBucketOps(bucket: string, after: OpId, upTo: OpId, limit: number): Promise<OplogEntry[]>;

  /**
   * Calls `listener` for every checkpoint published from now on, in order,
   * once per process however many listeners there are (the implementation
   * shares one notification channel, e.g. LISTEN/NOTIFY, and one read of the
   * change set per checkpoint). Returns an unsubscribe function.
   */
  subscribe(listener: (update: CheckpointUpdate) => void): () => void;

  /**
   * The highest write checkpoint of (userId, clientId) that replication has
   * covered, or null. Optional: storages without write checkpoints omit it.
   */
  getWriteCheckpoint?(userId: string, clientId: string): Promise<bigint | null>;
}
