import type { WebFerryDatabase } from '@ferry/client-web';
import { FerryProvider, useStatus } from '@ferry/react';
import { useCallback, useEffect, useState } from 'react';
import { Board } from './board';
import { openTasksDatabase } from './database';
import { FirstSync } from './first-sync';
import { Rejections } from './rejections';
import { connectorFor, storedUser, storeUser, USER_KEY } from './session';
import { SignIn } from './sign-in';
import { StatusBar } from './status-bar';

/** Retry a lost connection after at most 10 s (and at once when the browser comes back online). */
const CONNECT_OPTIONS = { retryDelay: { maxMs: 10_000 } };

export function App({ offlineReady }: { offlineReady: boolean }) {
  const [db, setDb] = useState<WebFerryDatabase | null>(null);
  const [openError, setOpenError] = useState<string | null>(null);
  const [user, setUser] = useState<string | null>(storedUser);
  const [switching, setSwitching] = useState(false);

  useEffect(() => {
    openTasksDatabase().then(setDb, (error: unknown) => setOpenError(String(error)));
  }, []);

  // Another tab signed in or out: this tab follows (its database is the same one).
  useEffect(() => {
    const onStorage = (event: StorageEvent): void => {
      if (event.key === USER_KEY) location.reload();
    };
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, []);

  // Sync as the signed-in user while signed in. With several tabs open, one of them holds the connection.
  useEffect(() => {
    if (db === null || user === null) return;
    const connector = connectorFor(user);
    void db.connect(connector, CONNECT_OPTIONS);
    const reconnect = (): void => void db.connect(connector, CONNECT_OPTIONS);
    window.addEventListener('online', reconnect);
    return () => {
      window.removeEventListener('online', reconnect);
      void db.disconnect();
    };
  }, [db, user]);

  /**
   * Switching user: the previous user's synced rows, queued writes and sync
   * positions go (`disconnectAndClear`) before anyone else connects. The new
   * user is stored first, so another tab still syncing as the previous one
   * stops asking for their data and reloads.
   */
  const switchTo = useCallback(
    async (next: string | null) => {
      if (db === null) return;
      setSwitching(true);
      try {
        storeUser(next);
        setUser(null);
        await db.disconnectAndClear();
        setUser(next);
      } finally {
        setSwitching(false);
      }
    },
    [db],
  );

  return (
    <div className="app">
      <header className="app-header">
        <h1>Ferry tasks</h1>
        {db !== null && user !== null && (
          <FerryProvider db={db}>
            <StatusBar />
          </FerryProvider>
        )}
        {user !== null && (
          <div className="session">
            <span data-testid="signed-in-as">Signed in as {user}</span>
            <button type="button" disabled={switching} onClick={() => void switchTo(null)}>
              Switch user
            </button>
          </div>
        )}
      </header>
      <main>
        {openError !== null && <p role="alert">Could not open the local database: {openError}</p>}
        {user === null ? (
          <SignIn busy={db === null || switching} onSignIn={(next) => void switchTo(next)} />
        ) : db === null ? (
          openError === null && <p>Opening the local database…</p>
        ) : (
          <FerryProvider db={db}>
            <SignedIn user={user} />
          </FerryProvider>
        )}
      </main>
      <footer className="app-footer" data-testid="storage">
        {db === null
          ? 'Local SQLite: loading…'
          : `Local SQLite ${db.sqliteVersion} on ${db.vfs === 'opfs' ? 'OPFS' : 'IndexedDB'}`}
        {offlineReady && <span data-testid="offline-ready"> · works offline</span>}
      </footer>
    </div>
  );
}

function SignedIn({ user }: { user: string }) {
  const hasSynced = useStatus((s) => s.hasSynced);
  if (!hasSynced) return <FirstSync user={user} />;
  return (
    <>
      <Rejections />
      <Board user={user} />
    </>
  );
}
