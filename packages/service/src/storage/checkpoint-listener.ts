/**
 * Fans published checkpoints out to any number of in-process listeners with
 * ONE `LISTEN` connection and ONE query per observed checkpoint (not one per
 * listener). Notifications that arrive while a read is running are coalesced:
 * a listener may receive one update covering several checkpoints, always
 * relative to the checkpoint it saw last (`previous`), in increasing order.
 */
import type { OpId } from '@ferry/protocol';
import pg from 'pg';
import type { BucketState, CheckpointUpdate, CoveredWriteCheckpoint } from './types.js';
import { quoteIdent } from './sql.js';

/** Above this many changed buckets an update reports `changedBuckets: null` ("re-read"). */
const MAX_CHANGED_BUCKETS = 100_000;

/**
 * Write checkpoints created this recently are re-checked on every refresh
 * (one recorded after replication had already passed its LSN is covered at
 * once, so "newly passed LSN" alone would miss it).
 */
const RECENT_WRITE_CHECKPOINT_MS = 60_000;

interface Subscriber {
  listener: (update: CheckpointUpdate) => void;
  /** The checkpoint this subscriber last saw (or the one current when it subscribed). */
  base: OpId | null;
}

export interface CheckpointListenerOptions {
  connectionString: string;
  schema: string;
  channel: string;
  /** Called when the listening connection fails (it reconnects by itself). */
  onError?: (error: unknown) => void;
  /** Reconnect delay after a failure (default 1000 ms). */
  reconnectDelayMs?: number;
}

export class CheckpointListener {
  private readonly options: CheckpointListenerOptions;
  private readonly s: string;
  private readonly subscribers = new Set<Subscriber>();
  private client: pg.Client | null = null;
  private starting: Promise<void> | null = null;
  private lastKnown: OpId | null = null;
  /** `state.end_lsn` at the last read (write checkpoints up to it were handed out). */
  private lastEndLsn: bigint | null = null;
  private readonly deliveredWriteCheckpoints = new Map<string, number>();
  private refreshing = false;
  private refreshAgain = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;

  constructor(options: CheckpointListenerOptions) {
    this.options = options;
    this.s = quoteIdent(options.schema);
  }

