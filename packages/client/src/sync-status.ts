/** Download progress towards the checkpoint being downloaded. */
export interface DownloadProgress {
  /** Ops received since the last applied checkpoint. */
  readonly downloadedOps: number;
  /** Ops the current checkpoint adds over the last applied one. */
  readonly totalOps: number;
}

/** Direction-specific activity and errors. */
export interface DataFlowStatus {
  readonly downloading: boolean;
  readonly uploading: boolean;
  readonly downloadError?: Error;
  readonly uploadError?: Error;
}

/** A snapshot of the sync state. Snapshots are immutable; a change produces a new one. */
export interface SyncStatus {
  /** A sync stream is open and answered 2xx. */
  readonly connected: boolean;
  /** Trying to open a sync stream (fetching credentials, waiting for the answer or backing off). */
  readonly connecting: boolean;
  /** A checkpoint is being downloaded and not yet applied. */
  readonly downloading: boolean;
  /** Progress of that download, or null when none is in progress. */
  readonly downloadProgress: DownloadProgress | null;
  /** When a checkpoint was last applied (persisted across restarts). */
  readonly lastSyncedAt: Date | null;
  /** A checkpoint has been applied at least once in this database. */
  readonly hasSynced: boolean;
  readonly dataFlowStatus: DataFlowStatus;
  /** The last download error (a `FerryError` with a code when Ferry knows why); cleared by the next applied checkpoint. */
  readonly downloadError?: Error;
  /** The sync loop is running the connector's `uploadData()`. */
  readonly uploading: boolean;
  /**
   * The last upload failure (`FERRY_C1009`, the connector's error as `cause`):
   * `uploadData()` threw or made no progress, or no write checkpoint could be
   * obtained. Nothing is dropped; the loop retries with backoff. Cleared by the
   * next successful upload.
   */
  readonly lastUploadError?: Error;
  /** Local writes (ops) queued for upload. */
  readonly pendingCount: number;
  /** When the oldest queued op was written, or null when the queue is empty. */
  readonly oldestPendingAt: Date | null;
}

export const INITIAL_STATUS: SyncStatus = {
  connected: false,
  connecting: false,
  downloading: false,
  downloadProgress: null,
  lastSyncedAt: null,
  hasSynced: false,
  dataFlowStatus: { downloading: false, uploading: false },
  uploading: false,
  pendingCount: 0,
  oldestPendingAt: null,
};

/** Fields that may change; `downloadError: undefined` clears the error. */
export type SyncStatusPatch = {
  connected?: boolean;
  connecting?: boolean;
  downloading?: boolean;
  downloadProgress?: DownloadProgress | null;
  lastSyncedAt?: Date | null;
  hasSynced?: boolean;
  downloadError?: Error | undefined;
  pendingCount?: number;
  oldestPendingAt?: Date | null;
  uploading?: boolean;
  /** `undefined` clears the error. */
  uploadError?: Error | undefined;
};

/** A new snapshot with `patch` applied, or `status` itself when nothing changed. */
export function patchStatus(status: SyncStatus, patch: SyncStatusPatch): SyncStatus {
  const downloading = patch.downloading ?? status.downloading;
  const downloadError = 'downloadError' in patch ? patch.downloadError : status.downloadError;
  const uploading = patch.uploading ?? status.uploading;
  const uploadError = 'uploadError' in patch ? patch.uploadError : status.lastUploadError;
  const next: SyncStatus = {
    connected: patch.connected ?? status.connected,
    connecting: patch.connecting ?? status.connecting,
    downloading,
    downloadProgress: patch.downloadProgress === undefined ? status.downloadProgress : patch.downloadProgress,
    lastSyncedAt: patch.lastSyncedAt === undefined ? status.lastSyncedAt : patch.lastSyncedAt,
    hasSynced: patch.hasSynced ?? status.hasSynced,
    dataFlowStatus: {
      downloading,
      uploading,
      ...(downloadError === undefined ? {} : { downloadError }),
      ...(uploadError === undefined ? {} : { uploadError }),
    },
    ...(downloadError === undefined ? {} : { downloadError }),
    uploading,
    ...(uploadError === undefined ? {} : { lastUploadError: uploadError }),
    pendingCount: patch.pendingCount ?? status.pendingCount,
    oldestPendingAt: patch.oldestPendingAt === undefined ? status.oldestPendingAt : patch.oldestPendingAt,
  };
  return sameStatus(status, next) ? status : next;
}

function sameStatus(a: SyncStatus, b: SyncStatus): boolean {
  return (
    a.connected === b.connected &&
    a.connecting === b.connecting &&
    a.downloading === b.downloading &&
    a.downloadProgress?.downloadedOps === b.downloadProgress?.downloadedOps &&
    a.downloadProgress?.totalOps === b.downloadProgress?.totalOps &&
    (a.downloadProgress === null) === (b.downloadProgress === null) &&
    a.lastSyncedAt?.getTime() === b.lastSyncedAt?.getTime() &&
    a.hasSynced === b.hasSynced &&
    a.downloadError === b.downloadError &&
    a.uploading === b.uploading &&
    a.lastUploadError === b.lastUploadError &&
    a.pendingCount === b.pendingCount &&
    a.oldestPendingAt?.getTime() === b.oldestPendingAt?.getTime()
  );
}
