// The task board's service worker: keeps the app shell available offline.
// The data is not here: it lives in the page's local SQLite (OPFS or
// IndexedDB) and syncs through Ferry. Ferry's own endpoints always go to the
// network.
const CACHE = 'ferry-tasks-shell-v1';
const NETWORK_ONLY = ['/sync/', '/write', '/demo/', '/health', '/ready', '/metrics', '/admin/'];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      // Every file of the build (listed by vite.config.ts at build time), so
      // that what the first, uncontrolled page load fetched is cached too.
      const response = await fetch('/precache.json', { cache: 'no-store' });
      const { files } = await response.json();
      const cache = await caches.open(CACHE);
      await cache.addAll(files.map((file) => `/${file}`));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (NETWORK_ONLY.some((prefix) => url.pathname.startsWith(prefix))) return;
  if (url.pathname.startsWith('/assets/')) {
    // Content-hashed: a cached copy is always right.
    event.respondWith(cacheFirst(request));
    return;
  }
  // index.html and the other unhashed files: fresh when online, cached when not.
  event.respondWith(networkFirst(request, request.mode === 'navigate' ? '/' : request));
});

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached !== undefined) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(key, { ignoreSearch: true });
    if (cached !== undefined) return cached;
    throw error;
  }
}
