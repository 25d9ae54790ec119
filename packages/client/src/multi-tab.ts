import { ERROR_CODES, FerryError, type ErrorCode } from '@ferry/protocol';
import type { SyncStatus, SyncStatusPatch } from './sync-status.js';

/*
 * Multi-tab coordination. In a browser every tab opens its own FerryDatabase
 * on one shared database file (e.g. OPFS). The tabs agree through two
 * injected primitives, so this file needs no DOM at runtime:
 *
 * - a leader lock (Web Locks in the browser): the tab holding
 *   `ferry:<name>:sync` runs the sync and upload loops; the others wait in
 *   line and take over when it is released (disconnect, close, tab gone);
 * - a message channel (BroadcastChannel `ferry:<name>`): committed changes,
 *   "the upload queue grew", and the leader's sync status.
 *
 * Write transactions of all tabs are serialized by a second lock,
 * `ferry:<name>:write`, so tabs queue for the file instead of failing with
 * SQLITE_BUSY.
 */

/**
 * A message channel between the tabs of one database (the browser passes
 * a `BroadcastChannel('ferry:<db name>')` through {@link broadcastTabChannel}).
 */
export interface TabChannel {
  /** Delivers `message` (structured-cloneable) to every other tab's subscribers, never to this tab's. */
  post(message: TabMessage): void;
  /** Calls `listener` with every message another tab posts. Returns an unsubscribe function. */
  subscribe(listener: (message: unknown) => void): () => void;
  /** Stops sending and receiving. */
  close(): void;
}

/**
 * Exclusive named locks shared by the tabs of one origin (the browser
 * passes `navigator.locks` through {@link webTabLocks}).
 */
export interface TabLocks {
  /**
   * Waits until this tab holds the exclusive lock `name` and resolves with
   * its release function (idempotent). Waiters are granted in request
   * order. When `signal` aborts before the lock is granted, rejects with
   * the abort reason and never grants it. A lock a tab holds is released
   * when the tab goes away.
   */
  acquire(name: string, signal?: AbortSignal): Promise<() => void>;
}

/** `FerryDatabase` option `tabs`: coordinate with the other tabs that open the same database. */
export interface TabsOptions {
  /** The database's name, the same in every tab (lock names derive from it). */
  name: string;
  /** Messages between the tabs; the database closes it on `close()`. */
  channel: TabChannel;
  locks: TabLocks;
}

/** The version of the tab message format; messages of another version are ignored. */
export const TAB_PROTOCOL_VERSION = 1;

/** An error in a broadcast status: `Error` objects do not survive structured cloning with their code. */
export interface TabError {
  readonly code: string;
  readonly message: string;
}

/** The leader's sync status as it crosses the channel (the queue fields are each tab's own). */
export interface TabStatus {
  readonly connected: boolean;
  readonly connecting: boolean;
  readonly downloading: boolean;
  readonly downloadProgress: { readonly downloadedOps: number; readonly totalOps: number } | null;
  readonly uploading: boolean;
  /** Milliseconds since the epoch, or null. */
  readonly lastSyncedAt: number | null;
  readonly hasSynced: boolean;
  readonly downloadError: TabError | null;
  readonly uploadError: TabError | null;
}

interface TabMessageBase {
  readonly v: typeof TAB_PROTOCOL_VERSION;
  /** The sending tab's random id (diagnostics). */
  readonly tab: string;
}

/** Every message tabs exchange. Receivers ignore messages they do not know (other app versions). */
export type TabMessage =
  /** A transaction committed in the sender: these tables changed (`unknown`: maybe any table). */
  | (TabMessageBase & { readonly kind: 'changed'; readonly tables: readonly string[]; readonly unknown: boolean })
  /** The sender changed the upload queue (a local write, or ops settled): recount; the leader uploads. */
  | (TabMessageBase & { readonly kind: 'queue-changed' })
  /** The leader's sync status. */
  | (TabMessageBase & { readonly kind: 'status'; readonly status: TabStatus })
  /** A tab asks the leader to send its status. */
  | (TabMessageBase & { readonly kind: 'status-request' })
  /** The sender deleted all synced data (`disconnectAndClear`): forget cached sync state; the leader restarts. */
  | (TabMessageBase & { readonly kind: 'cleared' });

export type TabMessageKind = TabMessage['kind'];

/** The message, if `value` is a well-formed message of this version, else null. */
export function parseTabMessage(value: unknown): TabMessage | null {
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  if (m['v'] !== TAB_PROTOCOL_VERSION || typeof m['tab'] !== 'string') return null;
  switch (m['kind']) {
    case 'changed':
      return Array.isArray(m['tables']) &&
        m['tables'].every((t) => typeof t === 'string') &&
        typeof m['unknown'] === 'boolean'
        ? (m as unknown as TabMessage)
        : null;
    case 'status':
      return isTabStatus(m['status']) ? (m as unknown as TabMessage) : null;
    case 'queue-changed':
    case 'status-request':
    case 'cleared':
      return m as unknown as TabMessage;
    default:
      return null;
  }
}

