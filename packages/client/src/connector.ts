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
}
