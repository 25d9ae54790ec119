import type { SqliteParam } from '@ferry/client';
import type { FerryReactDatabase } from './ferry-context.js';

/** The state of a live query. Snapshots are immutable; a change produces a new one. */
export type QuerySnapshot<Row> =
  | { readonly kind: 'pending' }
  | { readonly kind: 'result'; readonly rows: Row[] }
  /** The last run failed; `rows` are the last good rows, if any. */
  | { readonly kind: 'error'; readonly error: Error; readonly rows: Row[] | undefined };

const PENDING: QuerySnapshot<never> = { kind: 'pending' };

/** Turns the watched rows into what the hook returns (e.g. a typed re-read). */
export type RowLoader<Row> = (rows: unknown[]) => Promise<Row[]>;

export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error), { cause: error });
}

/**
 * One watched query as an external store for `useSyncExternalStore`.
 *
 * The watch runs while the store has subscribers (or was started
 * explicitly). When the last subscriber leaves, the watch stops after
 * `keepAliveMs`, or one microtask later when that is 0, unless someone
 * subscribes again first: React's StrictMode unsubscribes and resubscribes
 * synchronously, and that must not restart the query (a restarted watch
 * would report its first result again).
 */
export class LiveQuery<Row> {
  readonly sql: string;
  readonly params: readonly SqliteParam[];
  /** Resolves once the first result or error is in (never rejects). */
  readonly settled: Promise<void>;
  /** Called after the watch stopped because nobody was subscribed any more. */
  onIdle: (() => void) | undefined;

  private readonly db: FerryReactDatabase;
  private readonly load: RowLoader<Row> | undefined;
  private snapshot: QuerySnapshot<Row> = PENDING;
  private readonly listeners = new Set<() => void>();
  private stopWatch: (() => void) | null = null;
  private readonly keepAliveMs: number;
  private stopQueued = false;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private loads = 0;
  private settle: () => void = () => {};

  constructor(
    db: FerryReactDatabase,
    sql: string,
    params: readonly SqliteParam[],
    options: { load?: RowLoader<Row> | undefined; keepAliveMs?: number } = {},
  ) {
    this.db = db;
    this.keepAliveMs = options.keepAliveMs ?? 0;
    this.sql = sql;
    this.params = params;
    this.load = options.load;
    this.onIdle = undefined;
    this.settled = new Promise<void>((resolve) => {
      this.settle = resolve;
    });
  }

  /** The current snapshot: the same object until the state changes. */
  readonly getSnapshot = (): QuerySnapshot<Row> => this.snapshot;

  /** Adds a listener called on every new snapshot; starts the watch if needed. Returns the unsubscribe function. */
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    this.cancelIdleStop();
    this.start();
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      this.listeners.delete(listener);
      this.stopWhenIdle();
    };
  };

  get subscriberCount(): number {
    return this.listeners.size;
  }

  /** Starts the watch if it is not running. */
  start(): void {
    if (this.stopWatch !== null) return;
    let active = true;
    const stop = this.db.watch<unknown>(this.sql, this.params, {
      onResult: (rows) => {
        if (active) this.received(rows);
      },
      onError: (error) => {
        if (active) this.failed(error);
      },
    });
    this.stopWatch = () => {
      active = false;
      stop();
    };
  }

  /** Stops the watch now. The snapshot stays; a later `start()` resumes. */
  stop(): void {
    this.cancelIdleStop();
    const stop = this.stopWatch;
    this.stopWatch = null;
    this.loads++; // a load still in flight must not land after the stop
    stop?.();
  }

  /** Stops the watch (after the keep-alive) if nobody subscribes until then. */
  stopWhenIdle(): void {
    if (this.listeners.size > 0) return;
    if (this.keepAliveMs > 0) {
      this.idleTimer ??= setTimeout(() => {
        this.idleTimer = null;
        this.stopIfIdle();
      }, this.keepAliveMs);
      return;
    }
    if (this.stopQueued) return;
    this.stopQueued = true;
    queueMicrotask(() => {
      this.stopQueued = false;
      this.stopIfIdle();
    });
  }

  private cancelIdleStop(): void {
    if (this.idleTimer === null) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private stopIfIdle(): void {
    if (this.listeners.size > 0 || this.stopWatch === null) return;
    this.stop();
    this.onIdle?.();
  }

  private received(rows: unknown[]): void {
    if (this.load === undefined) {
      this.publish({ kind: 'result', rows: rows as Row[] });
      return;
    }
    // Loads may overlap; only the latest one may publish.
    const load = ++this.loads;
    this.load(rows).then(
      (loaded) => {
        if (load === this.loads) this.publish({ kind: 'result', rows: loaded });
      },
      (error: unknown) => {
        if (load === this.loads) this.failed(error);
      },
    );
  }

  private failed(error: unknown): void {
    const last = this.snapshot.kind === 'pending' ? undefined : this.snapshot.rows;
    this.publish({ kind: 'error', error: toError(error), rows: last });
  }

  private publish(snapshot: QuerySnapshot<Row>): void {
    this.snapshot = snapshot;
    this.settle();
    for (const listener of this.listeners) listener();
  }
}
