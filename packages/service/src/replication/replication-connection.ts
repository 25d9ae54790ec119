/**
 * A logical replication connection on top of node-postgres: a `pg.Client`
 * started with `replication=database`, which accepts the replication
 * commands (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT, START_REPLICATION) over
 * the simple query protocol. Once streaming, the server sends CopyData
 * messages, which `pg` frames and emits as `copyData` on its connection; we
 * answer with standby status updates sent as CopyData.
 */
import { FerryError } from '@ferry/protocol';
import pg from 'pg';
import { encodeStandbyStatus, type StandbyStatus } from './copy-both.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import { SOURCE_SESSION_OPTIONS } from './type-mapping.js';

/** The parts of pg's internal Connection this module uses. */
interface PgWireConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): unknown;
  removeListener(event: 'copyData', listener: (message: { chunk: Buffer }) => void): unknown;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

export interface CreatedSlot {
  slotName: string;
  consistentPoint: Lsn;
  /** Name of the exported snapshot; valid until this connection runs another command. */
  snapshotName: string | null;
}

export interface StartReplicationOptions {
  slotName: string;
  startLsn: Lsn;
  publicationName: string;
  /** Receives each CopyData payload (`w` XLogData or `k` keepalive), in order. The buffer is the receiver's to keep. */
  onData: (payload: Buffer) => void;
}

const NAME_PATTERN = /^[a-z0-9_]{1,63}$/;

function checkName(kind: string, name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new FerryError(
      'FERRY_S1002',
      `${kind} name ${JSON.stringify(name)} must be 1-63 characters of a-z, 0-9 and _`,
    );
  }
}

export class ReplicationConnection {
  private readonly client: pg.Client;
  private closed = false;
  private streaming: Promise<void> | null = null;
  private failure: unknown = null;
  private readonly failureListeners = new Set<(error: unknown) => void>();

  private constructor(client: pg.Client) {
    this.client = client;
    const fail = (error: unknown) => {
      if (this.failure === null) this.failure = error ?? new FerryError('FERRY_S3005', 'replication connection ended');
      for (const listener of this.failureListeners) listener(this.failure);
    };
    client.on('error', (error) =>
      fail(new FerryError('FERRY_S3005', `replication connection failed: ${error.message}`, { cause: error })),
    );
    client.on('end', () => {
      if (!this.closed) fail(new FerryError('FERRY_S3005', 'replication connection ended unexpectedly'));
    });
  }

  static async open(
    connectionString: string,
    options: { applicationName?: string } = {},
  ): Promise<ReplicationConnection> {
    const config = {
      connectionString,
      replication: 'database',
      options: SOURCE_SESSION_OPTIONS,
      application_name: options.applicationName ?? 'ferry-replicator',
    } as pg.ClientConfig;
    const client = new pg.Client(config);
    const connection = new ReplicationConnection(client);
    try {
      await client.connect();
    } catch (error) {
      connection.closed = true;
      await client.end().catch(() => {});
      throw new FerryError('FERRY_S3005', `cannot open replication connection: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return connection;
  }

  /** Calls `listener` once if the connection fails or ends unexpectedly. */
  onFailure(listener: (error: unknown) => void): () => void {
    if (this.failure !== null) {
      listener(this.failure);
      return () => {};
    }
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  async identifySystem(): Promise<{ systemId: string; timeline: number; xlogPos: Lsn; dbName: string | null }> {
    const { rows } = await this.client.query<{
      systemid: string;
      timeline: string;
      xlogpos: string;
      dbname: string | null;
    }>('IDENTIFY_SYSTEM');
    const r = rows[0]!;
    return {
      systemId: String(r.systemid),
      timeline: Number(r.timeline),
      xlogPos: parseLsn(r.xlogpos),
      dbName: r.dbname,
    };
  }

  /**
   * Creates a logical slot using pgoutput and exports its snapshot. Keep this
   * connection idle until the snapshot has been imported and copied.
   */
  async createSlot(slotName: string, options: { serverVersion: number }): Promise<CreatedSlot> {
    checkName('slot', slotName);
    const command =
      options.serverVersion >= 150000
        ? `CREATE_REPLICATION_SLOT ${slotName} LOGICAL pgoutput (SNAPSHOT 'export')`
        : `CREATE_REPLICATION_SLOT ${slotName} LOGICAL pgoutput EXPORT_SNAPSHOT`;
    const { rows } = await this.client.query<{
      slot_name: string;
      consistent_point: string;
      snapshot_name: string | null;
    }>(command);
    const r = rows[0]!;
    return { slotName: r.slot_name, consistentPoint: parseLsn(r.consistent_point), snapshotName: r.snapshot_name };
  }

  /**
   * Starts streaming from the slot. Resolves when the stream ends normally
   * (after {@link close}); rejects when the server reports an error (e.g. the
   * slot does not exist) or the connection fails.
   */
  startReplication(options: StartReplicationOptions): Promise<void> {
    checkName('slot', options.slotName);
    checkName('publication', options.publicationName);
    if (this.streaming) throw new FerryError('FERRY_S9001', 'replication already started on this connection');
    const wire = (this.client as unknown as { connection: PgWireConnection }).connection;
    // pg's parser reuses its read buffer, so a chunk is only valid during the
    // callback: copy it, since payloads are queued and processed later.
    const onCopyData = (message: { chunk: Buffer }) => options.onData(Buffer.from(message.chunk));
    wire.on('copyData', onCopyData);
    const command =
      `START_REPLICATION SLOT ${options.slotName} LOGICAL ${formatLsn(options.startLsn)} ` +
      `(proto_version '1', publication_names '${options.publicationName}', messages 'true')`;
    this.streaming = new Promise<void>((resolve, reject) => {
      const unsubscribe = this.onFailure((error) => {
        wire.removeListener('copyData', onCopyData);
        if (this.closed) resolve();
        else reject(error);
      });
      this.client.query(command).then(
        () => {
          unsubscribe();
          wire.removeListener('copyData', onCopyData);
          resolve();
        },
        (error: unknown) => {
          unsubscribe();
          wire.removeListener('copyData', onCopyData);
          if (this.closed) resolve();
          else reject(error);
        },
      );
    });
    return this.streaming;
  }

  /** Sends a standby status update. Never call with a flush position that is not durably stored. */
  sendStatus(status: StandbyStatus): void {
    if (this.closed || this.failure !== null) return;
    const wire = (this.client as unknown as { connection: PgWireConnection }).connection;
    wire.sendCopyFromChunk(encodeStandbyStatus(status));
  }

  /** Stops reading from the socket (backpressure); the server's sends block once buffers fill. */
  pause(): void {
    (this.client as unknown as { connection: PgWireConnection }).connection.stream.pause();
  }

  resume(): void {
    (this.client as unknown as { connection: PgWireConnection }).connection.stream.resume();
  }

  /** Closes the connection; a running stream resolves. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.resume();
    } catch {
      // the socket may already be gone
    }
    await this.client.end().catch(() => {});
    await this.streaming?.catch(() => {});
  }
}
