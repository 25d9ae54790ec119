import { conflictFromRow, conflictsQuery, type Conflict, type ConflictFilter } from '@ferry/client';
import type { RowLoader } from './live-query.js';
import { useLiveQuery, type QueryOptions, type QueryResult } from './use-query.js';

const toConflicts: RowLoader<Conflict> = async (rows) => (rows as Record<string, unknown>[]).map(conflictFromRow);

/**
 * The values that lost a field-level merge on the server (`ferry_conflicts`,
 * synced when the app's sync rules select it), oldest first, live: a synced
 * conflict or a resolution re-renders, anything else does not. `filter`
 * narrows to one table and/or row, compared by value (a new object each
 * render is fine). Resolve with `useFerry().resolveConflict(id, …)`.
 *
 * @example
 * const { data: conflicts } = useConflicts({ table: 'tasks', rowId: task.id });
 */
export function useConflicts(filter: ConflictFilter = {}, options: QueryOptions = {}): QueryResult<Conflict> {
  const { sql, params } = conflictsQuery(filter);
  return useLiveQuery<Conflict>(sql, params, options.enabled ?? true, toConflicts);
}
