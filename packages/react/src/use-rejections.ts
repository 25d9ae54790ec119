import type { RejectedWrite } from '@ferry/client';
import { useCallback, useMemo } from 'react';
import { useFerry } from './ferry-context.js';
import { useLiveQuery } from './use-query.js';

/** What {@link useRejections} returns. */
export interface RejectionsResult {
  /** Local writes the server rejected, oldest first, each with the server's `code` and `message`. */
  readonly rejections: RejectedWrite[];
  /** True only before the first read. */
  readonly isLoading: boolean;
  readonly error: Error | undefined;
  /** Dismisses the rejections with these ids (all without `ids`). Resolves to how many went. */
  clearRejections(ids?: readonly number[]): Promise<number>;
}

/** Every column, so any change to a kept rejection re-reads the list. */
const WATCH_SQL = `SELECT id, tx_id, op, row_type, row_id, data, hlc, code, message, rejected_at FROM ferry_rejections ORDER BY id`;
const NO_PARAMS = Object.freeze([]);

/**
 * The local writes the server rejected (guarantee 3: the op left the
 * queue, its row went back to the server's state, the reason is kept),
 * live: a new rejection or a dismissal re-renders. Show them to the user,
 * then dismiss with `clearRejections`.
 */
export function useRejections(): RejectionsResult {
  const db = useFerry();
  // The watch tells when the table changed; the database's own reader maps rows (int8-exact op data).
  const load = useCallback(() => db.getRejections(), [db]);
  const { data, isLoading, error } = useLiveQuery<RejectedWrite>(WATCH_SQL, NO_PARAMS, true, load);
  const clearRejections = useCallback((ids?: readonly number[]) => db.clearRejections(ids), [db]);
  return useMemo(
    () => ({ rejections: data, isLoading, error, clearRejections }),
    [data, isLoading, error, clearRejections],
  );
}
