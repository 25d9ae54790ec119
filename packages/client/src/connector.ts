import { FerryError } from '@ferry/protocol';
import type { FerryDatabase } from './ferry-database.js';

/** Where and as whom to sync. */
export interface FerryCredentials {
  /** Base URL of the Ferry (or PowerSync-compatible) service, e.g. `https://sync.example.com`. */
  endpoint: string;
  /** A JWT the service accepts; sent as `Authorization: Token <token>`. */
  token: string;
  /** When the token expires, if known. */
  expiresAt?: Date;
}

/** Connects a database to a backend. */
export interface FerryConnector {
  /**
   * Returns fresh credentials. Called before every connection attempt, so a
   * reconnect after a 401 or an expiring token gets a new token. Returning
   * `null` means "not signed in": the client waits and asks again.
   */
  fetchCredentials(): Promise<FerryCredentials | null>;
  /** Called when the service rejected the last credentials (or they expired); drop any cached token. */
  invalidateCredentials?(): void;
  /**
   * Uploads queued local writes: read them with `db.getCrudBatch()` /
   * `db.getNextCrudTransaction()`, send them to the backend, and settle
   * each batch with `complete()` (applied), `complete({ rejected })` (some
   * rejected, with the server's reasons) or `complete({ through })` (only a
   * prefix handled). Called by the sync loop while connected, whenever the
   * queue is non-empty. Throwing (or returning without settling anything)
   * counts as a failure: nothing is dropped, the loop retries with jittered
   * backoff, forever. Omit it for read-only apps.
   *
   * `signal` aborts when the database disconnects: stop and abandon
   * in-flight requests (unsettled ops stay queued).
   */
  uploadData?(db: FerryDatabase, options?: UploadDataOptions): Promise<void>;
}

export interface UploadDataOptions {
  /** Aborts when the sync loop stops (disconnect, close). */
  signal?: AbortSignal;
}

/** The connector's credentials, or a `FERRY_C1001` error when it has none or `fetchCredentials()` threw. */
export async function requireCredentials(connector: FerryConnector): Promise<FerryCredentials> {
  let credentials;
  try {
    credentials = await connector.fetchCredentials();
  } catch (cause) {
    throw new FerryError('FERRY_C1001', 'fetchCredentials() failed', { cause });
  }
  if (credentials == null) throw new FerryError('FERRY_C1001', 'fetchCredentials() returned no credentials');
  return credentials;
}
