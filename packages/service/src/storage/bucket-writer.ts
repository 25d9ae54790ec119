/**
 * The write side of bucket storage, used by the single replicator.
 *
 * Row changes are buffered and applied in batches inside one open storage
 * transaction: for each batch the current state of the touched source rows is
 * read with one query, every change is run through the sync rules in order,
 * and the resulting ops, bucket states, row states and parameter rows are
 * written with one statement. The storage transaction is committed only at a
 * source-commit boundary (the caller decides which), together with the
 * checkpoint it publishes (`state` row, `checkpoints` row, `NOTIFY`). Several
 * source transactions may share one storage transaction (group commit); a
 * large source transaction is written batch by batch as it arrives and never
 * held in memory.
 *
 * Op ids come from an in-memory counter initialised from `state.last_op_id`.
 * That is safe because only the replicator holding the advisory lock writes.
 */
import { FerryError, rowToJson, type OpId, type SqliteRow } from '@ferry/protocol';
import type { CompiledSyncRules, EvaluationError } from '@ferry/rules';
import type pg from 'pg';
import { copyIn } from './copy-in.js';
import { BinaryCopyBuilder } from './pg-binary-copy.js';
import {
  encodeParams,
  type BucketEntry,
  type CompleteRawRow,
  type CurrentRow,
  type LookupEntry,
  type RawRow,
} from './row-state.js';
import { putChecksum, removeChecksum } from './op-checksum.js';
import { int4Array, int8Array, textArray } from './pg-binary-array.js';
import { CHECKSUM_MODULUS, OP_CODE, quoteIdent } from './sql.js';

/** A source table as bucket storage knows it. Structurally a `SourceTableName`. */
export interface StoredSourceTable {
  /** Storage id (`source_tables.id`). */
  id: number;
  schema: string;
  name: string;
  /** Rows feed data queries. */
  data: boolean;
  /** Rows feed parameter queries. */
  parameters: boolean;
}

/** One change of one source row. */
export interface RowChange {
  kind: 'insert' | 'update' | 'delete';
  table: StoredSourceTable;
  /** Replica identity of the row (after the change for insert/update). */
  key: string;
  /** Update only: the identity before the update, when it changed. */
  previousKey?: string;
  /** Insert/update: the new row. `undefined` values are filled from the stored row (unchanged TOAST). */
  row?: RawRow;
  /** Insert/update: converts a complete raw row into SQLite values (see type-mapping). */
  toSqlite?: (row: CompleteRawRow) => SqliteRow;
  /**
   * True when two rows of the table can never have the same key (a primary
   * key or identity index, mapped without loss). Then an INSERT's row cannot
   * be stored already and its state is appended with COPY instead of an
   * upsert. Leave unset when unsure: the upsert is always correct.
   */
  uniqueKeys?: boolean;
}

/** The source transaction boundary a storage commit covers. */
export interface SourceCommit {
  /** LSN of the source commit record (`Begin.finalLsn`). */
  commitLsn: bigint;
  /** End of the commit record: what the slot may confirm once this is stored. */
  endLsn: bigint;
  commitTime: Date;
}

export interface CommitResult {
  /** The checkpoint published by this commit, or null if nothing visible changed. */
  checkpoint: OpId | null;
  /** Ops written in the committed storage transaction. */
  ops: number;
  /** The last source commit covered, if any. */
  sourceCommit: SourceCommit | null;
}

export interface BucketWriterOptions {
  /** Row changes per batch (default 2000). */
  batchSize?: number;
  /** Approximate raw bytes per batch (default 4 MiB). */
  batchBytes?: number;
  /** Lookups tracked per checkpoint before reporting "unknown" (default 10,000). */
  maxTrackedLookups?: number;
  /** Called for rows the rules could not evaluate; the row is skipped for that query. */
  onEvaluationError?: (error: EvaluationError & { table: string; key: string }) => void;
}

/** State that outlives one writer (kept by the storage for its next writers). */
export interface WriterSharedState {
  /** Append the states of rows new to storage with COPY (turned off for good after a key collision). */
  copyFreshRows: boolean;
}

/** Ops, bucket deltas and row/parameter state produced by one batch, in columnar form. */
class BatchBuffers {
  opBucket: string[] = [];
  opId: OpId[] = [];
  opCode: number[] = [];
  opType: (string | null)[] = [];
  opObjectId: (string | null)[] = [];
  opData: (string | null)[] = [];
  opChecksum: number[] = [];
  buckets = new Map<string, { checksum: number; count: number; last: OpId }>();
  /**
   * table_id:key → final row state (null = deleted). `fresh`: storage had no
   * row for the key before this batch (it was inserted here), so the state
   * is appended, and a delete needs no statement.
   */
  rows = new Map<string, { tableId: number; key: string; state: CurrentRow | null; fresh: boolean }>();
  /** lookup\0table_id\0key → params JSON (null = deleted). */
  params = new Map<string, { lookup: string; tableId: number; key: string; params: string | null }>();

