import type { SqliteParam } from '@ferry/client';
import type { FerryReactDatabase } from './ferry-context.js';
import { LiveQuery } from './live-query.js';

/**
 * Live queries started by `useSuspenseQuery`, per database and query key.
 *
 * A component that suspends on its first render keeps no state, so the
 * query it waits for lives here: the retry after the first result finds the
 * same running query (no second query) and subscribes. An entry without
 * subscribers keeps running for {@link keepAliveMs} before it stops and
 * leaves the cache: long enough for a suspended render that was abandoned
 * to be cleaned up, and for a remount (or a tree shown again after
 * `<Activity mode="hidden">`) to find current rows instead of suspending.
 */
const caches = new WeakMap<FerryReactDatabase, Map<string, LiveQuery<unknown>>>();

let keepAliveMs = 5_000;

/** Sets how long unused suspense queries keep running (tests use a short one). Returns the previous value. */
export function setSuspenseKeepAlive(ms: number): number {
  const previous = keepAliveMs;
  keepAliveMs = ms;
  return previous;
}

/** Failed queries on their way out of the cache. */
const forgetting = new WeakSet<LiveQuery<unknown>>();

export function suspenseQuery<Row>(
  db: FerryReactDatabase,
  key: string,
  sql: string,
  params: readonly SqliteParam[],
): LiveQuery<Row> {
  let cache = caches.get(db);
  if (cache === undefined) {
    cache = new Map();
    caches.set(db, cache);
  }
  const cached = cache.get(key);
  if (cached !== undefined) return cached as LiveQuery<Row>;

  const query = new LiveQuery<Row>(db, sql, params, { keepAliveMs });
  query.onIdle = () => evictSuspenseQuery(db, key, query as LiveQuery<unknown>);
  cache.set(key, query as LiveQuery<unknown>);
  query.start();
  // Started without a subscriber: if none comes (the suspended tree was abandoned), stop after the keep-alive.
  void query.settled.then(() => query.stopWhenIdle());
  return query;
}

/** Drops `query` from the cache (if it is still the entry for `key`), so the next render starts afresh. */
export function evictSuspenseQuery(db: FerryReactDatabase, key: string, query: LiveQuery<unknown>): void {
  const cache = caches.get(db);
  if (cache?.get(key) === query) cache.delete(key);
}

/** How many suspense queries are cached for `db` (for tests). */
export function cachedSuspenseQueries(db: FerryReactDatabase): number {
  return caches.get(db)?.size ?? 0;
}

/**
 * A failed query is forgotten one task later, so a reset error boundary
 * retries with a fresh query. Not at once: React renders a failed
 * component again before giving up, and that render must meet the same
 * error, not a new pending query (which would suspend and fail forever).
 * Mounted users stop the watch when the boundary unmounts them.
 */
export function forgetFailed(db: FerryReactDatabase, key: string, query: LiveQuery<unknown>): void {
  if (forgetting.has(query)) return;
  forgetting.add(query);
  setTimeout(() => {
    evictSuspenseQuery(db, key, query);
    if (query.subscriberCount === 0) query.stop();
  }, 0);
}
