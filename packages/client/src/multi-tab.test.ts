import { FerryError } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import {
  parseTabMessage,
  statusToTab,
  TabStatusDecoder,
  webTabLocks,
  type LockManagerLike,
  type TabStatus,
} from './multi-tab.js';
import { INITIAL_STATUS, patchStatus } from './sync-status.js';

const idle: TabStatus = statusToTab(INITIAL_STATUS);

describe('tab messages', () => {
  it('accepts well-formed version-1 messages and ignores everything else', () => {
    const changed = { v: 1, tab: 't', kind: 'changed', tables: ['todos'], unknown: false };
    expect(parseTabMessage(changed)).toEqual(changed);
    expect(parseTabMessage({ v: 1, tab: 't', kind: 'queue-changed' })).not.toBeNull();
    expect(parseTabMessage({ v: 1, tab: 't', kind: 'status-request' })).not.toBeNull();
    expect(parseTabMessage({ v: 1, tab: 't', kind: 'cleared' })).not.toBeNull();
    expect(parseTabMessage({ v: 1, tab: 't', kind: 'status', status: idle })).not.toBeNull();

    expect(parseTabMessage({ ...changed, v: 2 })).toBeNull();
    expect(parseTabMessage({ ...changed, tab: undefined })).toBeNull();
    expect(parseTabMessage({ ...changed, tables: [1] })).toBeNull();
    expect(parseTabMessage({ ...changed, unknown: 'no' })).toBeNull();
    expect(parseTabMessage({ v: 1, tab: 't', kind: 'something-new' })).toBeNull();
    expect(parseTabMessage({ v: 1, tab: 't', kind: 'status', status: { ...idle, hasSynced: 1 } })).toBeNull();
    expect(
      parseTabMessage({ v: 1, tab: 't', kind: 'status', status: { ...idle, downloadError: { code: 1 } } }),
    ).toBeNull();
    expect(parseTabMessage(null)).toBeNull();
    expect(parseTabMessage('changed')).toBeNull();
  });

  it('a status survives the trip: dates as numbers, errors as code and message', () => {
    const error = new FerryError('FERRY_C1008', 'the sync service answered HTTP 503');
    const status = patchStatus(INITIAL_STATUS, {
      connected: true,
      downloading: true,
      downloadProgress: { downloadedOps: 3, totalOps: 7 },
      lastSyncedAt: new Date(1_700_000_000_000),
      hasSynced: true,
      downloadError: error,
      uploadError: new TypeError('fetch failed'),
      pendingCount: 4,
    });
    const wire = structuredClone(statusToTab(status));
    expect(wire).toMatchObject({
      connected: true,
      downloadProgress: { downloadedOps: 3, totalOps: 7 },
      lastSyncedAt: 1_700_000_000_000,
      downloadError: { code: 'FERRY_C1008', message: error.message },
      uploadError: { code: 'unknown', message: 'fetch failed' },
    });
    expect(wire).not.toHaveProperty('pendingCount');

    const decoder = new TabStatusDecoder();
    const patch = decoder.decode(wire);
    const mirrored = patchStatus(INITIAL_STATUS, patch);
    expect(mirrored.lastSyncedAt?.getTime()).toBe(1_700_000_000_000);
    expect(FerryError.is(mirrored.downloadError) && mirrored.downloadError.code).toBe('FERRY_C1008');
    expect(FerryError.is(mirrored.lastUploadError)).toBe(false);
    expect(mirrored.lastUploadError?.message).toBe('fetch failed');
    expect(mirrored.pendingCount).toBe(0);
    // The same status again is the same snapshot (errors are reused), so listeners are not called again.
    expect(patchStatus(mirrored, decoder.decode(structuredClone(wire)))).toBe(mirrored);
    // A cleared error clears.
    const cleared = patchStatus(mirrored, decoder.decode({ ...wire, downloadError: null }));
    expect(cleared.downloadError).toBeUndefined();
  });
});

/** A LockManager with Web Locks' semantics for one name (FIFO, abort while waiting), for the adapter only. */
function fakeLockManager(): LockManagerLike & { held: () => boolean } {
  let tail: Promise<unknown> = Promise.resolve();
  let holding = false;
  return {
    held: () => holding,
    request(_name, options, callback) {
      const granted = tail.then(async () => {
        if (options.signal?.aborted === true) throw options.signal.reason;
        holding = true;
        try {
          return await callback({});
        } finally {
          holding = false;
        }
      });
      tail = granted.catch(() => undefined);
      return granted;
    },
  };
}

describe('webTabLocks', () => {
  it('holds the lock until release, and rejects when aborted before the grant', async () => {
    const manager = fakeLockManager();
    const locks = webTabLocks(manager);
    const release = await locks.acquire('l');
    expect(manager.held()).toBe(true);
    const controller = new AbortController();
    const waiting = locks.acquire('l', controller.signal);
    controller.abort(new Error('stop waiting'));
    release();
    await expect(waiting).rejects.toThrow('stop waiting');
    release(); // idempotent
    const again = await locks.acquire('l');
    expect(manager.held()).toBe(true);
    again();
    await new Promise((resolve) => setTimeout(resolve, 0)); // the callback's promise settles in microtasks
    expect(manager.held()).toBe(false);
  });
});
