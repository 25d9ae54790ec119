import type { SyncStatus } from '@ferry/client';
import { useCallback, useMemo, useSyncExternalStore } from 'react';
import { useFerry } from './ferry-context.js';

const identity = (status: SyncStatus): SyncStatus => status;

/**
 * The sync status (`connected`, `connecting`, `downloading` with
 * `downloadProgress`, `uploading`, `pendingCount`, `lastUploadError`,
 * `hasSynced`, ...), re-rendering with each new status snapshot.
 *
 * With `select`, the component re-renders only when the selected value
 * changed (compared with `Object.is`): `useStatus((s) => s.pendingCount)`.
 * `select` should return a primitive or an object taken from the status;
 * a new object on every call re-renders on every status change.
 */
export function useStatus(): SyncStatus;
export function useStatus<T>(select: (status: SyncStatus) => T): T;
export function useStatus<T>(select?: (status: SyncStatus) => T): T | SyncStatus {
  const db = useFerry();
  const subscribe = useCallback((onChange: () => void) => db.registerListener({ statusChanged: onChange }), [db]);
  const pick = select ?? identity;
  const getSnapshot = useMemo(() => {
    // Recompute only for a new status snapshot, so repeated calls agree.
    let seen: SyncStatus | undefined;
    let value: T | SyncStatus;
    return (): T | SyncStatus => {
      const status = db.currentStatus;
      if (status !== seen) {
        seen = status;
        value = pick(status);
      }
      return value;
    };
  }, [db, pick]);
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}
