import type { SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets, type FakeStream } from './test-support/fake-sync-service.js';
import { openTestDb, type TestContext } from './test-support/test-db.js';
import { deferred, ScriptedConnector } from './test-support/upload-connector.js';

/** Sends lines then checkpoint_complete, and waits until that checkpoint is applied. */
async function syncTo(t: TestContext, server: FakeBuckets, stream: FakeStream, lines: SyncLine[]): Promise<void> {
  const before = t.db.currentStatus.lastSyncedAt;
  for (const line of lines) stream.send(line);
  stream.send(server.complete());
  await eventually(() => t.db.currentStatus.lastSyncedAt !== before && !t.db.currentStatus.downloading);
}

async function overlay(t: TestContext) {
  return t.db.getAll<{ row_id: string; write_checkpoint: string | null }>(
    `SELECT row_id, write_checkpoint FROM ferry_overlay ORDER BY id`,
  );
}

describe('rebase of pending local writes (guarantee 2)', () => {
  it('a local edit never reverts: through checkpoints, upload, overlay and the acknowledging checkpoint', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { id: 't1', list_id: 'l1', title: 'server', done: 0 });
    const gate = deferred();
    const connector = new ScriptedConnector(async (db) => {
      await gate.promise;
      const batch = await db.getCrudBatch(100);
      // The backend applies the write; replication will bring it back.
      g.put('todos', 't1', { id: 't1', list_id: 'l1', title: 'mine', done: 1 });
      await batch!.complete();
    });
    await t.db.connect(connector, { retryDelay: { initialMs: 5, maxMs: 20 } });
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);

    const seen: { title: string; done: number }[] = [];
    const stop = t.db.watch<{ title: string; done: number }>(`SELECT title, done FROM todos WHERE id = 't1'`, [], {
      onResult: (rows) => seen.push(rows[0]!),
    });
    await eventually(() => seen.length === 1);
    await t.db.execute(`UPDATE todos SET title = 'mine' WHERE id = 't1'`);
    await eventually(() => seen.at(-1)?.title === 'mine');
    await eventually(() => connector.calls === 1 && t.db.currentStatus.uploading);

    // Someone else changes another column: it shows, the local title stays.
    g.put('todos', 't1', { id: 't1', list_id: 'l2', title: 'server', done: 0 });
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect(await t.db.get(`SELECT title, list_id FROM todos WHERE id = 't1'`)).toEqual({
      title: 'mine',
      list_id: 'l2',
    });
    // … and the same column: the pending local value still wins locally.
    g.put('todos', 't1', { id: 't1', list_id: 'l2', title: 'theirs', done: 0 });
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect(await t.db.get(`SELECT title, list_id FROM todos WHERE id = 't1'`)).toEqual({
      title: 'mine',
      list_id: 'l2',
    });

    // Upload: the op moves to the overlay and gets a write checkpoint.
    gate.resolve();
    await eventually(async () => (await overlay(t))[0]?.write_checkpoint === '1');
    expect(t.service.writeCheckpointRequests.map((r) => r.clientId)).toEqual([await t.db.clientId()]);
    expect(t.service.writeCheckpointRequests[0]!.headers['authorization']).toMatch(/^Token token-\d+$/);
    expect(t.db.currentStatus).toMatchObject({ pendingCount: 0, uploading: false });
    expect(t.db.currentStatus.lastUploadError).toBeUndefined();

    // A checkpoint without the write checkpoint: the overlay stays on top.
    g.put('todos', 't1', { id: 't1', list_id: 'l3', title: 'theirs again', done: 0 });
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect(await t.db.get(`SELECT title, list_id FROM todos WHERE id = 't1'`)).toEqual({
      title: 'mine',
      list_id: 'l3',
    });
    expect(await overlay(t)).toHaveLength(1);

    // The server's state after our write, with the write checkpoint: the overlay goes, the row is server state.
    g.put('todos', 't1', { id: 't1', list_id: 'l3', title: 'mine', done: 1 });
    await syncTo(t, server, stream, [server.diff(['g[]'], '1'), g.data()]);
    expect(await overlay(t)).toEqual([]);
    expect(await t.db.get(`SELECT title, list_id, done FROM todos WHERE id = 't1'`)).toEqual({
      title: 'mine',
      list_id: 'l3',
      done: 1,
    });
    await eventually(() => seen.at(-1)?.done === 1);
    stop();
    const firstMine = seen.findIndex((r) => r.title === 'mine');
    expect(firstMine).toBe(1);
    expect(seen.slice(firstMine).every((r) => r.title === 'mine')).toBe(true);
    expect(seen[0]).toEqual({ title: 'server', done: 0 });
  });

  it('a pending insert survives a checkpoint without it; a pending delete stays deleted when the row is updated', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 'gone', { title: 'server' });
    g.put('todos', 'other', { title: 'x' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);

    await t.db.execute(`INSERT INTO todos (id, title) VALUES ('new', 'mine')`);
    await t.db.execute(`DELETE FROM todos WHERE id = 'gone'`);
    g.put('todos', 'gone', { title: 'server v2' });
    g.put('todos', 'other', { title: 'y' });
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect(await t.db.getAll(`SELECT id, title FROM todos ORDER BY id`)).toEqual([
      { id: 'new', title: 'mine' },
      { id: 'other', title: 'y' },
    ]);
    // A REMOVE of a row with a pending local insert: the insert stays too.
    g.remove('todos', 'other');
    await t.db.execute(`UPDATE todos SET title = 'z' WHERE id = 'other'`);
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect(await t.db.getAll(`SELECT id, title FROM todos ORDER BY id`)).toEqual([{ id: 'new', title: 'mine' }]);
    expect(t.db.currentStatus.pendingCount).toBe(3);
  });

  it('the first sync (one-pass apply) keeps pending inserts and re-applies local writes over server rows', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO todos (id, title, done) VALUES ('local', 'mine', 0)`);
    await t.db.execute(`INSERT INTO todos (id, title, done) VALUES ('t1', 'my t1', 1)`);
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'my list')`);
    await t.db.execute(`UPDATE lists SET name = 'my list v2' WHERE id = 'l1'`);
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'server t1', done: 0, list_id: 'L' });
    g.put('todos', 't2', { title: 'server t2' });
    g.put('lists', 'l1', { name: 'server list' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll(`SELECT id, title, done, list_id FROM todos ORDER BY id`)).toEqual([
      { id: 'local', title: 'mine', done: 0, list_id: null },
      // PUT carries every column of the table: the local insert wins whole
      { id: 't1', title: 'my t1', done: 1, list_id: null },
      { id: 't2', title: 'server t2', done: null, list_id: null },
    ]);
    expect(await t.db.getAll(`SELECT id, name FROM lists`)).toEqual([{ id: 'l1', name: 'my list v2' }]);
  });

  it('a write checkpoint on the checkpoint line acknowledges only ops at or below it (compared as integers)', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('lists', 'a', { name: 'server a' });
    g.put('lists', 'b', { name: 'server b' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    await t.db.execute(`UPDATE lists SET name = 'local a' WHERE id = 'a'`);
    await t.db.execute(`UPDATE lists SET name = 'local b' WHERE id = 'b'`);
    const first = await t.db.getNextCrudTransaction();
    await first!.complete({ writeCheckpoint: '9' });
    const second = await t.db.getNextCrudTransaction();
    await second!.complete({ writeCheckpoint: '10' });
    expect(await overlay(t)).toEqual([
      { row_id: 'a', write_checkpoint: '9' },
      { row_id: 'b', write_checkpoint: '10' },
    ]);
    // '9' < '10' as numbers (not as text): only a's op is acknowledged; a shows server state, b stays local.
    await syncTo(t, server, stream, [server.checkpoint(undefined, '9')]);
    expect(await overlay(t)).toEqual([{ row_id: 'b', write_checkpoint: '10' }]);
    expect(await t.db.getAll(`SELECT id, name FROM lists ORDER BY id`)).toEqual([
      { id: 'a', name: 'server a' },
      { id: 'b', name: 'local b' },
    ]);
    g.put('lists', 'b', { name: 'local b' });
    await syncTo(t, server, stream, [server.diff(['g[]'], '10'), g.data()]);
    expect(await overlay(t)).toEqual([]);
    expect(await t.db.getAll(`SELECT id, name FROM lists ORDER BY id`)).toEqual([
      { id: 'a', name: 'server a' },
      { id: 'b', name: 'local b' },
    ]);
  });

  it('a column added to the schema later is filled from server data under pending writes', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('lists', 'l1', { name: 'server', color: 'red' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    await t.db.execute(`UPDATE lists SET name = 'mine' WHERE id = 'l1'`);
    await t.db.disconnect();
    await t.db.close();

    const { column, Schema, Table } = await import('@ferry/client');
    const { openFerryDatabase } = await import('./open-ferry-database.js');
    const v2 = new Schema({ lists: new Table({ name: column.text, color: column.text }) });
    const reopened = await openFerryDatabase({ path: t.path, schema: v2 });
    try {
      expect(await reopened.getAll(`SELECT id, name, color FROM lists`)).toEqual([
        { id: 'l1', name: 'mine', color: 'red' },
      ]);
      expect(reopened.currentStatus.pendingCount).toBe(1);
    } finally {
      await reopened.close();
    }
  });
});
