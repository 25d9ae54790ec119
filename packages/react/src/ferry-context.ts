import type {
  FerryDatabase,
  RejectedWrite,
  SqliteParam,
  StatusListener,
  SyncStatus,
  WatchCallbacks,
} from '@ferry/client';
import { FerryError } from '@ferry/protocol';
import { createContext, createElement, useContext, type ReactElement, type ReactNode } from 'react';

/**
 * What the hooks need from a database. `FerryDatabase` (Node, browser)
 * satisfies it; anything else with this shape works too (e.g. a proxy to a
 * database in another tab or worker).
 */
export interface FerryReactDatabase {
  /**
   * Calls `onResult` with the current rows, then whenever they changed;
   * `onError` when a run fails (the watch keeps going). Returns a stop function.
   */
  watch<T>(sql: string, params: readonly SqliteParam[], callbacks: WatchCallbacks<T>): () => void;
  /** The current, immutable status snapshot; a change produces a new object. */
  readonly currentStatus: SyncStatus;
  /** Calls `statusChanged` with each new snapshot. Returns an unsubscribe function. */
  registerListener(listener: StatusListener): () => void;
  /** Rejected local writes, oldest first. */
  getRejections(): Promise<RejectedWrite[]>;
  /** Deletes the named rejections (all without `ids`). Resolves to how many went. */
  clearRejections(ids?: readonly number[]): Promise<number>;
}

const FerryContext = createContext<FerryReactDatabase | null>(null);
FerryContext.displayName = 'FerryContext';

export interface FerryProviderProps {
  /** The open database the hooks below read from. */
  readonly db: FerryReactDatabase;
  readonly children?: ReactNode;
}

/** Makes `db` available to Ferry's hooks in `children`. */
export function FerryProvider({ db, children }: FerryProviderProps): ReactElement {
  return createElement(FerryContext.Provider, { value: db }, children);
}

/**
 * The database of the nearest {@link FerryProvider}. Throws when there is
 * none. The type parameter states what was provided (default `FerryDatabase`);
 * it is not checked at run time.
 */
export function useFerry<D extends FerryReactDatabase = FerryDatabase>(): D {
  const db = useContext(FerryContext);
  if (db === null) {
    throw new FerryError(
      'FERRY_C1011',
      'No Ferry database here: wrap the component in <FerryProvider db={db}> (from @ferry/react) before using Ferry hooks',
    );
  }
  return db as D;
}
