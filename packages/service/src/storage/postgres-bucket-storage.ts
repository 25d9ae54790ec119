/**
 * Bucket storage in Postgres (schema `ferry` by default; see schema.ts for the
 * tables). Implements the read contract of types.ts for the sync stream, and
 * hands the single replicator a {@link BucketWriter} plus the bookkeeping it
 * needs (replication state, reset, table progress). The storage database may
 * be the source database or another one.
 */
import { FerryError, type OpId, type OplogEntry, type SqliteValue } from '@ferry/protocol';
import type { CompiledSyncRules } from '@ferry/rules';
import pg from 'pg';
import {
  BucketWriter,
  checkpointChannel,
  type BucketWriterOptions,
  type StoredSourceTable,
  type WriterSharedState,
} from './bucket-writer.js';
import { CheckpointListener } from './checkpoint-listener.js';
import { compactBuckets, type CompactOptions, type CompactResult } from './compactor.js';
import { decodeParams } from './row-state.js';
import { migrate } from './schema.js';
import { OP_NAME, quoteIdent, SCHEMA_NAME_PATTERN } from './sql.js';
import type { BucketState, BucketStorageReader, CheckpointUpdate } from './types.js';

export interface PostgresBucketStorageOptions {
  /** Connection string of the storage database. */
  connectionString: string;
  /** Schema holding the storage tables (default `ferry`). Lowercase letters, digits, `_`. */
  schema?: string;
  /** Pool size for readers (default 10). */
  maxConnections?: number;
  /** Called when the background LISTEN connection fails (it reconnects by itself). */
  onListenerError?: (error: unknown) => void;
}

/** Replication bookkeeping kept in the `state` row. */
export interface ReplicationState {
  /** Hash of the sync rules the stored data was built with. */
  rulesHash: string | null;
  slotName: string | null;
  /** The initial copy completed and a first checkpoint was published. */
  snapshotDone: boolean;
  /** Highest op id ever allocated. */
  lastOpId: OpId;
  /** Latest published checkpoint, null before the initial copy completed. */
  checkpoint: OpId | null;
  /** Commit LSN of the last source transaction stored (null right after the initial copy). */
  commitLsn: bigint | null;
  /** Position the slot may confirm (end of the last stored commit, or the snapshot's consistent point). */
  endLsn: bigint | null;
  /** Source commit time of the latest stored transaction. */
  commitTime: Date | null;
}

/** A table the rules read, as registered by {@link PostgresBucketStorage.resetForSnapshot}. */
export interface SourceTableRegistration {
  schema: string;
  name: string;
  data: boolean;
  parameters: boolean;
}

export interface StoredSourceTableStatus extends StoredSourceTable {
  snapshotDone: boolean;
  rowsCopied: number;
}

export class PostgresBucketStorage implements BucketStorageReader, AsyncDisposable {
  readonly schema: string;
  readonly connectionString: string;
  private readonly s: string;
  private readonly pool: pg.Pool;
  private readonly listener: CheckpointListener;
  /** Carried from one writer to the next (a session's retry learns from the failure before it). */
  private readonly writerState: WriterSharedState = { copyFreshRows: true };

  constructor(options: PostgresBucketStorageOptions) {
    this.schema = options.schema ?? 'ferry';
    if (!SCHEMA_NAME_PATTERN.test(this.schema)) {
      throw new FerryError(
        'FERRY_S1002',
        `storage schema ${JSON.stringify(this.schema)} must match ${SCHEMA_NAME_PATTERN}`,
      );
    }
    this.connectionString = options.connectionString;
    this.s = quoteIdent(this.schema);
    this.pool = new pg.Pool({ connectionString: options.connectionString, max: options.maxConnections ?? 10 });
    // Idle pool clients that lose their server (restart) must not crash the process.
    this.pool.on('error', () => {});
    this.listener = new CheckpointListener({
      connectionString: options.connectionString,
      schema: this.schema,
      channel: checkpointChannel(this.schema),
      ...(options.onListenerError ? { onError: options.onListenerError } : {}),
    });
  }

