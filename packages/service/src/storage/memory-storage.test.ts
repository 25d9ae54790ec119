import { addChecksums } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryBucketStorage } from './memory-storage.js';
import type { CheckpointUpdate } from './types.js';

function nextUpdate(storage: MemoryBucketStorage): Promise<CheckpointUpdate> {
  return new Promise((resolve) => {
    const off = storage.subscribe((update) => {
      off();
      resolve(update);
    });
  });
}

describe('MemoryBucketStorage', () => {
  it('has no checkpoint until the first commit, and hides staged ops', async () => {
    const storage = new MemoryBucketStorage();
    expect(await storage.getLatestCheckpoint()).toBeNull();
    storage.put('b[]', { object_type: 't', object_id: '1', data: { id: '1' } });
    expect(await storage.readBucketOps('b[]', 0n, 100n, 10)).toEqual([]);
    expect((await storage.getCheckpointState(['b[]'])).states.get('b[]')).toEqual({
      checksum: 0,
      count: 0,
      lastOpId: 0n,
    });
    const cp = storage.commit();
    expect(cp).toBe(1n);
    expect(await storage.getLatestCheckpoint()).toBe(1n);
    expect(await storage.readBucketOps('b[]', 0n, cp, 10)).toHaveLength(1);
  });

  it('keeps checksum and count equal to the sum of the ops, per bucket', async () => {
    const storage = new MemoryBucketStorage();
    for (let i = 0; i < 5; i++)
      storage.put('a[]', { object_type: 't', object_id: String(i), data: { id: String(i), n: i } });
    storage.put('b[]', { object_type: 't', object_id: 'x', data: '{"id":"x"}' });
    storage.remove('a[]', { object_type: 't', object_id: '0' });
    const cp = storage.commit();
    const { checkpoint, states } = await storage.getCheckpointState(['a[]', 'b[]', 'none[]']);
    expect(checkpoint).toBe(cp);
    const ops = await storage.readBucketOps('a[]', 0n, cp, 100);
    expect(ops.map((op) => op.op)).toEqual(['PUT', 'PUT', 'PUT', 'PUT', 'PUT', 'REMOVE']);
    expect(states.get('a[]')).toEqual({
      checksum: ops.reduce((sum, op) => addChecksums(sum, op.checksum), 0),
      count: 6,
      lastOpId: BigInt(ops.at(-1)!.op_id),
    });
    expect(states.get('none[]')).toEqual({ checksum: 0, count: 0, lastOpId: 0n });
  });

  it('pages with after/upTo/limit and never returns ops past upTo', async () => {
    const storage = new MemoryBucketStorage();
    for (let i = 0; i < 10; i++) storage.put('a[]', { object_type: 't', object_id: String(i), data: {} });
    storage.commit();
    const page1 = await storage.readBucketOps('a[]', 0n, 10n, 4);
    expect(page1.map((op) => op.op_id)).toEqual(['1', '2', '3', '4']);
    const page2 = await storage.readBucketOps('a[]', 4n, 6n, 4);
    expect(page2.map((op) => op.op_id)).toEqual(['5', '6']);
    expect(await storage.readBucketOps('a[]', 10n, 10n, 4)).toEqual([]);
  });

  it('notifies subscribers with the changed buckets and lookups of each commit', async () => {
    const storage = new MemoryBucketStorage();
    storage.commit();
    const pending = nextUpdate(storage);
    storage.put('a[]', { object_type: 't', object_id: '1', data: {} });
    storage.setParameterRows('lk', [{ list_id: 'l1' }]);
    const cp = storage.commit();
    const update = await pending;
    expect(update.checkpoint).toBe(cp);
    expect(update.previous).toBe(1n);
    expect([...update.changedBuckets!.keys()]).toEqual(['a[]']);
    expect(update.changedBuckets!.get('a[]')!.count).toBe(1);
    expect([...update.changedLookups!]).toEqual(['lk']);
    expect(await storage.getParameterRows(['lk', 'other'])).toEqual(new Map([['lk', [{ list_id: 'l1' }]]]));
  });

  it('gives parameter-only commits a fresh, larger checkpoint', async () => {
    const storage = new MemoryBucketStorage();
    storage.put('a[]', { object_type: 't', object_id: '1', data: {} });
    const first = storage.commit();
    storage.setParameterRows('lk', []);
    const second = storage.commit();
    expect(second).toBeGreaterThan(first);
    const pending = nextUpdate(storage);
    storage.commit({ withoutChangeSets: true });
    const update = await pending;
    expect(update.changedBuckets).toBeNull();
    expect(update.changedLookups).toBeNull();
  });

  it('stops notifying after unsubscribe', async () => {
    const storage = new MemoryBucketStorage();
    const seen: bigint[] = [];
    const off = storage.subscribe((u) => seen.push(u.checkpoint));
    storage.commit();
    await Promise.resolve();
    off();
    storage.commit();
    await Promise.resolve();
    expect(seen).toEqual([1n]);
    expect(storage.subscriberCount).toBe(0);
  });
});