  get opCount(): number {
    return this.opId.length;
  }

  get empty(): boolean {
    return this.opId.length === 0 && this.rows.size === 0 && this.params.size === 0;
  }

  addOp(
    bucket: string,
    id: OpId,
    code: number,
    type: string | null,
    objectId: string | null,
    data: string | null,
    checksum: number,
  ): void {
    this.opBucket.push(bucket);
    this.opId.push(id);
    this.opCode.push(code);
    this.opType.push(type);
    this.opObjectId.push(objectId);
    this.opData.push(data);
    this.opChecksum.push(checksum);
    const b = this.buckets.get(bucket);
    if (b) {
      b.checksum = (b.checksum + checksum) >>> 0;
      b.count++;
      b.last = id;
    } else {
      this.buckets.set(bucket, { checksum, count: 1, last: id });
    }
  }
}

const rowMapKey = (tableId: number, key: string) => `${tableId}\u0000${key}`;

export class BucketWriter {
  private readonly client: pg.Client;
  private readonly s: string;
  private readonly schema: string;
  private readonly rules: CompiledSyncRules;
  private readonly channel: string;
  private readonly batchSize: number;
  private readonly batchBytes: number;
  private readonly maxTrackedLookups: number;
  private readonly onEvaluationError: BucketWriterOptions['onEvaluationError'];
  private readonly shared: WriterSharedState;

  private nextOpId: OpId;
  private published: boolean;
  private txOpen = false;
  private txStartOpId: OpId = 0n;
  private txOps = 0;
  private txLookups: Set<string> | null = new Set();
  private txSourceCommit: SourceCommit | null = null;
  private txStartedAt = 0;
  private pending: RowChange[] = [];
  private pendingBytes = 0;
  private closed = false;
  private commitsSincePrune = 0;
  private inflight: Promise<void>[] = [];
  private writeError: unknown = null;

  /** Use {@link PostgresBucketStorage.openWriter}. */
  constructor(
    client: pg.Client,
    schema: string,
    rules: CompiledSyncRules,
    state: { lastOpId: OpId; published: boolean },
    options: BucketWriterOptions = {},
    shared: WriterSharedState = { copyFreshRows: true },
  ) {
    this.client = client;
    this.shared = shared;
    this.schema = schema;
    this.s = quoteIdent(schema);
    this.rules = rules;
    this.channel = checkpointChannel(schema);
    this.nextOpId = state.lastOpId;
    this.published = state.published;
    this.batchSize = options.batchSize ?? 2000;
    this.batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
    this.maxTrackedLookups = options.maxTrackedLookups ?? 10_000;
    this.onEvaluationError = options.onEvaluationError;
  }

  /** The highest op id allocated so far (committed or in the open transaction). */
  get lastOpId(): OpId {
    return this.nextOpId;
  }

  /** True while a storage transaction is open. */
  get inTransaction(): boolean {
    return this.txOpen;
  }

  /** Ops written (or buffered) in the open storage transaction. */
  get transactionOps(): number {
    return this.txOps + this.pending.length;
  }

  /** When the open storage transaction started (ms since epoch), 0 if none. */
  get transactionStartedAt(): number {
    return this.txOpen ? this.txStartedAt : 0;
  }

  /** True if the open storage transaction already covers at least one complete source transaction. */
  get hasSourceCommit(): boolean {
    return this.txSourceCommit !== null;
  }

  /** Opens a storage transaction if none is open. */
  async begin(): Promise<void> {
    this.assertUsable();
    if (this.txOpen) return;
    await this.client.query('BEGIN');
    this.txOpen = true;
    this.txStartOpId = this.nextOpId;
    this.txOps = 0;
    this.txLookups = new Set();
    this.txSourceCommit = null;
    this.txStartedAt = Date.now();
  }

  /**
   * Buffers a change (a transaction must be open). Returns true when the
   * buffer is full and the caller should `await flush()` before adding more.
   */
  add(change: RowChange): boolean {
    if (!this.txOpen) throw new FerryError('FERRY_S9001', 'BucketWriter.add outside a transaction');
    this.pending.push(change);
    if (change.row) {
      for (const k in change.row) this.pendingBytes += (change.row[k]?.length ?? 0) + 8;
    }
    return this.pending.length >= this.batchSize || this.pendingBytes >= this.batchBytes;
  }

