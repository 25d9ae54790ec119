import { compileSyncRules } from '@ferry/rules';
import { createTestDatabase } from '@ferry/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresBucketStorage } from './postgres-bucket-storage.js';
import type { CheckpointUpdate } from './types.js';

const RULES = `
bucket_definitions:
  global:
    data:
      - SELECT id, title FROM todos
`;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
});

async function waitUntil(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('write checkpoints in Postgres bucket storage', () => {
  it('are covered by idle keepalive positions, notified once, and scoped to user + client', async () => {
    const url = await createTestDatabase();
    const storage = new PostgresBucketStorage({ connectionString: url });
    cleanups.push(() => storage.close());
    await storage.migrate();
    await storage.resetForSnapshot({ rulesHash: 'h', slotName: 's', tables: [] });
    const writer = await storage.openWriter(await compileSyncRules(RULES));
    cleanups.push(() => writer.close());
    await writer.completeSnapshot(100n);

    const updates: CheckpointUpdate[] = [];
    storage.subscribe((update) => updates.push(update));
    await storage.subscriptionReady();
    await waitUntil(() => updates.length === 1); // the first read

    const id = await storage.createWriteCheckpoint('u1', 'c1', 150n);
    expect(await storage.getWriteCheckpoint('u1', 'c1')).toBeNull();
    expect(await writer.advanceIdle(140n)).toBe(false);
    expect(await writer.advanceIdle(160n)).toBe(true);
    await waitUntil(() => updates.length === 2);
    expect(updates[1]!.writeCheckpoints).toEqual([{ id, userId: 'u1', clientId: 'c1' }]);
    // Nothing else changed: same checkpoint, exact empty change set.
    expect(updates[1]!.checkpoint).toBe(updates[0]!.checkpoint);
    expect(updates[1]!.changedBuckets?.size).toBe(0);
    expect(await storage.getWriteCheckpoint('u1', 'c1')).toBe(id);
    expect(await storage.getWriteCheckpoint('u1', 'c2')).toBeNull();
    expect(await storage.getWriteCheckpoint('u2', 'c1')).toBeNull();
    expect((await storage.getReplicationState()).endLsn).toBe(160n);

    // No pending write checkpoint: an idle position is not written.
    expect(await writer.advanceIdle(170n)).toBe(false);
    expect((await storage.getReplicationState()).endLsn).toBe(160n);

    // One recorded below the stored position is covered at once and notified.
    const late = await storage.createWriteCheckpoint('u2', 'c9', 120n);
    await waitUntil(() => updates.length === 3);
    expect(updates[2]!.writeCheckpoints).toEqual([{ id: late, userId: 'u2', clientId: 'c9' }]);
    expect(await storage.getWriteCheckpoint('u2', 'c9')).toBe(late);
  });
});