  subscribe(listener: (update: CheckpointUpdate) => void): () => void {
    const subscriber: Subscriber = { listener, base: this.lastKnown };
    this.subscribers.add(subscriber);
    this.ensureStarted();
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  /** Resolves once the LISTEN connection is established (for tests and readiness). */
  async ready(): Promise<void> {
    this.ensureStarted();
    await this.starting;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.subscribers.clear();
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }

  private ensureStarted(): void {
    if (this.client || this.starting || this.closed) return;
    this.starting = this.start().finally(() => {
      this.starting = null;
    });
  }

  private async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString });
    client.on('error', (error) => this.connectionLost(client, error));
    client.on('end', () => this.connectionLost(client, null));
    client.on('notification', (message) => {
      if (message.channel === this.options.channel) this.scheduleRefresh();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.options.channel)}`);
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      this.options.onError?.(error);
      this.scheduleReconnect();
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    // Anything published while we were not listening is picked up by this read.
    this.scheduleRefresh();
  }

  private connectionLost(client: pg.Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    if (error) this.options.onError?.(error);
    client.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.subscribers.size > 0 || this.lastKnown !== null) this.ensureStarted();
    }, this.options.reconnectDelayMs ?? 1000);
    this.reconnectTimer.unref?.();
  }

  private scheduleRefresh(): void {
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = true;
    void this.refreshLoop();
  }

  private async refreshLoop(): Promise<void> {
    try {
      do {
        this.refreshAgain = false;
        const client = this.client;
        if (!client) return;
        try {
          await this.refresh(client);
        } catch (error) {
          this.options.onError?.(error);
        }
      } while (this.refreshAgain && !this.closed);
    } finally {
      this.refreshing = false;
    }
  }

  private async refresh(client: pg.Client): Promise<void> {
    const previous = this.lastKnown;
    // With no previous checkpoint the diff is unknown anyway: read only the head.
    const after = (previous ?? 9223372036854775807n).toString();
    // One statement, one snapshot: the checkpoint, the buckets changed since
    // `previous` and the lookups recorded by the checkpoints in between.
    const { rows } = await client.query<{
      kind: number;
      name: string | null;
      checksum: string | null;
      count: string | null;
      op_id: string | null;
      flag: boolean | null;
    }>(
      `WITH s AS (SELECT checkpoint FROM ${this.s}.state WHERE id = 1)
       SELECT 0 AS kind, NULL::text AS name, NULL::int8 AS checksum, NULL::int8 AS count, (SELECT checkpoint FROM s) AS op_id,
              EXISTS (SELECT 1 FROM ${this.s}.checkpoints WHERE op_id = $1::int8) AS flag
       UNION ALL
       (SELECT 1, bucket, checksum, count, last_op_id, NULL FROM ${this.s}.bucket_state
         WHERE last_op_id > $1::int8 AND last_op_id <= (SELECT checkpoint FROM s) LIMIT ${MAX_CHANGED_BUCKETS + 1})
       UNION ALL
       SELECT 2, l, NULL, NULL, c.op_id, c.changed_lookups IS NULL FROM ${this.s}.checkpoints c
         LEFT JOIN LATERAL unnest(c.changed_lookups) AS l ON true
        WHERE c.op_id > $1::int8 AND c.op_id <= (SELECT checkpoint FROM s)`,
      [after],
    );
    const head = rows.find((r) => r.kind === 0);
    if (!head || head.op_id === null) return;
    const writeCheckpoints = await this.readCoveredWriteCheckpoints(client);
    const headCheckpoint = BigInt(head.op_id);
    if (previous !== null && headCheckpoint <= previous) {
      if (writeCheckpoints.length === 0) return;
      // Only write checkpoints became covered (e.g. an idle source's keepalive): nothing else changed.
      this.deliver(previous, previous, new Map(), new Set(), writeCheckpoints);
      return;
    }
    const checkpoint = headCheckpoint;
    // Without a record of `previous` (first read, pruned, storage rebuilt) the diff is unknown.
    const exact = previous !== null && head.flag === true;
    let changedBuckets: Map<string, BucketState> | null = exact ? new Map() : null;
    let changedLookups: Set<string> | null = exact ? new Set() : null;
    for (const row of rows) {
      if (row.kind === 1 && changedBuckets) {
        changedBuckets.set(row.name!, {
          checksum: Number(row.checksum),
          count: Number(row.count),
          lastOpId: BigInt(row.op_id!),
        });
      } else if (row.kind === 2 && changedLookups) {
        if (row.flag === true) changedLookups = null;
        else if (row.name !== null) changedLookups.add(row.name);
      }
    }
    if (changedBuckets && changedBuckets.size > MAX_CHANGED_BUCKETS) changedBuckets = null;
    this.deliver(checkpoint, previous, changedBuckets, changedLookups, writeCheckpoints);
  }

  /**
   * Write checkpoints covered (lsn <= state.end_lsn) since the last read:
   * those whose LSN was passed since then, plus recently created ones that
   * were already covered when recorded. Each id is handed out once.
   */
  private async readCoveredWriteCheckpoints(client: pg.Client): Promise<CoveredWriteCheckpoint[]> {
    const { rows } = await client.query<{
      id: string | null;
      user_id: string | null;
      client_id: string | null;
      end_lsn: string | null;
    }>(
      `SELECT w.id, w.user_id, w.client_id, s.end_lsn FROM ${this.s}.state s
         LEFT JOIN ${this.s}.write_checkpoints w ON w.lsn <= s.end_lsn
              AND (w.lsn > coalesce($1::int8, s.end_lsn) OR w.created_at > now() - make_interval(secs => $2))
        WHERE s.id = 1 ORDER BY w.id`,
      [this.lastEndLsn?.toString() ?? null, RECENT_WRITE_CHECKPOINT_MS / 1000],
    );
    const now = Date.now();
    for (const [id, at] of this.deliveredWriteCheckpoints) {
      if (now - at > 2 * RECENT_WRITE_CHECKPOINT_MS) this.deliveredWriteCheckpoints.delete(id);
    }
    const out: CoveredWriteCheckpoint[] = [];
    for (const row of rows) {
      if (row.end_lsn !== null) {
        const end = BigInt(row.end_lsn);
        if (this.lastEndLsn === null || end > this.lastEndLsn) this.lastEndLsn = end;
      }
      if (row.id === null || this.deliveredWriteCheckpoints.has(row.id)) continue;
      this.deliveredWriteCheckpoints.set(row.id, now);
      out.push({ id: BigInt(row.id), userId: row.user_id!, clientId: row.client_id! });
    }
    return out;
  }

  private deliver(
    checkpoint: OpId,
    previous: OpId | null,
    changedBuckets: Map<string, BucketState> | null,
    changedLookups: Set<string> | null,
    writeCheckpoints: CoveredWriteCheckpoint[],
  ): void {
    this.lastKnown = checkpoint;
    const extra = writeCheckpoints.length > 0 ? { writeCheckpoints } : {};
    // A snapshot of the set: listeners subscribing from inside a callback start from the next update.
    for (const subscriber of Array.from(this.subscribers)) {
      const base = subscriber.base;
      subscriber.base = checkpoint;
      const update: CheckpointUpdate =
        base === previous && base !== null
          ? { checkpoint, previous: base, changedBuckets, changedLookups, ...extra }
          : { checkpoint, previous: base, changedBuckets: null, changedLookups: null, ...extra };
      try {
        subscriber.listener(update);
      } catch (error) {
        this.options.onError?.(error);
      }
    }
  }
}