function isTabError(value: unknown): value is TabError | null {
  if (value === null) return true;
  if (typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  return typeof e['code'] === 'string' && typeof e['message'] === 'string';
}

function isTabStatus(value: unknown): value is TabStatus {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Record<string, unknown>;
  const progress = s['downloadProgress'];
  return (
    typeof s['connected'] === 'boolean' &&
    typeof s['connecting'] === 'boolean' &&
    typeof s['downloading'] === 'boolean' &&
    typeof s['uploading'] === 'boolean' &&
    typeof s['hasSynced'] === 'boolean' &&
    (s['lastSyncedAt'] === null || typeof s['lastSyncedAt'] === 'number') &&
    (progress === null ||
      (typeof progress === 'object' &&
        typeof (progress as Record<string, unknown>)['downloadedOps'] === 'number' &&
        typeof (progress as Record<string, unknown>)['totalOps'] === 'number')) &&
    isTabError(s['downloadError']) &&
    isTabError(s['uploadError'])
  );
}

function errorToTab(error: Error | undefined): TabError | null {
  if (error === undefined) return null;
  return { code: FerryError.is(error) ? error.code : 'unknown', message: error.message };
}

/** The parts of `status` the leader shares with the other tabs. */
export function statusToTab(status: SyncStatus): TabStatus {
  return {
    connected: status.connected,
    connecting: status.connecting,
    downloading: status.downloading,
    downloadProgress:
      status.downloadProgress === null
        ? null
        : { downloadedOps: status.downloadProgress.downloadedOps, totalOps: status.downloadProgress.totalOps },
    uploading: status.uploading,
    lastSyncedAt: status.lastSyncedAt?.getTime() ?? null,
    hasSynced: status.hasSynced,
    downloadError: errorToTab(status.downloadError),
    uploadError: errorToTab(status.lastUploadError),
  };
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/**
 * Turns received {@link TabStatus}es into status patches. The same error
 * (code and message) yields the same `Error` object each time, so an
 * unchanged status stays the same snapshot.
 */
export class TabStatusDecoder {
  private errors: { download: [TabError, Error] | null; upload: [TabError, Error] | null } = {
    download: null,
    upload: null,
  };

  decode(status: TabStatus): SyncStatusPatch {
    return {
      connected: status.connected,
      connecting: status.connecting,
      downloading: status.downloading,
      downloadProgress: status.downloadProgress,
      uploading: status.uploading,
      lastSyncedAt: status.lastSyncedAt === null ? null : new Date(status.lastSyncedAt),
      hasSynced: status.hasSynced,
      downloadError: this.error('download', status.downloadError),
      uploadError: this.error('upload', status.uploadError),
    };
  }

  private error(which: 'download' | 'upload', wire: TabError | null): Error | undefined {
    if (wire === null) {
      this.errors[which] = null;
      return undefined;
    }
    const last = this.errors[which];
    if (last !== null && last[0].code === wire.code && last[0].message === wire.message) return last[1];
    const error = isErrorCode(wire.code) ? new FerryError(wire.code, wire.message) : new Error(wire.message);
    this.errors[which] = [{ code: wire.code, message: wire.message }, error];
    return error;
  }
}

/** What a {@link TabCoordinator} calls on its database when another tab says something. */
export interface TabHost {
  /** Another tab committed a change to these tables: tell this tab's watchers. */
  changed(tables: readonly string[], unknown: boolean): void;
  /** Another tab changed the upload queue. */
  queueChanged(): void;
  /** The leader's status (only called while this tab does not lead). */
  leaderStatus(patch: SyncStatusPatch): void;
  /** This tab's status, to answer a status request (only called while this tab leads). */
  currentStatus(): SyncStatus;
  /** Another tab deleted all synced data. */
  cleared(): void;
}

/**
 * One tab's end of the coordination: lock names, the channel, message
 * encoding and dispatch. The database decides when to lead.
 */
export class TabCoordinator {
  /** This tab's random id, sent with every message. */
  readonly tabId: string;
  private readonly options: TabsOptions;
  private readonly host: TabHost;
  private readonly decoder = new TabStatusDecoder();
  private unsubscribe: (() => void) | null = null;
  private leading = false;
  private lastPosted: string | null = null;
  private closed = false;

  constructor(options: TabsOptions, host: TabHost, tabId: string) {
    this.options = options;
    this.host = host;
    this.tabId = tabId;
  }

  /** Starts listening and asks the leader, if any, for its status. */
  start(): void {
    if (this.unsubscribe !== null || this.closed) return;
    this.unsubscribe = this.options.channel.subscribe((message) => this.receive(message));
    this.post({ kind: 'status-request' });
  }

  /** The name of the lock whose holder syncs. */
  get leaderLockName(): string {
    return `ferry:${this.options.name}:sync`;
  }

  /** The name of the lock every write transaction holds. */
  get writeLockName(): string {
    return `ferry:${this.options.name}:write`;
  }

  /** Whether this tab currently runs the sync loops. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Waits for the leader lock (see {@link TabLocks.acquire}). */
  acquireLeadership(signal: AbortSignal): Promise<() => void> {
    return this.options.locks.acquire(this.leaderLockName, signal);
  }

  /** Marks this tab as leading (it answers status requests and broadcasts its status) or not. */
  setLeading(leading: boolean): void {
    this.leading = leading;
    this.lastPosted = null;
  }

  /** Runs `fn` holding the cross-tab write lock. */
  async withWriteLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.options.locks.acquire(this.writeLockName);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  postChanged(tables: Iterable<string>, unknown: boolean): void {
    const list = [...tables];
    if (list.length === 0 && !unknown) return;
    this.post({ kind: 'changed', tables: list, unknown });
  }

  postQueueChanged(): void {
    this.post({ kind: 'queue-changed' });
  }

  postCleared(): void {
    this.post({ kind: 'cleared' });
  }

  /** Broadcasts the leader's status if its shared part changed (or always with `force`). */
  publishStatus(status: SyncStatus, force = false): void {
    if (!this.leading) return;
    const wire = statusToTab(status);
    const key = JSON.stringify(wire);
    if (!force && key === this.lastPosted) return;
    this.lastPosted = key;
    this.post({ kind: 'status', status: wire });
  }

  /** Stops listening and closes the channel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.options.channel.close();
  }

  private post(body: DistributiveOmit<TabMessage, 'v' | 'tab'>): void {
    if (this.closed) return;
    this.options.channel.post({ v: TAB_PROTOCOL_VERSION, tab: this.tabId, ...body } as TabMessage);
  }

  private receive(value: unknown): void {
    if (this.closed) return;
    const message = parseTabMessage(value);
    if (message === null || message.tab === this.tabId) return;
    switch (message.kind) {
      case 'changed':
        this.host.changed(message.tables, message.unknown);
        return;
      case 'queue-changed':
        this.host.queueChanged();
        return;
      case 'status':
        if (!this.leading) this.host.leaderStatus(this.decoder.decode(message.status));
        return;
      case 'status-request':
        if (this.leading) this.publishStatus(this.host.currentStatus(), true);
        return;
      case 'cleared':
        this.host.cleared();
        return;
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

// ── browser adapters (structural: no DOM types needed to call them) ───────────

/** The part of a `BroadcastChannel` that {@link broadcastTabChannel} uses. */
export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: { readonly data: unknown }) => void): void;
  removeEventListener(type: 'message', listener: (event: { readonly data: unknown }) => void): void;
  close(): void;
}

