// The app shell (HTML, JS, the SQLite worker and WASM) is cached by a
// service worker in built apps, so the board opens without a
// network, from the data in local SQLite. Vite's dev server serves modules
// that change on every edit: there, no service worker runs.

/** Registers `/sw.js` in built apps; calls `onReady` once it controls the page. */
export function setUpOfflineShell(onReady: () => void): void {
  if (!('serviceWorker' in navigator)) return;
  // `import.meta.hot` exists under Vite's dev server only (not `import.meta.env.PROD`:
  // a build with NODE_ENV=test, as under vitest, is not "PROD" but is still a build).
  if (import.meta.hot !== undefined) {
    // A service worker left by an earlier production build on this origin would serve stale files.
    void navigator.serviceWorker.getRegistrations().then((all) => all.forEach((r) => void r.unregister()));
    return;
  }
  const ready = (): void => {
    if (navigator.serviceWorker.controller !== null) onReady();
  };
  navigator.serviceWorker.addEventListener('controllerchange', ready);
  ready();
  navigator.serviceWorker.register('/sw.js').catch((error: unknown) => {
    console.warn('ferry tasks: no offline shell:', error);
  });
}
