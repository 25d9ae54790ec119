import { violationFromRow, violationsQuery, type ConflictFilter, type Violation } from '@ferry/client';
import type { RowLoader } from './live-query.js';
import { useLiveQuery, type QueryOptions, type QueryResult } from './use-query.js';

const toViolations: RowLoader<Violation> = async (rows) => (rows as Record<string, unknown>[]).map(violationFromRow);

/**
 * The findings of the server's validation hooks (`ferry_violations`),
 * oldest first, live. With `filter`: those whose subject row or any
 * involved row matches it (compared by value).
 *
 * @example
 * const { data: problems } = useViolations({ table: 'shifts', rowId: shift.id });
 */
export function useViolations(filter: ConflictFilter = {}, options: QueryOptions = {}): QueryResult<Violation> {
  const { sql, params } = violationsQuery(filter);
  return useLiveQuery<Violation>(sql, params, options.enabled ?? true, toViolations);
}
