import type { SqliteParam } from './driver.js';
import { touches, type TableChangeEmitter } from './table-changes.js';

/** What a watched query needs from the database. */
export interface WatchHost {
  readonly changes: TableChangeEmitter;
  /** Lower-cased names of the tables `sql` reads. */
  /** The tables the statement reads, or null when that cannot be known (e.g. a table it names does not exist yet). */
  tablesRead(sql: string, params: readonly SqliteParam[]): Promise<Set<string> | null>;
  /** Runs the query against committed data. */
  query(sql: string, params: readonly SqliteParam[]): Promise<unknown[]>;
}

export interface WatchHandlers<T> {
  onResult(rows: T[]): void;
  onError?: ((error: unknown) => void) | undefined;
}

/** Serializes a result so two results compare equal exactly when their rows are equal. */
function fingerprint(rows: readonly unknown[]): string {
  return JSON.stringify(rows, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value));
}

/**
 * Runs a query now and again whenever a table it reads changes, and reports
 * the rows whenever they differ from the last reported rows. Re-runs are
 * coalesced: changes arriving during a run cause one more run.
 */
export function startWatch<T>(
  host: WatchHost,
  sql: string,
  params: readonly SqliteParam[],
  handlers: WatchHandlers<T>,
  signal?: AbortSignal,
): () => void {
  let stopped = false;
  let running = false;
  let pending = false;
  let tables: Set<string> | null = null;
  let last: string | null = null;

  const unsubscribe = host.changes.subscribe((change) => {
    if (stopped) return;
    // Before the tables are known every change may matter: the first run is still to come anyway.
    if (tables === null || touches(change, tables)) schedule();
  });

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    signal?.removeEventListener('abort', stop);
  };
  if (signal?.aborted) {
    stop();
    return stop;
  }
  signal?.addEventListener('abort', stop);

  function schedule(): void {
    if (running) {
      pending = true;
      return;
    }
    void run();
  }

  async function run(): Promise<void> {
    running = true;
    try {
      do {
        pending = false;
        try {
          // Unknown tables (null) keep the watch re-running on every change until they are known.
          if (tables === null) tables = await host.tablesRead(sql, params);
          const rows = (await host.query(sql, params)) as T[];
          if (stopped) return;
          const print = fingerprint(rows);
          if (print !== last) {
            last = print;
            handlers.onResult(rows);
          }
        } catch (error) {
          if (stopped) return;
          handlers.onError?.(error);
        }
      } while (pending && !stopped);
    } finally {
      running = false;
    }
  }

  void run();
  return stop;
}

/**
 * Adapts a watch to an async iterable. A slow consumer gets the latest
 * result, never a backlog of stale ones.
 */
export function watchIterable<T>(
  start: (handlers: WatchHandlers<T>, signal: AbortSignal) => void,
  signal?: AbortSignal,
): AsyncIterable<T[]> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T[]> {
      const controller = new AbortController();
      const onOuterAbort = (): void => finish();
      signal?.addEventListener('abort', onOuterAbort);
      let latest: { rows: T[] } | null = null;
      let failure: { error: unknown } | null = null;
      let done = signal?.aborted ?? false;
      let waiter: ((value: void) => void) | null = null;

      function wake(): void {
        const w = waiter;
        waiter = null;
        w?.();
      }
      function finish(): void {
        if (done) return;
        done = true;
        controller.abort();
        signal?.removeEventListener('abort', onOuterAbort);
        wake();
      }

      if (!done) {
        start(
          {
            onResult: (rows) => {
              latest = { rows };
              wake();
            },
            onError: (error) => {
              failure = { error };
              wake();
            },
          },
          controller.signal,
        );
      }

      return {
        async next(): Promise<IteratorResult<T[]>> {
          for (;;) {
            if (failure !== null) {
              const { error } = failure;
              finish();
              failure = null;
              throw error;
            }
            if (latest !== null) {
              const { rows } = latest;
              latest = null;
              return { value: rows, done: false };
            }
            if (done) return { value: undefined, done: true };
            await new Promise<void>((resolve) => {
              waiter = resolve;
            });
          }
        },
        async return(): Promise<IteratorResult<T[]>> {
          finish();
          return { value: undefined, done: true };
        },
      };
    },
  };
}
