// The task board: every list renders from local SQLite (useQuery), every
// change is a local SQL write that Ferry uploads; nothing is fetched per
// interaction.
import { StrictMode, useSyncExternalStore } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app';
import { setUpOfflineShell } from './offline-shell';
import './styles.css';

let offlineReady = false;
const listeners = new Set<() => void>();
setUpOfflineShell(() => {
  offlineReady = true;
  listeners.forEach((listener) => listener());
});

function Root() {
  const ready = useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => offlineReady,
  );
  return <App offlineReady={ready} />;
}

const container = document.getElementById('app');
if (container === null) throw new Error('#app is missing from index.html');
createRoot(container).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