  /** Applies buffered changes to the open transaction. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.writeError !== null) await this.settleWrites();
    await this.applyChanges(changes, false);
    // Bound the data in flight: wait for all but the last two batches.
    while (this.inflight.length > 2) await this.inflight.shift();
  }

  /** Removes every row of the given tables from all buckets and lookups (TRUNCATE). */
  async truncate(tables: readonly StoredSourceTable[]): Promise<void> {
    await this.flush();
    await this.settleWrites();
    for (const table of tables) {
      let after = '';
      for (;;) {
        const { rows } = await this.client.query<{ row_key: string; buckets: string; lookups: string }>(
          `SELECT row_key, buckets, lookups FROM ${this.s}.current_rows WHERE table_id = $1 AND row_key > $2 ORDER BY row_key LIMIT 2000`,
          [table.id, after],
        );
        if (rows.length === 0) break;
        const out = new BatchBuffers();
        for (const row of rows) {
          const buckets = JSON.parse(row.buckets) as BucketEntry[];
          const lookups = JSON.parse(row.lookups) as LookupEntry[];
          for (const [bucket, type, id] of buckets)
            out.addOp(bucket, ++this.nextOpId, OP_CODE.REMOVE, type, id, null, removeChecksum(type, id));
          for (const [lookup] of lookups) {
            out.params.set(`${lookup}\u0000${table.id}\u0000${row.row_key}`, {
              lookup,
              tableId: table.id,
              key: row.row_key,
              params: null,
            });
            this.noteLookup(lookup);
          }
          out.rows.set(rowMapKey(table.id, row.row_key), {
            tableId: table.id,
            key: row.row_key,
            state: null,
            fresh: false,
          });
        }
        await this.write(out);
        after = rows[rows.length - 1]!.row_key;
      }
    }
  }

  /** Records that the open transaction now covers a complete source transaction. */
  sourceCommitted(commit: SourceCommit): void {
    if (!this.txOpen) throw new FerryError('FERRY_S9001', 'BucketWriter.sourceCommitted outside a transaction');
    this.txSourceCommit = commit;
  }

  /**
   * Flushes, then commits the storage transaction durably and publishes a
   * checkpoint if any op or lookup changed. Only call at a source-commit
   * boundary: everything in the transaction becomes visible at once.
   */
  async commit(): Promise<CommitResult> {
    this.assertUsable();
    if (!this.txOpen) return { checkpoint: null, ops: 0, sourceCommit: null };
    await this.flush();
    await this.settleWrites();
    const opsWritten = this.nextOpId > this.txStartOpId;
    const lookupsChanged = this.txLookups === null || this.txLookups.size > 0;
    let checkpoint: OpId | null = null;
    if (this.published && (opsWritten || lookupsChanged)) {
      // A checkpoint that only changes parameter rows still needs a new id.
      if (!opsWritten) this.nextOpId += 1n;
      checkpoint = this.nextOpId;
    }
    const commit = this.txSourceCommit;
    await this.client.query(
      `WITH st AS (
         UPDATE ${this.s}.state SET last_op_id = $1::int8, checkpoint = coalesce($2::int8, checkpoint),
           commit_lsn = coalesce($3::int8, commit_lsn), end_lsn = coalesce($4::int8, end_lsn),
           commit_time = coalesce($5::timestamptz, commit_time), updated_at = now()
         WHERE id = 1 RETURNING 1),
       cp AS (
         INSERT INTO ${this.s}.checkpoints (op_id, lsn, commit_time, changed_lookups)
         SELECT $2::int8, $4::int8, $5::timestamptz, $6::text[] WHERE $2::int8 IS NOT NULL
         ON CONFLICT (op_id) DO NOTHING RETURNING 1)
       SELECT CASE WHEN $2::int8 IS NOT NULL OR ($4::int8 IS NOT NULL AND EXISTS (
                SELECT 1 FROM ${this.s}.write_checkpoints
                 WHERE lsn <= $4::int8 AND lsn > coalesce((SELECT end_lsn FROM ${this.s}.state WHERE id = 1), -1)))
              THEN pg_notify($7, $8) END AS notified, (SELECT count(*) FROM st) AS updated`,
      [
        this.nextOpId.toString(),
        checkpoint?.toString() ?? null,
        commit?.commitLsn.toString() ?? null,
        commit?.endLsn.toString() ?? null,
        commit?.commitTime ?? null,
        this.txLookups === null ? null : [...this.txLookups],
        this.channel,
        JSON.stringify({ checkpoint: checkpoint?.toString() ?? null }),
      ],
    );
    await this.client.query('COMMIT');
    const ops = this.txOps;
    this.txOpen = false;
    this.txSourceCommit = null;
    if (checkpoint !== null && ++this.commitsSincePrune >= 1000) {
      this.commitsSincePrune = 0;
      await this.pruneCheckpoints();
    }
    return { checkpoint, ops, sourceCommit: commit };
  }