/**
 * A {@link TabChannel} over a `BroadcastChannel` (browsers; Node ≥ 18 has
 * one too). Pass `new BroadcastChannel('ferry:' + name)`.
 */
export function broadcastTabChannel(channel: BroadcastChannelLike): TabChannel {
  const listeners = new Set<(event: { readonly data: unknown }) => void>();
  let closed = false;
  return {
    post(message) {
      if (!closed) channel.postMessage(message);
    },
    subscribe(listener) {
      const onMessage = (event: { readonly data: unknown }): void => listener(event.data);
      listeners.add(onMessage);
      channel.addEventListener('message', onMessage);
      return () => {
        listeners.delete(onMessage);
        channel.removeEventListener('message', onMessage);
      };
    },
    close() {
      if (closed) return;
      closed = true;
      for (const onMessage of listeners) channel.removeEventListener('message', onMessage);
      listeners.clear();
      channel.close();
    },
  };
}

/** The part of the Web Locks `LockManager` (`navigator.locks`) that {@link webTabLocks} uses. */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>;
}

/**
 * {@link TabLocks} on Web Locks: `webTabLocks(navigator.locks)`. The lock
 * is held until the release function is called or the tab goes away.
 */
export function webTabLocks(locks: LockManagerLike): TabLocks {
  return {
    acquire(name, signal) {
      return new Promise<() => void>((resolve, reject) => {
        const held = locks.request(name, signal === undefined ? {} : { signal }, () => {
          return new Promise<void>((release) => {
            let released = false;
            resolve(() => {
              if (released) return;
              released = true;
              release();
            });
          });
        });
        // Rejects (AbortError) only when `signal` aborted before the grant.
        held.catch((error: unknown) => reject(error instanceof Error ? error : new Error(String(error))));
      });
    },
  };
}
