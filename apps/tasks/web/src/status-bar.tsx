import { useStatus } from '@ferry/react';
import { useSyncExternalStore } from 'react';

function subscribeOnline(onChange: () => void): () => void {
  window.addEventListener('online', onChange);
  window.addEventListener('offline', onChange);
  return () => {
    window.removeEventListener('online', onChange);
    window.removeEventListener('offline', onChange);
  };
}

/** `navigator.onLine`, live. */
export function useBrowserOnline(): boolean {
  return useSyncExternalStore(subscribeOnline, () => navigator.onLine);
}

/** Online/offline and the pending upload count, from the sync status. */
export function StatusBar() {
  const connected = useStatus((s) => s.connected);
  const connecting = useStatus((s) => s.connecting);
  const pending = useStatus((s) => s.pendingCount);
  const uploading = useStatus((s) => s.uploading);
  const online = useBrowserOnline();
  const state = online && connected ? 'online' : online && connecting ? 'connecting' : 'offline';
  const label = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' }[state];
  return (
    <div className="status-bar" role="status" aria-live="polite">
      <span className={`badge badge-${state}`} data-testid="connection" data-state={state}>
        {label}
      </span>
      <span className={`badge ${pending > 0 ? 'badge-pending' : ''}`} data-testid="pending" data-count={pending}>
        {pending === 0
          ? 'All changes saved'
          : `${pending} change${pending === 1 ? '' : 's'} waiting to upload${uploading ? ' (uploading…)' : ''}`}
      </span>
    </div>
  );
}
