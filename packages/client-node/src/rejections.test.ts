import type { RejectedWrite } from '@ferry/client';
import type { SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets, type FakeStream } from './test-support/fake-sync-service.js';
import { openTestDb, type TestContext } from './test-support/test-db.js';

async function syncTo(t: TestContext, server: FakeBuckets, stream: FakeStream, lines: SyncLine[]): Promise<void> {
  const before = t.db.currentStatus.lastSyncedAt;
  for (const line of lines) stream.send(line);
  stream.send(server.complete());
  await eventually(() => t.db.currentStatus.lastSyncedAt !== before && !t.db.currentStatus.downloading);
}

/** A database synced to one bucket holding todos t1 and t2. */
async function synced(t: TestContext): Promise<{ server: FakeBuckets; stream: FakeStream }> {
  const server = new FakeBuckets();
  const g = server.bucket('g[]');
  g.put('todos', 't1', { title: 'server t1', done: 0 });
  g.put('todos', 't2', { title: 'server t2', done: 0 });
  await t.connect();
  const stream = await t.service.nextStream();
  await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
  return { server, stream };
}

describe('rejections (guarantee 3)', () => {
  it('a rejected insert disappears, a rejected update returns to server state, later ops stay pending', async () => {
    await using t = await openTestDb();
    const { server, stream } = await synced(t);
    const watched: unknown[][] = [];
    const stopWatch = t.db.watch(`SELECT id, code FROM ferry_rejections ORDER BY id`, [], {
      onResult: (rows) => watched.push(rows),
    });
    await eventually(() => watched.length === 1);
    const todos: unknown[][] = [];
    const stopTodos = t.db.watch(`SELECT id, title, done FROM todos ORDER BY id`, [], {
      onResult: (rows) => todos.push(rows),
    });

    await t.db.writeTransaction(async (tx) => {
      await tx.execute(`INSERT INTO todos (id, title, big) VALUES ('ghost', 'mine', 9007199254740993)`);
      await tx.execute(`UPDATE todos SET title = 'forbidden' WHERE id = 't1'`);
    });
    await t.db.execute(`UPDATE todos SET done = 1 WHERE id = 't1'`); // a later op on the same row
    await t.db.execute(`UPDATE todos SET title = 'fine' WHERE id = 't2'`); // another row
    expect(t.db.currentStatus.pendingCount).toBe(4);

    const tx = await t.db.getNextCrudTransaction();
    expect(tx!.crud.map((c) => c.op)).toEqual(['PUT', 'PATCH']);
    await tx!.complete({
      rejected: [
        { op: tx!.crud[0]!, code: 'FERRY_S6001', message: 'inserts into todos are not allowed' },
        { op: tx!.crud[1]!, code: 'FERRY_S6006', message: 'another op of the transaction was rejected' },
      ],
    });

    expect(await t.db.getAll(`SELECT id, title, done FROM todos ORDER BY id`)).toEqual([
      { id: 't1', title: 'server t1', done: 1 },
      { id: 't2', title: 'fine', done: 0 },
    ]);
    expect(t.db.currentStatus.pendingCount).toBe(2);
    const stored: RejectedWrite[] = await t.db.getRejections();
    expect(
      stored.map(({ op, table, rowId, opData, code, message }) => ({ op, table, rowId, opData, code, message })),
    ).toEqual([
      {
        op: 'PUT',
        table: 'todos',
        rowId: 'ghost',
        opData: { list_id: null, title: 'mine', done: null, amount: null, big: 9007199254740993n },
        code: 'FERRY_S6001',
        message: 'inserts into todos are not allowed',
      },
      {
        op: 'PATCH',
        table: 'todos',
        rowId: 't1',
        opData: { title: 'forbidden' },
        code: 'FERRY_S6006',
        message: 'another op of the transaction was rejected',
      },
    ]);
    expect(stored[0]!.transactionId).toBe(stored[1]!.transactionId);
    expect(stored[0]!.rejectedAt).toBeInstanceOf(Date);
    expect(stored[0]!.hlc).not.toBe('');
    await eventually(() => watched.length === 2);
    expect(watched[1]).toEqual([
      { id: stored[0]!.id, code: 'FERRY_S6001' },
      { id: stored[1]!.id, code: 'FERRY_S6006' },
    ]);
    // Never a ghost: no todos emission after the rejection shows the rejected values.
    await eventually(() => JSON.stringify(todos.at(-1)).includes('server t1'));
    const last = todos.at(-1)!;
    expect(JSON.stringify(last)).not.toContain('ghost');
    expect(JSON.stringify(last)).not.toContain('forbidden');

    // The rebuilt rows keep following the server underneath the remaining pending ops.
    server.bucket('g[]').put('todos', 't1', { title: 'server t1 v2', done: 0 });
    await syncTo(t, server, stream, [server.diff(['g[]']), server.bucket('g[]').data()]);
    expect(await t.db.get(`SELECT title, done FROM todos WHERE id = 't1'`)).toEqual({ title: 'server t1 v2', done: 1 });

    // The app clears what it has shown.
    expect(await t.db.clearRejections([stored[0]!.id])).toBe(1);
    expect((await t.db.getRejections()).map((r) => r.rowId)).toEqual(['t1']);
    await eventually(() => watched.length === 3);
    // Plain SQL works too (and is watched).
    await t.db.execute(`DELETE FROM ferry_rejections`);
    await eventually(() => watched.length === 4);
    expect(watched[3]).toEqual([]);
    expect(await t.db.clearRejections()).toBe(0);
    stopWatch();
    stopTodos();
  });

  it('a rejected delete brings the server row back; complete({ through }) settles only a prefix', async () => {
    await using t = await openTestDb();
    await synced(t);
    await t.db.execute(`DELETE FROM todos WHERE id = 't1'`);
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'a')`);
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l2', 'b')`);
    const batch = await t.db.getCrudBatch(10);
    expect(batch!.crud).toHaveLength(3);
    await batch!.complete({
      through: batch!.crud[1]!,
      rejected: [{ op: batch!.crud[0]!, code: 'FERRY_S6004', message: 'not your row' }],
    });
    expect(await t.db.getAll(`SELECT id, title FROM todos ORDER BY id`)).toEqual([
      { id: 't1', title: 'server t1' },
      { id: 't2', title: 'server t2' },
    ]);
    // l1 went to the overlay, l2 is still queued
    expect(await t.db.getAll(`SELECT row_id FROM ferry_overlay`)).toEqual([{ row_id: 'l1' }]);
    expect((await t.db.getCrudBatch())!.crud.map((c) => c.id)).toEqual(['l2']);
    expect(t.db.currentStatus.pendingCount).toBe(1);
    expect(await t.db.getAll(`SELECT id FROM lists ORDER BY id`)).toEqual([{ id: 'l1' }, { id: 'l2' }]);
  });

  it('a rejection never exposes half a checkpoint: a row with staged data is rebuilt when that checkpoint applies', async () => {
    await using t = await openTestDb();
    const { server, stream } = await synced(t);
    await t.db.execute(`UPDATE todos SET title = 'rejected' WHERE id = 't1'`);
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'server t1 v2', done: 0 });
    stream.send(server.diff(['g[]']));
    stream.send(g.data());
    stream.send({ token_expires_in: 60 }); // a control line: the data is staged now
    await eventually(async () => (await t.db.getAll(`SELECT 1 FROM ferry_dirty WHERE row_id = 't1'`)).length === 1);

    const tx = await t.db.getNextCrudTransaction();
    await tx!.complete({ rejected: [{ op: tx!.crud[0]!, code: 'FERRY_S6002', message: 'title is read-only' }] });
    expect(await t.db.get(`SELECT title FROM todos WHERE id = 't1'`)).not.toEqual({ title: 'server t1 v2' });
    expect(await t.db.getRejections()).toHaveLength(1);

    await syncTo(t, server, stream, []);
    expect(await t.db.get(`SELECT title FROM todos WHERE id = 't1'`)).toEqual({ title: 'server t1 v2' });
  });

  it('complete() refuses rejections outside the handled ops', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'a')`);
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l2', 'b')`);
    const batch = await t.db.getCrudBatch(10);
    await expect(
      batch!.complete({ through: batch!.crud[0]!, rejected: [{ op: batch!.crud[1]!, code: 'X', message: 'x' }] }),
    ).rejects.toThrow(RangeError);
    expect(t.db.currentStatus.pendingCount).toBe(2);
  });
});
