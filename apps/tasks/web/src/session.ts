// Who is signed in, and the connector that syncs as them. The token comes
// from the demo backend `ferry dev` serves (`POST /demo/token`), a stand-in
// for a real app's own login.
import { ferryConnector, type FerryConnector } from '@ferry/client';

export interface DemoUser {
  id: string;
  /** Workspaces the user is a member of. */
  workspaces: number;
}

/** localStorage key of the signed-in user: shared by every tab of the app. */
export const USER_KEY = 'ferry-tasks:user';

export function storedUser(): string | null {
  return localStorage.getItem(USER_KEY);
}

export function storeUser(user: string | null): void {
  if (user === null) localStorage.removeItem(USER_KEY);
  else localStorage.setItem(USER_KEY, user);
}

/** `GET /demo/users`: the seeded users one may sign in as. */
export async function fetchDemoUsers(): Promise<DemoUser[]> {
  const response = await fetch('/demo/users');
  if (!response.ok) throw new Error(`could not load the demo users (HTTP ${response.status})`);
  return ((await response.json()) as { users: DemoUser[] }).users;
}

async function fetchDemoToken(user: string): Promise<string> {
  const response = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  if (!response.ok) throw new Error(`could not sign in as ${user} (HTTP ${response.status})`);
  return ((await response.json()) as { token: string }).token;
}

/**
 * Syncs and uploads as `user` through Ferry's write API, on the origin the
 * app was loaded from. It stands down (no credentials, no uploads) as soon
 * as another user is stored: a tab that still runs the sync for the previous
 * user must not download their data again after another tab cleared it.
 */
export function connectorFor(user: string): FerryConnector {
  const inner = ferryConnector({ endpoint: location.origin, fetchToken: () => fetchDemoToken(user) });
  const current = (): boolean => storedUser() === user;
  return {
    fetchCredentials: () => (current() ? inner.fetchCredentials() : Promise.resolve(null)),
    invalidateCredentials: () => inner.invalidateCredentials(),
    uploadData: (db, options) =>
      current() ? inner.uploadData(db, options) : Promise.reject(new Error(`${user} is no longer signed in`)),
  };
}
