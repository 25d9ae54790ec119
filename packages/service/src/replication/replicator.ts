/**
 * The replicator: Postgres logical replication (pgoutput) → sync rules →
 * bucket storage. One per storage schema across all processes, elected with a
 * session-level advisory lock on the storage database.
 *
 * Session (repeated with backoff after any failure, until stopped):
 * 1. Check wal_level, migrate storage, describe the rules' tables (missing →
 *    FERRY_S3002, no replica identity → FERRY_S3003), create/update the
 *    publication.
 * 2. If storage has a complete initial copy for these rules and the slot
 *    exists, resume streaming from the slot. Otherwise start over: drop the
 *    slot, empty storage, create the slot exporting its snapshot, copy every
 *    table from that snapshot, publish the first checkpoint, and stream from
 *    the slot's consistent point.
 * 3. Stream: each source transaction's changes go into the open storage
 *    transaction as they arrive (bounded batches); at a source commit the
 *    storage transaction is committed (several small source transactions may
 *    share one when the stream is busy), which publishes a checkpoint. Only
 *    after that commit returns is the commit's end LSN confirmed to the slot.
 *
 * Correctness notes:
 * - A source transaction whose commit LSN is <= the last one stored is
 *   skipped (it was stored but its confirmation may not have reached the
 *   server before a crash), so nothing is applied twice.
 * - While idle (no open source or storage transaction), the keepalive's WAL
 *   position is confirmed: everything before it has been received and stored.
 */
import { FerryError, type OpId } from '@ferry/protocol';
import type { CompiledSyncRules, EvaluationError } from '@ferry/rules';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { BucketWriter, BucketWriterOptions, StoredSourceTable } from '../storage/bucket-writer.js';
import type { PostgresBucketStorage } from '../storage/postgres-bucket-storage.js';
import { decodeReplicationCopyData } from './copy-both.js';
import { copyInitialSnapshot, type SnapshotProgress } from './initial-copy.js';
import { formatLsn, pgMicrosToUnixMs, type Lsn } from './lsn.js';
import { decodePgoutput, type PgoutputMessage, type TupleData } from './pgoutput-decoder.js';
import { RelationMapper } from './relation-mapper.js';
import { ReplicationConnection } from './replication-connection.js';
import {
  checkWalLevel,
  defaultReplicationNames,
  describeSourceTables,
  dropSlot,
  ensurePublication,
  getSlot,
  serverVersionNum,
} from './source-schema.js';
import { SOURCE_SESSION_OPTIONS, TypeRegistry } from './type-mapping.js';

export type ReplicatorState =
  'idle' | 'waiting-for-lock' | 'starting' | 'snapshot' | 'streaming' | 'backoff' | 'stopped';

export interface ReplicatorOptions {
  /** Connection string of the source database. */
  sourceConnectionString: string;
  storage: PostgresBucketStorage;
  rules: CompiledSyncRules;
  /** Default: `ferry_<schema>_<database>`. Lowercase letters, digits and `_`. */
  slotName?: string;
  /** Default: `ferry_<schema>`. */
  publicationName?: string;
  /** Rows per snapshot batch (default 10,000). */
  snapshotBatchSize?: number;
  /** Retry interval while another process holds the lock (default 500 ms). */
  lockRetryMs?: number;
  /** First and maximum delay between failed sessions (default 500 ms, 10 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Standby status interval (default 10 s; the server's wal_sender_timeout is 60 s by default). */
  statusIntervalMs?: number;
  /** Group commit: commit the storage transaction once it holds this many ops (default 20,000)… */
  groupCommitMaxOps?: number;
  /** …or has been open this long (default 100 ms), even if more data is waiting. */
  groupCommitMaxMs?: number;
  /** Options for the bucket writer (batch sizes). */
  writer?: Omit<BucketWriterOptions, 'onEvaluationError'>;
}

