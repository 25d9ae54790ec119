/**
 * Write checkpoints (PowerSync compatible): after uploading, a client asks for
 * one; it is tied to the source database's WAL position at that moment. Once
 * replication has stored everything up to that position, the sync stream
 * echoes the id (`write_checkpoint`) on that user + client's next checkpoint,
 * so the client knows the server state includes its uploads.
 */
import { FerryError } from '@ferry/protocol';
import pg from 'pg';
import type { PostgresBucketStorage } from '../storage/postgres-bucket-storage.js';

/** What the HTTP API needs: create a write checkpoint for a user + client. */
export interface WriteCheckpointCreator {
  create(userId: string, clientId: string): Promise<bigint>;
}

/** Longest accepted client id. */
export const MAX_CLIENT_ID_LENGTH = 256;

export interface WriteCheckpointsOptions {
  /** Connection string of the SOURCE database (the one replicated). */
  sourceConnectionString: string;
  storage: Pick<PostgresBucketStorage, 'createWriteCheckpoint'>;
  /** Source pool size (default 2). */
  maxConnections?: number;
}

/**
 * Creates write checkpoints: reads `pg_current_wal_lsn()` on the source,
 * records (user, client, lsn) in storage, then emits a tiny non-transactional
 * logical message so an idle source still produces WAL past that position and
 * the replicator's next keepalive covers it.
 */
export class WriteCheckpoints implements WriteCheckpointCreator {
  private readonly pool: pg.Pool;
  private readonly storage: WriteCheckpointsOptions['storage'];
  private emitMessages = true;

  constructor(options: WriteCheckpointsOptions) {
    this.storage = options.storage;
    this.pool = new pg.Pool({
      connectionString: options.sourceConnectionString,
      max: options.maxConnections ?? 2,
      application_name: 'ferry-write-checkpoints',
    });
    this.pool.on('error', () => {});
  }

  async create(userId: string, clientId: string): Promise<bigint> {
    let lsn: bigint;
    try {
      const { rows } = await this.pool.query<{ lsn: string }>(
        `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8 AS lsn`,
      );
      lsn = BigInt(rows[0]!.lsn);
    } catch (error) {
      throw new FerryError('FERRY_S5001', `source database unavailable: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const id = await this.storage.createWriteCheckpoint(userId, clientId, lsn);
    if (this.emitMessages) {
      // Best effort: without it an idle source is covered at its next WAL activity.
      await this.pool.query(`SELECT pg_logical_emit_message(false, 'ferry', 'write_checkpoint')`).catch((error) => {
        if ((error as { code?: string }).code === '42501') this.emitMessages = false; // not permitted
      });
    }
    return id;
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