  /** Abandons the open transaction and everything buffered; resets the op counter from storage. */
  async rollback(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.settleWrites().catch(() => {});
    if (!this.txOpen) return;
    this.txOpen = false;
    this.txSourceCommit = null;
    await this.client.query('ROLLBACK');
    const { rows } = await this.client.query<{ last_op_id: string }>(
      `SELECT last_op_id FROM ${this.s}.state WHERE id = 1`,
    );
    this.nextOpId = BigInt(rows[0]?.last_op_id ?? '0');
  }

  /**
   * Initial copy: stores a batch of rows read from the snapshot, in its own
   * (unpublished) transaction. Rows must be new to storage. `uniqueKeys`: as
   * {@link RowChange.uniqueKeys}. Returns the number of ops written.
   *
   * The batch's writes and COMMIT are queued on the connection, not awaited,
   * so the caller prepares the next batch while Postgres stores this one. A
   * failure is rethrown by the next call, {@link markTableCopied} or
   * {@link completeSnapshot}; nothing is published before the latter.
   */
  async writeSnapshotRows(
    table: StoredSourceTable,
    rows: readonly { key: string; row: CompleteRawRow }[],
    toSqlite: (row: CompleteRawRow) => SqliteRow,
    options: { uniqueKeys?: boolean } = {},
  ): Promise<number> {
    if (this.txOpen) throw new FerryError('FERRY_S9001', 'writeSnapshotRows inside a transaction');
    this.assertUsable();
    if (this.writeError !== null) await this.settleWrites(); // an earlier batch failed: rethrow
    const uniqueKeys = options.uniqueKeys === true;
    // BEGIN is queued behind the previous batch's COMMIT, like everything below.
    this.queue(this.client.query('BEGIN'));
    this.txOpen = true;
    this.txStartOpId = this.nextOpId;
    this.txOps = 0;
    this.txLookups = new Set();
    this.txSourceCommit = null;
    this.txStartedAt = Date.now();
    try {
      const before = this.nextOpId;
      // Sub-batches keep each statement (and its serialized parameters) small.
      for (let i = 0; i < rows.length; i += this.batchSize) {
        const slice = rows.slice(i, i + this.batchSize);
        await this.applyChanges(
          slice.map((r) => ({ kind: 'insert', table, key: r.key, row: r.row, toSqlite, uniqueKeys })),
          true,
        );
        while (this.inflight.length > 3) await this.inflight.shift();
      }
      this.queue(
        this.client.query(
          `WITH st AS (UPDATE ${this.s}.state SET last_op_id = $1::int8, updated_at = now() WHERE id = 1 RETURNING 1)
           UPDATE ${this.s}.source_tables SET rows_copied = rows_copied + $2 WHERE id = $3`,
          [this.nextOpId.toString(), rows.length, table.id],
        ),
      );
      // If a write above failed, Postgres answers this COMMIT with a rollback
      // (no error): the write's error, kept in writeError, is what surfaces.
      this.queue(this.client.query('COMMIT'));
      this.txOpen = false;
      return Number(this.nextOpId - before);
    } catch (error) {
      await this.rollback().catch(() => {});
      throw error;
    }
  }

  /** Marks one table's initial copy complete (after every batch written for it is committed). */
  async markTableCopied(table: StoredSourceTable): Promise<void> {
    await this.settleWrites();
    await this.client.query(`UPDATE ${this.s}.source_tables SET snapshot_done = true WHERE id = $1`, [table.id]);
  }