/** Events a Replicator emits; the metrics layer binds to these. */
export interface ReplicatorEvents {
  /** Lifecycle state changed. */
  state: [state: ReplicatorState];
  /** Ops were durably stored (snapshot batches and streamed transactions). */
  opsStored: [event: { count: number; phase: 'snapshot' | 'streaming' }];
  /** A checkpoint was published. `commitTime` is the source commit time (null for the snapshot checkpoint). */
  checkpoint: [event: { checkpoint: OpId; lsn: string | null; commitTime: Date | null; lagMs: number | null }];
  /** Initial copy progress, per table. */
  snapshotProgress: [event: SnapshotProgress];
  /** A row could not be evaluated by the rules (the row is skipped for that query). */
  evaluationError: [event: EvaluationError & { table: string; key: string }];
  /** A session failed; the replicator retries after `retryInMs`. Never emitted as 'error', so it cannot crash the process. */
  replicationError: [event: { error: unknown; phase: ReplicatorState; retryInMs: number }];
}

const QUEUE_HIGH_WATER = 2000;
const QUEUE_LOW_WATER = 200;

class SessionAborted extends Error {
  override readonly name = 'SessionAborted';
}

/** pg type parsers that keep every value as Postgres' text output. */
const RAW_TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export class Replicator extends EventEmitter<ReplicatorEvents> {
  private readonly options: ReplicatorOptions;
  private readonly storage: PostgresBucketStorage;
  private readonly rules: CompiledSyncRules;
  private readonly types = new TypeRegistry();
  private currentState: ReplicatorState = 'idle';
  private stopping = false;
  private running: Promise<void> | null = null;
  private lockClient: pg.Client | null = null;
  private wakeUp: (() => void) | null = null;
  private sessionAbort: unknown = null;
  private resolvedNames: { slotName: string; publicationName: string } | null = null;

  constructor(options: ReplicatorOptions) {
    super();
    this.options = options;
    this.storage = options.storage;
    this.rules = options.rules;
  }

  get state(): ReplicatorState {
    return this.currentState;
  }

  /** Slot and publication names in use (known once a session started). */
  get replicationNames(): { slotName: string; publicationName: string } | null {
    return this.resolvedNames;
  }

  /** Runs until {@link stop}; never rejects because of replication failures (they are retried and emitted). */
  run(): Promise<void> {
    if (this.running) throw new FerryError('FERRY_S9001', 'Replicator.run() called twice');
    this.running = this.loop();
    return this.running;
  }

  /** Stops replication: commits what is complete, confirms it, releases the lock. Resolves when run() has resolved. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  // ── lifecycle ────────────────────────────────────────────────────────────

  private setState(state: ReplicatorState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.emit('state', state);
  }

  private wake(): void {
    const wake = this.wakeUp;
    this.wakeUp = null;
    wake?.();
  }

  /** Sleeps up to `ms`, waking early on stop or session abort. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = null;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    const minBackoff = this.options.minBackoffMs ?? 500;
    const maxBackoff = this.options.maxBackoffMs ?? 10_000;
    let backoff = minBackoff;
    try {
      while (!this.stopping) {
        try {
          const locked = await this.acquireLock();
          if (!locked) break;
          await this.session();
          backoff = minBackoff;
        } catch (error) {
          if (this.stopping) break;
          const phase = this.currentState;
          this.emit('replicationError', { error, phase, retryInMs: backoff });
          this.setState('backoff');
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, maxBackoff);
        }
      }
    } finally {
      await this.releaseLock();
      this.setState('stopped');
    }
  }

  /** Takes the session-level advisory lock; false if stopped while waiting. */
  private async acquireLock(): Promise<boolean> {
    while (!this.stopping) {
      if (!this.lockClient) {
        const client = new pg.Client({
          connectionString: this.storage.connectionString,
          application_name: 'ferry-replicator-lock',
        });
        const lost = (error?: unknown) => {
          if (this.lockClient !== client) return;
          this.lockClient = null;
          this.abortSession(new FerryError('FERRY_S5001', 'lost the replication lock connection', { cause: error }));
        };
        client.on('error', lost);
        client.on('end', () => lost());
        await client.connect();
        this.lockClient = client;
      }
      const { rows } = await this.lockClient.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked',
        [`ferry-replicator:${this.storage.schema}`],
      );
      if (rows[0]?.locked === true) {
        this.sessionAbort = null;
        return true;
      }
      this.setState('waiting-for-lock');
      await this.sleep(this.options.lockRetryMs ?? 500);
    }
    return false;
  }

  private async releaseLock(): Promise<void> {
    const client = this.lockClient;
    this.lockClient = null;
    if (!client) return;
    // Ending the session releases its advisory locks.
    await client.end().catch(() => {});
  }

  private abortSession(reason: unknown): void {
    if (this.sessionAbort === null) this.sessionAbort = reason;
    this.wake();
  }

  private checkAborted(): void {
    if (this.sessionAbort !== null) throw this.sessionAbort;
    if (this.stopping) throw new SessionAborted('stopping');
  }

  // ── one session ──────────────────────────────────────────────────────────

  private async session(): Promise<void> {
    this.setState('starting');
    const source = new pg.Client({
      connectionString: this.options.sourceConnectionString,
      options: SOURCE_SESSION_OPTIONS,
      types: RAW_TEXT_TYPES,
      application_name: 'ferry-replicator-meta',
    });
    source.on('error', (error) =>
      this.abortSession(new FerryError('FERRY_S3005', `source connection failed: ${error.message}`, { cause: error })),
    );
    let writer: BucketWriter | null = null;
    let replication: ReplicationConnection | null = null;
    let copyClient: pg.Client | null = null;
    try {
      await source.connect();
      await checkWalLevel(source);
      const version = await serverVersionNum(source);
      const { rows: dbRows } = await source.query<{ db: string }>('SELECT current_database() AS db');
      const defaults = defaultReplicationNames(dbRows[0]!.db, this.storage.schema);
      const slotName = this.options.slotName ?? defaults.slotName;
      const publicationName = this.options.publicationName ?? defaults.publicationName;
      this.resolvedNames = { slotName, publicationName };

      await this.storage.migrate();
      const uses = this.rules.sourceTables;
      const infos = await describeSourceTables(
        source,
        uses.map((u) => u.table),
      );
      await this.types.load(
        (text, values) => source.query(text, values).then((r) => r.rows as Record<string, unknown>[]),
        infos.flatMap((i) => i.columns.map((c) => c.typeOid)),
      );
      await ensurePublication(source, publicationName, infos);
      this.checkAborted();

      const state = await this.storage.getReplicationState();
      const slot = await getSlot(source, slotName);
      const resumable =
        state.snapshotDone &&
        state.rulesHash === this.rules.hash &&
        state.slotName === slotName &&
        slot !== null &&
        !slot.lost;

      writer = await this.storage.openWriter(this.rules, {
        ...this.options.writer,
        onEvaluationError: (event) => this.emit('evaluationError', event),
      });
      replication = await ReplicationConnection.open(this.options.sourceConnectionString);
      replication.onFailure((error) => this.abortSession(error));

      let tables: StoredSourceTable[];
      let startLsn: Lsn;
      let skipUpTo: Lsn | null;
      if (resumable) {
        tables = (await this.storage.getSourceTables()).map(({ id, schema, name, data, parameters }) => ({
          id,
          schema,
          name,
          data,
          parameters,
        }));
        startLsn = state.endLsn ?? 0n;
        skipUpTo = state.commitLsn;
      } else {
        this.setState('snapshot');
        if (slot) {
          if (state.snapshotDone && (slot.lost || state.slotName !== slotName)) {
            this.emit('replicationError', {
              error: new FerryError('FERRY_S3004', `replication slot ${slotName} was lost; copying everything again`),
              phase: 'snapshot',
              retryInMs: 0,
            });
          }
          await dropSlot(source, slotName);
        } else if (state.snapshotDone && state.rulesHash === this.rules.hash) {
          this.emit('replicationError', {
            error: new FerryError('FERRY_S3004', `replication slot ${slotName} is gone; copying everything again`),
            phase: 'snapshot',
            retryInMs: 0,
          });
        }
        tables = await this.storage.resetForSnapshot({
          rulesHash: this.rules.hash,
          slotName,
          tables: uses.map((u) => ({
            schema: u.table.schema,
            name: u.table.name,
            data: u.data,
            parameters: u.parameters,
          })),
        });
        const created = await replication.createSlot(slotName, { serverVersion: version });
        if (!created.snapshotName)
          throw new FerryError('FERRY_S3005', 'the server did not export a snapshot for the new slot');
        copyClient = new pg.Client({
          connectionString: this.options.sourceConnectionString,
          options: SOURCE_SESSION_OPTIONS,
          types: RAW_TEXT_TYPES,
          application_name: 'ferry-replicator-copy',
        });
        copyClient.on('error', (error) =>
          this.abortSession(
            new FerryError('FERRY_S3005', `snapshot connection failed: ${error.message}`, { cause: error }),
          ),
        );
        await copyClient.connect();
        const byName = new Map(infos.map((i) => [`${i.schema}.${i.name}`, i]));
        await copyInitialSnapshot({
          client: copyClient,
          snapshotName: created.snapshotName,
          tables: tables.map((stored) => ({ stored, info: byName.get(`${stored.schema}.${stored.name}`)! })),
          writer,
          types: this.types,
          batchSize: this.options.snapshotBatchSize ?? 10_000,
          onProgress: (progress) => this.emit('snapshotProgress', progress),
          onOpsStored: (count) => this.emit('opsStored', { count, phase: 'snapshot' }),
          checkAborted: () => this.checkAborted(),
        });
        await copyClient.end().catch(() => {});
        copyClient = null;
        const checkpoint = await writer.completeSnapshot(created.consistentPoint);
        this.emit('checkpoint', { checkpoint, lsn: formatLsn(created.consistentPoint), commitTime: null, lagMs: null });
        startLsn = created.consistentPoint;
        skipUpTo = null;
      }
      this.checkAborted();
      await this.stream({ source, writer, replication, tables, slotName, publicationName, startLsn, skipUpTo });
    } catch (error) {
      if (error instanceof SessionAborted && this.stopping) return;
      throw error;
    } finally {
      if (writer) {
        await writer.rollback().catch(() => {});
        await writer.close();
      }
      await replication?.close();
      await copyClient?.end().catch(() => {});
      source.removeAllListeners('error');
      source.on('error', () => {});
      await source.end().catch(() => {});
    }
  }

  private async stream(ctx: {
    source: pg.Client;
    writer: BucketWriter;
    replication: ReplicationConnection;
    tables: StoredSourceTable[];
    slotName: string;
    publicationName: string;
    startLsn: Lsn;
    skipUpTo: Lsn | null;
  }): Promise<void> {
    const { source, writer, replication } = ctx;
    const maxOps = this.options.groupCommitMaxOps ?? 20_000;
    const maxMs = this.options.groupCommitMaxMs ?? 100;
    const tableByName = new Map(ctx.tables.map((t) => [`${t.schema}.${t.name}`, t]));
    const relations = new Map<number, { table: StoredSourceTable; mapper: RelationMapper; full: boolean } | null>();

    let queue: (Buffer | undefined)[] = [];
    let head = 0;
    let paused = false;
    let confirmed = ctx.startLsn;
    let skipUpTo = ctx.skipUpTo;
    let inSourceTx = false;
    let skipTx = false;
    let streamEnded: unknown = null;
    let lastStatusAt = 0;

    const sendStatus = (replyRequested = false) => {
      lastStatusAt = Date.now();
      replication.sendStatus({ written: confirmed, flushed: confirmed, applied: confirmed, replyRequested });
    };

    const commitStorage = async () => {
      const result = await writer.commit();
      // Durable now: only from here may the slot move past these commits.
      if (result.sourceCommit) {
        if (result.sourceCommit.endLsn > confirmed) confirmed = result.sourceCommit.endLsn;
        skipUpTo = null;
      }
      if (result.ops > 0) this.emit('opsStored', { count: result.ops, phase: 'streaming' });
      if (result.checkpoint !== null) {
        const commitTime = result.sourceCommit?.commitTime ?? null;
        this.emit('checkpoint', {
          checkpoint: result.checkpoint,
          lsn: result.sourceCommit ? formatLsn(result.sourceCommit.endLsn) : null,
          commitTime,
          lagMs: commitTime ? Math.max(0, Date.now() - commitTime.getTime()) : null,
        });
      }
      sendStatus();
    };

    const relationFor = (relationId: number) => {
      const rel = relations.get(relationId);
      if (rel === undefined)
        throw new FerryError('FERRY_S3005', `change for relation ${relationId} arrived before its Relation message`);
      return rel;
    };

    const handle = async (msg: PgoutputMessage): Promise<void> => {
      switch (msg.tag) {
        case 'begin': {
          inSourceTx = true;
          skipTx = skipUpTo !== null && msg.finalLsn <= skipUpTo;
          if (skipTx) return;
          if (
            writer.inTransaction &&
            writer.hasSourceCommit &&
            (writer.transactionOps >= maxOps || Date.now() - writer.transactionStartedAt >= maxMs)
          ) {
            await commitStorage();
          }
          await writer.begin();
          return;
        }
        case 'commit': {
          inSourceTx = false;
          if (skipTx) {
            skipTx = false;
            if (!writer.inTransaction && msg.endLsn > confirmed) confirmed = msg.endLsn;
            return;
          }
          writer.sourceCommitted({
            commitLsn: msg.commitLsn,
            endLsn: msg.endLsn,
            commitTime: new Date(pgMicrosToUnixMs(msg.commitTime)),
          });
          const backlog = head < queue.length;
          if (!backlog || writer.transactionOps >= maxOps || Date.now() - writer.transactionStartedAt >= maxMs)
            await commitStorage();
          return;
        }
        case 'relation': {
          const table = tableByName.get(`${msg.schema}.${msg.name}`);
          if (!table) {
            relations.set(msg.relationId, null); // not a rules table (e.g. renamed); its changes are ignored
            return;
          }
          const missing = this.types.missing(msg.columns.map((c) => c.typeOid));
          if (missing.length > 0) {
            await this.types.load(
              (text, values) => source.query(text, values).then((r) => r.rows as Record<string, unknown>[]),
              missing,
            );
          }
          relations.set(msg.relationId, {
            table,
            mapper: new RelationMapper(msg.columns, this.types, msg.replicaIdentity),
            full: msg.replicaIdentity === 'f',
          });
          return;
        }
        case 'insert': {
          if (skipTx) return;
          const rel = relationFor(msg.relationId);
          if (!rel) return;
          const change = {
            kind: 'insert' as const,
            table: rel.table,
            key: rel.mapper.keyOf(msg.new),
            row: rel.mapper.rawRow(msg.new),
            toSqlite: rel.mapper.toSqlite,
            uniqueKeys: rel.mapper.uniqueKeys,
          };
          if (writer.add(change)) await writer.flush();
          return;
        }
        case 'update': {
          if (skipTx) return;
          const rel = relationFor(msg.relationId);
          if (!rel) return;
          let tuple: TupleData = msg.new;
          if (msg.old) {
            // REPLICA IDENTITY FULL: the old row is complete; use it for unchanged TOAST values so the key is right.
            tuple = msg.new.map((v, i) => (v === undefined ? msg.old![i] : v));
          }
          const oldTuple = msg.key ?? msg.old;
          const key = rel.mapper.keyOf(tuple);
          const change = {
            kind: 'update' as const,
            table: rel.table,
            key,
            ...(oldTuple ? { previousKey: rel.mapper.keyOf(oldTuple) } : {}),
            row: rel.mapper.rawRow(tuple),
            toSqlite: rel.mapper.toSqlite,
          };
          if (writer.add(change)) await writer.flush();
          return;
        }
        case 'delete': {
          if (skipTx) return;
          const rel = relationFor(msg.relationId);
          if (!rel) return;
          const tuple = msg.key ?? msg.old;
          if (!tuple) return;
          if (writer.add({ kind: 'delete', table: rel.table, key: rel.mapper.keyOf(tuple) })) await writer.flush();
          return;
        }
        case 'truncate': {
          if (skipTx) return;
          const tables = msg.relationIds
            .map((id) => relationFor(id)?.table)
            .filter((t): t is StoredSourceTable => t !== undefined);
          await writer.truncate(tables);
          return;
        }
        case 'type':
        case 'origin':
        case 'message':
          return;
      }
    };

    this.setState('streaming');
    const streamDone = replication
      .startReplication({
        slotName: ctx.slotName,
        startLsn: ctx.startLsn,
        publicationName: ctx.publicationName,
        onData: (payload) => {
          queue.push(payload);
          if (!paused && queue.length - head > QUEUE_HIGH_WATER) {
            paused = true;
            replication.pause();
          }
          this.wake();
        },
      })
      .then(
        () => {
          streamEnded = streamEnded ?? new FerryError('FERRY_S3005', 'replication stream ended');
          this.wake();
        },
        (error: unknown) => {
          streamEnded = classifyStreamError(error, ctx.slotName);
          this.wake();
        },
      );

    const statusInterval = this.options.statusIntervalMs ?? 10_000;
    const timer = setInterval(
      () => {
        if (Date.now() - lastStatusAt >= statusInterval / 2) sendStatus();
      },
      Math.max(100, Math.floor(statusInterval / 2)),
    );
    timer.unref?.();

    try {
      for (;;) {
        if (this.stopping) break;
        if (this.sessionAbort !== null) throw this.sessionAbort;
        if (head >= queue.length) {
          if (streamEnded !== null) throw streamEnded;
          queue = [];
          head = 0;
          if (paused) {
            paused = false;
            replication.resume();
          }
          if (writer.inTransaction && !inSourceTx && writer.hasSourceCommit) {
            await commitStorage();
            continue;
          }
          await this.sleep(statusInterval);
          continue;
        }
        const payload = queue[head]!;
        queue[head++] = undefined;
        if (paused && queue.length - head < QUEUE_LOW_WATER) {
          paused = false;
          replication.resume();
        }
        const message = decodeReplicationCopyData(payload);
        if (message.tag === 'keepalive') {
          if (!inSourceTx && !writer.inTransaction && message.walEnd > confirmed) {
            confirmed = message.walEnd;
            // Idle: everything before walEnd is stored; pending write checkpoints up to it are covered.
            await writer.advanceIdle(confirmed);
          }
          if (message.replyRequested) sendStatus();
          continue;
        }
        await handle(decodePgoutput(message.data));
      }
      // Stopping: keep what is complete, drop a partial source transaction (it is streamed again).
      if (writer.inTransaction) {
        if (!inSourceTx && writer.hasSourceCommit) await commitStorage();
        else await writer.rollback();
      }
      sendStatus();
    } finally {
      clearInterval(timer);
      await replication.close();
      await streamDone;
    }
  }
}

function classifyStreamError(error: unknown, slotName: string): unknown {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  if (
    code === '42704' ||
    /replication slot .* does not exist/.test(message) ||
    /can no longer get changes from replication slot/.test(message)
  ) {
    return new FerryError('FERRY_S3004', `replication slot ${slotName} is lost: ${message}`, { cause: error });
  }
  if (FerryError.is(error)) return error;
  return new FerryError('FERRY_S3005', `replication stream failed: ${message}`, { cause: error });
}
