import { PassThrough } from 'node:stream';
import { NdjsonDecoder, SyncRequestSchema } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryBucketStorage } from '../storage/memory-storage.js';
import { SharedOpReader } from './op-cache.js';
import { SyncSession } from './sync-session.js';
import { testRules } from './testing.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SyncSession', () => {
  it('coalesces checkpoints that arrive while the client is slow into one diff', async () => {
    const storage = new MemoryBucketStorage();
    storage.put('global[]', { object_type: 'items', object_id: 'a', data: { id: 'a' } });
    storage.commit();
    const session = await SyncSession.open(
      {
        storage,
        rules: await testRules(),
        opReader: new SharedOpReader(storage),
        maxBuckets: 100,
        keepaliveMs: 60_000,
      },
      { userId: 'u1', payload: { sub: 'u1' }, expiresAt: new Date(Date.now() + 3_600_000) },
      SyncRequestSchema.parse({}),
    );
    // A sink nobody reads yet: the session blocks on its first lines.
    const sink = new PassThrough({ highWaterMark: 1 });
    const running = session.run(sink);
    await sleep(20);
    const ids: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      storage.put('global[]', { object_type: 'items', object_id: `n${i}`, data: { id: `n${i}` } });
      ids.push(storage.commit());
    }
    await sleep(20);

    const lines: Record<string, { last_op_id?: string; bucket?: string; data?: { object_id: string }[] }>[] = [];
    const decoder = new NdjsonDecoder();
    sink.on('data', (chunk: Buffer) => decoder.push(chunk, (line) => lines.push(JSON.parse(line))));
    for (let i = 0; i < 100 && lines.filter((l) => 'checkpoint_complete' in l).length < 2; i++) await sleep(10);
    await sleep(50);
    session.stop();
    expect(await running).toBe('stopped');

    const kinds = lines.map((line) => Object.keys(line)[0]).filter((kind) => kind !== 'token_expires_in');
    // user["u1"] (priority 1) is empty but still completes first.
    expect(kinds).toEqual([
      'checkpoint',
      'partial_checkpoint_complete',
      'data',
      'checkpoint_complete',
      'checkpoint_diff',
      'data',
      'checkpoint_complete',
    ]);
    const diff = lines.find((line) => 'checkpoint_diff' in line)!.checkpoint_diff!;
    expect(diff.last_op_id).toBe(String(ids[2]));
    const lastData = lines.filter((line) => 'data' in line).at(-1)!.data!;
    expect(lastData.data!.map((op) => op.object_id)).toEqual(['n0', 'n1', 'n2']);
    expect(storage.subscriberCount).toBe(0);
  });
});
