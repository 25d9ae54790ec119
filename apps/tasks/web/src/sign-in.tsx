import { useEffect, useState } from 'react';
import { fetchDemoUsers, type DemoUser } from './session';

/** The sign-in switch: the seeded users from the demo backend. */
export function SignIn({ onSignIn, busy }: { onSignIn(user: string): void; busy: boolean }) {
  const [users, setUsers] = useState<DemoUser[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let live = true;
    setError(null);
    fetchDemoUsers().then(
      (found) => live && setUsers(found),
      (failure: unknown) => live && setError(failure instanceof Error ? failure.message : String(failure)),
    );
    return () => {
      live = false;
    };
  }, [attempt]);

  return (
    <section className="sign-in" data-testid="sign-in" aria-labelledby="sign-in-title">
      <h2 id="sign-in-title">Sign in</h2>
      <p>
        Pick a demo user. The demo backend signs a sync token for them; the board then syncs their workspaces into this
        browser&apos;s local SQLite.
      </p>
      {error !== null && (
        <p role="alert">
          Could not load the demo users: {error}{' '}
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Retry
          </button>
        </p>
      )}
      {users === null && error === null && <p>Loading users…</p>}
      {users !== null && (
        <ul className="users">
          {users.map((user) => (
            <li key={user.id} data-user={user.id}>
              <span className="avatar" aria-hidden="true">
                {user.id.slice(0, 1).toUpperCase()}
              </span>
              <span>
                <strong>{user.id}</strong> ({user.workspaces} workspace{user.workspaces === 1 ? '' : 's'})
              </span>
              <button type="button" disabled={busy} onClick={() => onSignIn(user.id)}>
                Sign in as {user.id}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
