import { useStatus } from '@ferry/react';

/** Shown until the first checkpoint is in local SQLite; afterwards the board never waits on the network. */
export function FirstSync({ user }: { user: string }) {
  const progress = useStatus((s) => s.downloadProgress);
  const downloadError = useStatus((s) => s.downloadError);
  const total = progress?.totalOps ?? 0;
  const done = Math.min(progress?.downloadedOps ?? 0, total);
  return (
    <section className="first-sync" data-testid="first-sync" aria-labelledby="first-sync-title">
      <h2 id="first-sync-title">Syncing {user}&apos;s workspaces</h2>
      <p>The first sync downloads everything once; from then on the board opens from local SQLite, even offline.</p>
      {progress === null ? (
        <>
          <progress aria-label="First sync progress" />
          <p data-testid="first-sync-progress">Connecting…</p>
        </>
      ) : (
        <>
          <progress aria-label="First sync progress" max={Math.max(total, 1)} value={done} />
          <p data-testid="first-sync-progress">
            Downloaded {done} of {total} changes
          </p>
        </>
      )}
      {downloadError !== undefined && <p role="alert">Still trying: {downloadError.message}</p>}
    </section>
  );
}
