import type { SqliteParam } from '@ferry/client';
import { useSyncExternalStore } from 'react';
import { useFerry } from './ferry-context.js';
import type { LiveQuery } from './live-query.js';
import { queryKey } from './query-key.js';
import { forgetFailed, suspenseQuery } from './suspense-cache.js';

const EMPTY_PARAMS: readonly SqliteParam[] = Object.freeze([]);

/**
 * A live query for React Suspense: suspends until the first result, then
 * returns the rows and re-renders only when they changed, like
 * {@link useQuery}. Components rendering the same query (same database, SQL
 * and parameter values) share one watch. A failed query throws its error to
 * the nearest error boundary; after the boundary resets, the query starts
 * again.
 *
 * Changing `sql` or `params` suspends again (showing the fallback); wrap the
 * change in `startTransition` to keep the previous rows on screen instead.
 */
export function useSuspenseQuery<Row = Record<string, unknown>>(
  sql: string,
  params: readonly SqliteParam[] = EMPTY_PARAMS,
): Row[] {
  const db = useFerry();
  const key = queryKey(sql, params);
  const query: LiveQuery<Row> = suspenseQuery<Row>(db, key, sql, params);
  const snapshot = useSyncExternalStore(query.subscribe, query.getSnapshot, query.getSnapshot);
  if (snapshot.kind === 'pending') {
    // Thrown (rather than `use()`d) so React 18 suspends too.
    throw query.settled;
  }
  if (snapshot.kind === 'error') {
    forgetFailed(db, key, query as LiveQuery<unknown>);
    throw snapshot.error;
  }
  return snapshot.rows;
}
