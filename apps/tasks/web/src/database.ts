import { openFerryDatabase, type WebFerryDatabase, type WebVfsChoice } from '@ferry/client-web';
import { schema } from './schema';

/** One database per origin, shared by the app's tabs: whoever is signed in syncs into it. */
export const DATABASE_NAME = 'ferry-tasks.db';

/**
 * Storage from the page's `?vfs=` parameter: `opfs`, `idb` (the IndexedDB
 * fallback, as used where OPFS sync access handles are missing) or `auto`
 * (default: OPFS when available).
 */
export function vfsFromUrl(search = location.search): WebVfsChoice {
  const vfs = new URLSearchParams(search).get('vfs');
  return vfs === 'opfs' || vfs === 'idb' ? vfs : 'auto';
}

declare global {
  interface Window {
    /** The app's database, for the browser console and the end-to-end tests. */
    ferryTasksDb?: WebFerryDatabase;
  }
}

let opening: Promise<WebFerryDatabase> | null = null;

/**
 * Opens the local database (WASM SQLite in a worker) once per page; the
 * WASM is fetched only now, after first paint.
 */
export function openTasksDatabase(): Promise<WebFerryDatabase> {
  opening ??= openFerryDatabase({ name: DATABASE_NAME, schema, vfs: vfsFromUrl() }).then((db) => {
    window.ferryTasksDb = db;
    return db;
  });
  return opening;
}