  /**
   * While idle (no open transaction), records that the source has been
   * received and stored up to `lsn` (a keepalive position) — but writes only
   * when that covers a pending write checkpoint, then notifies listeners.
   * Returns whether it advanced.
   */
  async advanceIdle(lsn: bigint): Promise<boolean> {
    this.assertUsable();
    if (this.txOpen || !this.published) return false;
    const { rows } = await this.client.query<{ advanced: boolean }>(
      `WITH old AS (SELECT coalesce(end_lsn, -1) AS end_lsn FROM ${this.s}.state WHERE id = 1),
       st AS (
         UPDATE ${this.s}.state SET end_lsn = $1::int8, updated_at = now()
          WHERE id = 1 AND coalesce(end_lsn, -1) < $1::int8
            AND EXISTS (SELECT 1 FROM ${this.s}.write_checkpoints
                         WHERE lsn <= $1::int8 AND lsn > (SELECT end_lsn FROM old))
         RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM st) AS advanced,
              CASE WHEN EXISTS (SELECT 1 FROM st) THEN pg_notify($2, '{"write_checkpoint":true}') END AS notified`,
      [lsn.toString(), this.channel],
    );
    return rows[0]?.advanced === true;
  }

  /**
   * Completes the initial copy: publishes the first checkpoint, covering every
   * copied row, and records the slot's consistent point as the resume position.
   */
  async completeSnapshot(consistentPoint: bigint): Promise<OpId> {
    if (this.txOpen) throw new FerryError('FERRY_S9001', 'completeSnapshot inside a transaction');
    await this.settleWrites();
    const checkpoint = this.nextOpId;
    await this.client.query('BEGIN');
    try {
      await this.client.query(
        `WITH st AS (
           UPDATE ${this.s}.state SET snapshot_done = true, checkpoint = $1::int8, last_op_id = $1::int8,
             end_lsn = $2::int8, commit_lsn = NULL, commit_time = now(), updated_at = now() WHERE id = 1 RETURNING 1),
         cp AS (
           INSERT INTO ${this.s}.checkpoints (op_id, lsn, commit_time, changed_lookups) VALUES ($1::int8, $2::int8, now(), NULL)
           ON CONFLICT (op_id) DO UPDATE SET changed_lookups = NULL RETURNING 1)
         SELECT pg_notify($3, $4), (SELECT count(*) FROM st), (SELECT count(*) FROM cp)`,
        [
          checkpoint.toString(),
          consistentPoint.toString(),
          this.channel,
          JSON.stringify({ checkpoint: checkpoint.toString() }),
        ],
      );
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => {});
      throw error;
    }
    this.published = true;
    return checkpoint;
  }

  /** Closes the writer's connection, abandoning any open transaction. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end().catch(() => {});
  }

  // ── internals ────────────────────────────────────────────────────────────

  private assertUsable(): void {
    if (this.closed) throw new FerryError('FERRY_S5001', 'bucket writer is closed');
  }

  private noteLookup(lookup: string): void {
    if (this.txLookups === null) return;
    this.txLookups.add(lookup);
    if (this.txLookups.size > this.maxTrackedLookups) this.txLookups = null;
  }

  private async pruneCheckpoints(): Promise<void> {
    // Keep an hour of change history for listeners that fall behind, and always the latest.
    await this.client.query(
      `DELETE FROM ${this.s}.checkpoints WHERE created_at < now() - interval '1 hour'
         AND op_id < (SELECT coalesce(checkpoint, 0) FROM ${this.s}.state WHERE id = 1)`,
    );
    // A client only needs its highest covered write checkpoint: drop older covered ones.
    await this.client.query(
      `WITH s AS (SELECT end_lsn FROM ${this.s}.state WHERE id = 1)
       DELETE FROM ${this.s}.write_checkpoints w
        WHERE w.created_at < now() - interval '1 hour' AND w.lsn <= (SELECT end_lsn FROM s)
          AND EXISTS (SELECT 1 FROM ${this.s}.write_checkpoints n
                       WHERE n.user_id = w.user_id AND n.client_id = w.client_id AND n.id > w.id
                         AND n.lsn <= (SELECT end_lsn FROM s))`,
    );
  }

  private async loadCurrent(changes: readonly RowChange[]): Promise<Map<string, CurrentRow | null>> {
    const tableIds: number[] = [];
    const keys: string[] = [];
    const seen = new Set<string>();
    const want = (tableId: number, key: string) => {
      const k = rowMapKey(tableId, key);
      if (seen.has(k)) return;
      seen.add(k);
      tableIds.push(tableId);
      keys.push(key);
    };
    for (const change of changes) {
      // An INSERT's row cannot be stored already: the source just created it
      // (and a DELETE or TRUNCATE before it in this batch is in the map).
      if (change.kind === 'insert') continue;
      want(change.table.id, change.key);
      if (change.previousKey !== undefined) want(change.table.id, change.previousKey);
    }
    const state = new Map<string, CurrentRow | null>();
    if (keys.length === 0) return state;
    const { rows } = await this.client.query<{
      table_id: number;
      row_key: string;
      data: string;
      buckets: string;
      lookups: string;
    }>({
      name: `ferry_load_rows_${this.schema}`,
      text: `SELECT c.table_id, c.row_key, c.data, c.buckets, c.lookups
               FROM unnest($1::int4[], $2::text[]) AS k(table_id, row_key)
               JOIN ${this.s}.current_rows c ON c.table_id = k.table_id AND c.row_key = k.row_key`,
      values: [int4Array(tableIds), textArray(keys)],
    });
    for (const row of rows) {
      state.set(rowMapKey(row.table_id, row.row_key), {
        data: JSON.parse(row.data) as CompleteRawRow,
        buckets: JSON.parse(row.buckets) as BucketEntry[],
        lookups: JSON.parse(row.lookups) as LookupEntry[],
      });
    }
    return state;
  }

  private async applyChanges(changes: readonly RowChange[], fresh: boolean): Promise<void> {
    const state = fresh ? new Map<string, CurrentRow | null>() : await this.loadCurrent(changes);
    const out = new BatchBuffers();
    for (const change of changes) this.applyOne(change, state, out);
    this.writeInBackground(out);
  }

  /**
   * Sends a batch without waiting for it, so the next batch is evaluated
   * while Postgres writes this one. Statements on one connection run in
   * order, so later reads see this write; a failure aborts the transaction
   * and is rethrown by {@link settleWrites} before any commit.
   */
  private writeInBackground(out: BatchBuffers): void {
    if (out.empty) return;
    const write = this.write(out).catch((error: unknown) => {
      this.writeError ??= error;
    });
    this.inflight.push(write);
  }

  /** Tracks a queued statement like a background write: its failure is rethrown by {@link settleWrites}. */
  private queue(query: Promise<unknown>): void {
    this.inflight.push(
      query.then(
        () => {},
        (error: unknown) => {
          this.writeError ??= error;
        },
      ),
    );
  }

  /** Waits for every batch sent so far; rethrows the first failure. */
  private async settleWrites(): Promise<void> {
    const pending = this.inflight;
    this.inflight = [];
    await Promise.all(pending);
    if (this.writeError !== null) {
      const error = this.writeError;
      this.writeError = null;
      throw error;
    }
  }

  private applyOne(change: RowChange, state: Map<string, CurrentRow | null>, out: BatchBuffers): void {
    const table = change.table;
    const k = rowMapKey(table.id, change.key);
    const previousKey =
      change.previousKey !== undefined && change.previousKey !== change.key ? change.previousKey : change.key;
    const pk = previousKey === change.key ? k : rowMapKey(table.id, previousKey);
    const old = state.get(pk) ?? null;

    if (change.kind === 'delete') {
      if (old) {
        for (const [bucket, type, id] of old.buckets)
          out.addOp(bucket, ++this.nextOpId, OP_CODE.REMOVE, type, id, null, removeChecksum(type, id));
        for (const [lookup] of old.lookups) this.setParam(out, lookup, table.id, change.key, null);
      }
      state.set(k, null);
      out.rows.set(k, { tableId: table.id, key: change.key, state: null, fresh: out.rows.get(k)?.fresh === true });
      return;
    }

    const raw = change.row ?? {};
    const data: CompleteRawRow = {};
    for (const column in raw) {
      const value = raw[column];
      data[column] = value === undefined ? (old?.data[column] ?? null) : value;
    }
    const row = change.toSqlite ? change.toSqlite(data) : (data as SqliteRow);

    // Data queries: which objects the row is in now.
    const entries: BucketEntry[] = [];
    if (table.data) {
      const evaluated = this.rules.evaluateRow(table, row);
      this.reportErrors(evaluated.errors, table, change.key);
      const index = new Map<string, number>();
      const puts: { bucket: string; type: string; id: string; json: string }[] = [];
      for (const r of evaluated.rows) {
        const objectKey = `${r.bucket}\u0000${r.table}\u0000${r.id}`;
        const put = { bucket: r.bucket, type: r.table, id: r.id, json: rowToJson(r.data) };
        const at = index.get(objectKey);
        if (at === undefined) {
          index.set(objectKey, puts.length);
          puts.push(put);
        } else {
          puts[at] = put; // two queries produced the same object: the last wins
        }
      }
      if (old) {
        for (const [bucket, type, id] of old.buckets) {
          if (!index.has(`${bucket}\u0000${type}\u0000${id}`)) {
            out.addOp(bucket, ++this.nextOpId, OP_CODE.REMOVE, type, id, null, removeChecksum(type, id));
          }
        }
      }
      for (const put of puts) {
        out.addOp(
          put.bucket,
          ++this.nextOpId,
          OP_CODE.PUT,
          put.type,
          put.id,
          put.json,
          putChecksum(put.type, put.id, put.json),
        );
        entries.push([put.bucket, put.type, put.id]);
      }
    } else if (old) {
      for (const [bucket, type, id] of old.buckets)
        out.addOp(bucket, ++this.nextOpId, OP_CODE.REMOVE, type, id, null, removeChecksum(type, id));
    }

    // Parameter queries: which lookups the row is indexed under now.
    const lookups: LookupEntry[] = [];
    if (table.parameters) {
      const evaluated = this.rules.evaluateParameterRow(table, row);
      this.reportErrors(evaluated.errors, table, change.key);
      const seen = new Set<string>();
      for (const l of evaluated.lookups) {
        if (seen.has(l.lookup)) continue; // one row, one entry per lookup
        seen.add(l.lookup);
        lookups.push([l.lookup, encodeParams(l.params)]);
      }
    }
    const oldLookups = new Map(old?.lookups ?? []);
    const newLookups = new Map(lookups);
    for (const [lookup] of oldLookups) {
      if (pk !== k || !newLookups.has(lookup)) this.setParam(out, lookup, table.id, previousKey, null);
    }
    for (const [lookup, params] of newLookups) {
      if (pk === k && oldLookups.get(lookup) === params) continue;
      this.setParam(out, lookup, table.id, change.key, params);
    }

    if (pk !== k) {
      state.set(pk, null);
      out.rows.set(pk, { tableId: table.id, key: previousKey, state: null, fresh: out.rows.get(pk)?.fresh === true });
    }
    const next: CurrentRow = { data, buckets: entries, lookups };
    // Fresh: first seen in this batch as an INSERT of a unique key (nothing
    // loaded or stored for it), or an earlier change here already was.
    const earlier = out.rows.get(k);
    const fresh = earlier ? earlier.fresh : change.kind === 'insert' && change.uniqueKeys === true && !state.has(k);
    state.set(k, next);
    out.rows.set(k, { tableId: table.id, key: change.key, state: next, fresh });
  }

  private setParam(out: BatchBuffers, lookup: string, tableId: number, key: string, params: string | null): void {
    out.params.set(`${lookup}\u0000${tableId}\u0000${key}`, { lookup, tableId, key, params });
    this.noteLookup(lookup);
  }

  private reportErrors(errors: readonly EvaluationError[], table: StoredSourceTable, key: string): void {
    if (errors.length === 0 || !this.onEvaluationError) return;
    for (const error of errors) this.onEvaluationError({ ...error, table: `${table.schema}.${table.name}`, key });
  }

  /**
   * Writes one batch: the ops and the states of rows new to storage are
   * appended with binary COPY, everything else (bucket state sums, row state
   * upserts and deletes, parameter rows) goes in one statement whose columns
   * travel as binary-format arrays (see pg-binary-array.ts). All three are
   * queued on the connection at once, in this order.
   */
  private async write(out: BatchBuffers): Promise<void> {
    if (out.empty) return;
    const s = this.s;
    const writes: Promise<unknown>[] = [];

    const n = out.opCount;
    if (n > 0) {
      const ops = new BinaryCopyBuilder(n * 256);
      for (let i = 0; i < n; i++) {
        ops
          .row(7)
          .text(out.opBucket[i]!)
          .int8(out.opId[i]!)
          .int2(out.opCode[i]!)
          .text(out.opType[i])
          .text(out.opObjectId[i])
          .text(out.opData[i])
          .int8(out.opChecksum[i]!);
      }
      writes.push(
        copyIn(
          this.client,
          `COPY ${s}.ops (bucket, op_id, op, object_type, object_id, data, checksum) FROM STDIN (FORMAT binary)`,
          ops.finish(),
        ),
      );
    }

    const bucketNames: string[] = [];
    const bucketChecksums: number[] = [];
    const bucketCounts: number[] = [];
    const bucketLast: OpId[] = [];
    for (const [bucket, b] of out.buckets) {
      bucketNames.push(bucket);
      bucketChecksums.push(b.checksum);
      bucketCounts.push(b.count);
      bucketLast.push(b.last);
    }
    const copyFresh = this.shared.copyFreshRows;
    const appended = copyFresh ? new BinaryCopyBuilder(out.rows.size * 256) : null;
    const upTable: number[] = [];
    const upKey: string[] = [];
    const upData: string[] = [];
    const upBuckets: string[] = [];
    const upLookups: string[] = [];
    const delTable: number[] = [];
    const delKey: string[] = [];
    for (const { tableId, key, state, fresh } of out.rows.values()) {
      if (state) {
        const data = JSON.stringify(state.data);
        const buckets = JSON.stringify(state.buckets);
        const lookups = state.lookups.length === 0 ? '[]' : JSON.stringify(state.lookups);
        if (fresh && appended) {
          appended.row(5).int4(tableId).text(key).text(data).text(buckets).text(lookups);
        } else {
          upTable.push(tableId);
          upKey.push(key);
          upData.push(data);
          upBuckets.push(buckets);
          upLookups.push(lookups);
        }
      } else if (!fresh) {
        delTable.push(tableId);
        delKey.push(key);
      }
    }
    if (appended && appended.rows > 0) {
      writes.push(
        copyIn(
          this.client,
          `COPY ${s}.current_rows (table_id, row_key, data, buckets, lookups) FROM STDIN (FORMAT binary)`,
          appended.finish(),
        ).catch((error: unknown) => {
          // A key that was not unique after all (a mapping collision the caller
          // did not foresee): fall back to upserts for good. The transaction is
          // lost; the replicator retries it, this time with upserts.
          if ((error as { code?: string }).code === '23505') this.shared.copyFreshRows = false;
          throw error;
        }),
      );
    }

    const pdLookup: string[] = [];
    const pdTable: number[] = [];
    const pdKey: string[] = [];
    const puLookup: string[] = [];
    const puTable: number[] = [];
    const puKey: string[] = [];
    const puParams: string[] = [];
    for (const p of out.params.values()) {
      if (p.params === null) {
        pdLookup.push(p.lookup);
        pdTable.push(p.tableId);
        pdKey.push(p.key);
      } else {
        puLookup.push(p.lookup);
        puTable.push(p.tableId);
        puKey.push(p.key);
        puParams.push(p.params);
      }
    }
    if (
      bucketNames.length > 0 ||
      upTable.length > 0 ||
      delTable.length > 0 ||
      pdLookup.length > 0 ||
      puLookup.length > 0
    ) {
      writes.push(
        this.client.query({
          name: `ferry_write_batch_${this.schema}`,
          text: `WITH
        b AS (INSERT INTO ${s}.bucket_state AS t (bucket, checksum, count, last_op_id)
              SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
              ON CONFLICT (bucket) DO UPDATE SET checksum = (t.checksum + excluded.checksum) % ${CHECKSUM_MODULUS},
                count = t.count + excluded.count, last_op_id = excluded.last_op_id),
        cu AS (INSERT INTO ${s}.current_rows AS t (table_id, row_key, data, buckets, lookups)
              SELECT * FROM unnest($5::int4[], $6::text[], $7::text[], $8::text[], $9::text[])
              ON CONFLICT (table_id, row_key) DO UPDATE SET data = excluded.data, buckets = excluded.buckets, lookups = excluded.lookups),
        cd AS (DELETE FROM ${s}.current_rows t USING unnest($10::int4[], $11::text[]) AS k(table_id, row_key)
              WHERE t.table_id = k.table_id AND t.row_key = k.row_key),
        pd AS (DELETE FROM ${s}.parameter_rows t USING unnest($12::text[], $13::int4[], $14::text[]) AS k(lookup, table_id, row_key)
              WHERE t.lookup = k.lookup AND t.table_id = k.table_id AND t.row_key = k.row_key),
        pu AS (INSERT INTO ${s}.parameter_rows AS t (lookup, table_id, row_key, params)
              SELECT * FROM unnest($15::text[], $16::int4[], $17::text[], $18::text[])
              ON CONFLICT (lookup, table_id, row_key) DO UPDATE SET params = excluded.params)
        SELECT 1`,
          values: [
            textArray(bucketNames),
            int8Array(bucketChecksums),
            int8Array(bucketCounts),
            int8Array(bucketLast),
            int4Array(upTable),
            textArray(upKey),
            textArray(upData),
            textArray(upBuckets),
            textArray(upLookups),
            int4Array(delTable),
            textArray(delKey),
            textArray(pdLookup),
            int4Array(pdTable),
            textArray(pdKey),
            textArray(puLookup),
            int4Array(puTable),
            textArray(puKey),
            textArray(puParams),
          ],
        }),
      );
    }
    await Promise.all(writes);
    this.txOps += out.opCount;
  }
}

/** The NOTIFY channel checkpoints of a storage schema are announced on. */
export function checkpointChannel(schema: string): string {
  return `${schema}_checkpoint`;
}