  /** Creates or upgrades the storage tables. Idempotent; safe to run from several processes at once. */
  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await migrate(client, this.schema);
    } finally {
      client.release();
    }
  }

  // ── read contract ──────────────────────────────────────────────────────

  async getLatestCheckpoint(): Promise<OpId | null> {
    const { rows } = await this.query<{ checkpoint: string | null }>(
      `SELECT checkpoint FROM ${this.s}.state WHERE id = 1`,
    );
    const cp = rows[0]?.checkpoint;
    return cp == null ? null : BigInt(cp);
  }

  async getCheckpointState(
    buckets: readonly string[],
  ): Promise<{ checkpoint: OpId; states: Map<string, BucketState> }> {
    // One statement: the checkpoint and the bucket states come from one snapshot.
    const { rows } = await this.query<{
      checkpoint: string | null;
      bucket: string | null;
      checksum: string | null;
      count: string | null;
      last_op_id: string | null;
    }>(
      `SELECT s.checkpoint, b.bucket, b.checksum, b.count, b.last_op_id
         FROM ${this.s}.state s LEFT JOIN ${this.s}.bucket_state b ON b.bucket = ANY($1::text[])
        WHERE s.id = 1`,
      [buckets],
    );
    const cp = rows[0]?.checkpoint;
    if (cp == null)
      throw new FerryError('FERRY_S4006', 'bucket storage has no checkpoint yet: the initial copy is not complete');
    const states = new Map<string, BucketState>();
    for (const bucket of buckets) states.set(bucket, { checksum: 0, count: 0, lastOpId: 0n });
    for (const row of rows) {
      if (row.bucket === null) continue;
      states.set(row.bucket, {
        checksum: Number(row.checksum),
        count: Number(row.count),
        lastOpId: BigInt(row.last_op_id!),
      });
    }
    return { checkpoint: BigInt(cp), states };
  }

  async getParameterRows(lookups: readonly string[]): Promise<Map<string, Record<string, SqliteValue>[]>> {
    const result = new Map<string, Record<string, SqliteValue>[]>();
    if (lookups.length === 0) return result;
    const { rows } = await this.query<{ lookup: string; params: string }>(
      `SELECT lookup, params FROM ${this.s}.parameter_rows WHERE lookup = ANY($1::text[]) ORDER BY lookup, table_id, row_key`,
      [lookups],
    );
    for (const row of rows) {
      let list = result.get(row.lookup);
      if (!list) result.set(row.lookup, (list = []));
      list.push(decodeParams(row.params));
    }
    return result;
  }

  async readBucketOps(bucket: string, after: OpId, upTo: OpId, limit: number): Promise<OplogEntry[]> {
    if (limit <= 0 || upTo <= after) return [];
    const { rows } = await this.query<{
      op_id: string;
      op: number;
      object_type: string | null;
      object_id: string | null;
      subkey: string | null;
      data: string | null;
      checksum: string;
    }>({
      name: `ferry_read_ops_${this.schema}`,
      text: `SELECT op_id, op, object_type, object_id, subkey, data, checksum FROM ${this.s}.ops
              WHERE bucket = $1 AND op_id > $2::int8 AND op_id <= $3::int8 ORDER BY op_id LIMIT $4`,
      values: [bucket, after.toString(), upTo.toString(), limit],
    });
    return rows.map((row) => {
      const op = OP_NAME[row.op];
      if (op === 'PUT' || op === 'REMOVE') {
        return {
          op_id: row.op_id,
          op,
          object_type: row.object_type,
          object_id: row.object_id,
          subkey: row.subkey,
          ...(op === 'PUT' ? { data: row.data } : {}),
          checksum: Number(row.checksum),
        };
      }
      if (op === 'MOVE' || op === 'CLEAR') return { op_id: row.op_id, op, checksum: Number(row.checksum) };
      throw new FerryError('FERRY_S9001', `unknown op code ${row.op} in bucket ${bucket}`);
    });
  }

  subscribe(listener: (update: CheckpointUpdate) => void): () => void {
    return this.listener.subscribe(listener);
  }

  async getWriteCheckpoint(userId: string, clientId: string): Promise<bigint | null> {
    const { rows } = await this.query<{ id: string | null }>(
      `SELECT max(w.id) AS id FROM ${this.s}.write_checkpoints w, ${this.s}.state s
        WHERE s.id = 1 AND w.user_id = $1 AND w.client_id = $2 AND w.lsn <= s.end_lsn`,
      [userId, clientId],
    );
    const id = rows[0]?.id;
    return id == null ? null : BigInt(id);
  }

  /**
   * Records a write checkpoint of (userId, clientId) waiting for the source
   * WAL position `lsn` and returns its id. If replication already covers
   * `lsn`, listeners are notified at once (in every process).
   */
  async createWriteCheckpoint(userId: string, clientId: string, lsn: bigint): Promise<bigint> {
    const { rows } = await this.query<{ id: string }>(
      `WITH w AS (
         INSERT INTO ${this.s}.write_checkpoints (user_id, client_id, lsn) VALUES ($1, $2, $3::int8) RETURNING id, lsn)
       SELECT w.id, CASE WHEN w.lsn <= s.end_lsn THEN pg_notify($4, '{"write_checkpoint":true}') END AS notified
         FROM w, ${this.s}.state s WHERE s.id = 1`,
      [userId, clientId, lsn.toString(), checkpointChannel(this.schema)],
    );
    return BigInt(rows[0]!.id);
  }

  /** Resolves when the shared LISTEN connection is up (subscribe starts it lazily). */
  async subscriptionReady(): Promise<void> {
    await this.listener.ready();
  }

  // ── replication bookkeeping ────────────────────────────────────────────

  async getReplicationState(): Promise<ReplicationState> {
    const { rows } = await this.query<Record<string, string | boolean | Date | null>>(
      `SELECT rules_hash, slot_name, snapshot_done, last_op_id, checkpoint, commit_lsn, end_lsn, commit_time FROM ${this.s}.state WHERE id = 1`,
    );
    const r = rows[0];
    if (!r) throw new FerryError('FERRY_S5001', `storage schema ${this.schema} is not migrated`);
    const big = (v: unknown) => (v == null ? null : BigInt(v as string));
    return {
      rulesHash: (r['rules_hash'] as string | null) ?? null,
      slotName: (r['slot_name'] as string | null) ?? null,
      snapshotDone: r['snapshot_done'] === true,
      lastOpId: big(r['last_op_id']) ?? 0n,
      checkpoint: big(r['checkpoint']),
      commitLsn: big(r['commit_lsn']),
      endLsn: big(r['end_lsn']),
      commitTime: (r['commit_time'] as Date | null) ?? null,
    };
  }

  /** The registered source tables with their copy progress. */
  async getSourceTables(): Promise<StoredSourceTableStatus[]> {
    const { rows } = await this.query<{
      id: number;
      schema_name: string;
      table_name: string;
      data: boolean;
      parameters: boolean;
      snapshot_done: boolean;
      rows_copied: string;
    }>(
      `SELECT id, schema_name, table_name, data, parameters, snapshot_done, rows_copied FROM ${this.s}.source_tables ORDER BY id`,
    );
    return rows.map((r) => ({
      id: r.id,
      schema: r.schema_name,
      name: r.table_name,
      data: r.data,
      parameters: r.parameters,
      snapshotDone: r.snapshot_done,
      rowsCopied: Number(r.rows_copied),
    }));
  }

  /**
   * Empties the storage for a fresh initial copy (new rules, lost slot, or an
   * incomplete copy) and registers the tables to copy. The op id counter keeps
   * increasing, so clients holding old data see checksum mismatches and
   * re-download rather than silently keeping stale rows. Readers see no
   * checkpoint until {@link BucketWriter.completeSnapshot}.
   */
  async resetForSnapshot(options: {
    rulesHash: string;
    slotName: string;
    tables: readonly SourceTableRegistration[];
  }): Promise<StoredSourceTable[]> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `TRUNCATE ${this.s}.ops, ${this.s}.bucket_state, ${this.s}.current_rows, ${this.s}.parameter_rows, ${this.s}.checkpoints, ${this.s}.source_tables`,
      );
      await client.query(
        `UPDATE ${this.s}.state SET rules_hash = $1, slot_name = $2, snapshot_done = false, checkpoint = NULL,
           commit_lsn = NULL, end_lsn = NULL, commit_time = NULL, updated_at = now() WHERE id = 1`,
        [options.rulesHash, options.slotName],
      );
      const tables: StoredSourceTable[] = [];
      for (const t of options.tables) {
        const { rows } = await client.query<{ id: number }>(
          `INSERT INTO ${this.s}.source_tables (schema_name, table_name, data, parameters) VALUES ($1, $2, $3, $4) RETURNING id`,
          [t.schema, t.name, t.data, t.parameters],
        );
        tables.push({ id: rows[0]!.id, schema: t.schema, name: t.name, data: t.data, parameters: t.parameters });
      }
      await client.query('COMMIT');
      return tables;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * Opens the replicator's writer on a dedicated connection. Only one writer
   * may exist at a time across all processes: the caller must hold the
   * replication advisory lock.
   */
  async openWriter(rules: CompiledSyncRules, options: BucketWriterOptions = {}): Promise<BucketWriter> {
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'ferry-writer' });
    client.on('error', () => {}); // surfaced by the failing query instead
    await client.connect();
    try {
      const state = await this.getReplicationState();
      return new BucketWriter(
        client,
        this.schema,
        rules,
        { lastOpId: state.lastOpId, published: state.snapshotDone },
        options,
        this.writerState,
      );
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
  }

  /**
   * Compacts bucket logs up to the latest checkpoint: superseded PUT/REMOVE
   * ops become MOVE (same op id and checksum, no data) and, unless
   * `clear: false`, a prefix without live PUTs collapses into one CLEAR whose
   * checksum is the sum of what it replaced. Bucket checksums at every
   * checkpoint at or after the compacted range are unchanged. Safe to run
   * while the replicator writes.
   */
  async compact(options: CompactOptions = {}): Promise<CompactResult> {
    const client = await this.pool.connect();
    try {
      return await compactBuckets(client, this.schema, options);
    } finally {
      client.release();
    }
  }

  /** Closes the pool and the LISTEN connection. */
  async close(): Promise<void> {
    await this.listener.close();
    await this.pool.end().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async query<R extends pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return typeof text === 'string' ? await this.pool.query<R>(text, values) : await this.pool.query<R>(text);
    } catch (error) {
      if (FerryError.is(error)) throw error;
      const code = (error as { code?: string }).code;
      // Connection-level failures are "storage unavailable"; SQL errors are bugs and pass through.
      const sqlState = code !== undefined && /^[0-9A-Z]{5}$/.test(code);
      if (!sqlState || code.startsWith('08') || code.startsWith('57P') || code === '53300') {
        throw new FerryError('FERRY_S5001', `bucket storage unavailable: ${(error as Error).message}`, {
          cause: error,
        });
      }
      throw error;
    }
  }
}
