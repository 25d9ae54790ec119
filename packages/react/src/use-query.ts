import type { SqliteParam } from '@ferry/client';
import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import { useFerry } from './ferry-context.js';
import { LiveQuery, type QuerySnapshot, type RowLoader } from './live-query.js';
import { queryKey } from './query-key.js';

/** What {@link useQuery} returns. */
export interface QueryResult<Row> {
  /**
   * The rows. Before the first result: an empty array. After `sql` or
   * `params` changed: the previous rows until the new query answers
   * (see `isStale`). The array is the same object until the result changes.
   */
  readonly data: Row[];
  /** True only before this hook's very first result (not after a later `sql`/`params` change). */
  readonly isLoading: boolean;
  /** `data` still belongs to the previous `sql`/`params`: the current query has not answered yet. */
  readonly isStale: boolean;
  /** The last run failed (e.g. invalid SQL); `data` keeps the last good rows. Cleared by the next result. */
  readonly error: Error | undefined;
}

export interface QueryOptions {
  /** `false` runs no query: `data` is empty and nothing loads. Default true. */
  readonly enabled?: boolean;
}

const EMPTY_PARAMS: readonly SqliteParam[] = Object.freeze([]);
const NO_ROWS: never[] = Object.freeze([]) as unknown as never[];
const DISABLED: QuerySnapshot<never> = { kind: 'pending' };
const noSubscription = (): (() => void) => () => {};
const disabledSnapshot = (): QuerySnapshot<never> => DISABLED;

/**
 * A live query: renders with the rows of `sql` and re-renders only when
 * they changed (a write that leaves the result as it was causes no render).
 *
 * The subscription is keyed by `sql` and the parameter values, so passing a
 * new array with equal values on every render is fine. When they do change,
 * the previous rows stay in `data` (`isStale: true`, `isLoading: false`)
 * until the new query answers, so lists do not flash empty.
 * Errors are returned in `error`, never thrown.
 *
 * @example
 * const { data: tasks, isLoading } = useQuery<Task>('SELECT * FROM tasks WHERE project_id = ? ORDER BY rank', [projectId]);
 */
export function useQuery<Row = Record<string, unknown>>(
  sql: string,
  params: readonly SqliteParam[] = EMPTY_PARAMS,
  options: QueryOptions = {},
): QueryResult<Row> {
  return useLiveQuery<Row>(sql, params, options.enabled ?? true, undefined);
}

/** {@link useQuery} with an optional loader that turns watched rows into the returned rows. */
export function useLiveQuery<Row>(
  sql: string,
  params: readonly SqliteParam[],
  enabled: boolean,
  load: RowLoader<Row> | undefined,
): QueryResult<Row> {
  const db = useFerry();
  const key = queryKey(sql, params);
  // `params` is captured with the key it produced: equal keys mean equal values.
  const query = useMemo(
    () => (enabled ? new LiveQuery<Row>(db, sql, params, { load }) : null),
    // Keyed by value on purpose: not `params` (a new array each render), but `key`.
    [db, key, enabled],
  );
  const snapshot: QuerySnapshot<Row> = useSyncExternalStore(
    query?.subscribe ?? noSubscription,
    query?.getSnapshot ?? disabledSnapshot,
    query?.getSnapshot ?? disabledSnapshot,
  );

  const current = query === null || snapshot.kind === 'pending' ? undefined : snapshot.rows;
  // The rows on screen, as of the last commit: shown while a new query has not answered.
  const shown = useRef<Row[] | undefined>(undefined);
  useEffect(() => {
    if (current !== undefined) shown.current = current;
  }, [current]);

  const previous = query === null ? undefined : shown.current;
  const data = current ?? previous ?? (NO_ROWS as Row[]);
  const isStale = current === undefined && previous !== undefined;
  const isLoading = query !== null && snapshot.kind === 'pending' && previous === undefined;
  const error = snapshot.kind === 'error' ? snapshot.error : undefined;
  return useMemo(() => ({ data, isLoading, isStale, error }), [data, isLoading, isStale, error]);
}
