import { join } from 'node:path';
import { column, Schema, Table } from '@ferry/client';
import { FerryError } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { openFerryDatabase } from './open-ferry-database.js';
import { FakeBuckets, FakeSyncService } from './test-support/fake-sync-service.js';
import { connector, openTestDb, tempDir } from './test-support/test-db.js';

describe('local schema', () => {
  it('creates real typed tables with their indexes, queryable and extensible by the app', async () => {
    await using t = await openTestDb();
    const columns = await t.db.getAll<{ name: string; type: string; pk: number }>(
      `SELECT name, type, pk FROM pragma_table_info('todos') ORDER BY cid`,
    );
    expect(columns).toEqual([
      { name: 'id', type: 'TEXT', pk: 1 },
      { name: 'list_id', type: 'TEXT', pk: 0 },
      { name: 'title', type: 'TEXT', pk: 0 },
      { name: 'done', type: 'INTEGER', pk: 0 },
      { name: 'amount', type: 'REAL', pk: 0 },
      { name: 'big', type: 'INTEGER', pk: 0 },
    ]);
    expect(await t.db.get(`SELECT type FROM sqlite_schema WHERE name = 'todos'`)).toEqual({ type: 'table' });
    const index = await t.db.getAll<{ name: string; desc: number }>(
      `SELECT name, desc FROM pragma_index_xinfo('todos__by_list') WHERE key = 1`,
    );
    expect(index).toEqual([
      { name: 'list_id', desc: 0 },
      { name: 'title', desc: 1 },
    ]);
    const plan = await t.db.getAll<{ detail: string }>(
      `EXPLAIN QUERY PLAN SELECT * FROM todos WHERE list_id = ? ORDER BY title DESC`,
      ['l'],
    );
    expect(plan.map((p) => p.detail).join('\n')).toContain('todos__by_list');

    await t.db.execute('CREATE INDEX my_todos_by_amount ON todos (amount)');
    await t.db.close();
    // reopening keeps the app's own index
    const db = await openFerryDatabase({ path: t.path, schema: t.db.schema });
    expect(
      await db.getAll(
        `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'todos' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
      ),
    ).toEqual([{ name: 'my_todos_by_amount' }, { name: 'todos__by_list' }]);
    await db.close();
  });

  it('adds tables, columns and indexes on open, drops removed indexes, and fills new columns from kept data without any network', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'app.db');
      const v1 = new Schema({
        todos: new Table({ title: column.text }, { indexes: { by_title: ['title'] } }),
      });
      const service = new FakeSyncService();
      const db1 = await openFerryDatabase({ path, schema: v1, fetch: service.fetch });
      const server = new FakeBuckets();
      const g = server.bucket('g[]');
      g.put('todos', 't1', '{"id":"t1","title":"one","done":1,"big":9007199254740993}');
      g.put('lists', 'l1', { id: 'l1', name: 'Groceries' });
      await db1.connect(connector);
      const stream = await service.nextStream();
      stream.send(server.checkpoint());
      stream.send(g.data());
      stream.send(server.complete());
      await db1.waitForFirstSync();
      await db1.close();

      const v2 = new Schema({
        todos: new Table(
          { title: column.text, done: column.integer, big: column.integer },
          { indexes: { by_done: ['done'] } },
        ),
        lists: new Table({ name: column.text }),
      });
      const offline = new FakeSyncService();
      const db2 = await openFerryDatabase({ path, schema: v2, fetch: offline.fetch });
      expect(offline.requests).toHaveLength(0);
      expect(await db2.getAll('SELECT id, title, done, CAST(big AS TEXT) AS big FROM todos')).toEqual([
        { id: 't1', title: 'one', done: 1, big: '9007199254740993' },
      ]);
      expect(await db2.getAll('SELECT id, name FROM lists')).toEqual([{ id: 'l1', name: 'Groceries' }]);
      expect(await db2.getAll(`SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'todos__%'`)).toEqual([
        { name: 'todos__by_done' },
      ]);
      expect(db2.currentStatus.hasSynced).toBe(true);
      // filling tables from kept data is not a local write
      expect(await db2.getCrudBatch()).toBeNull();
      await db2.close();
    } finally {
      cleanup();
    }
  });

  it('rejects invalid names with FERRY_C1005', () => {
    const attempts = [
      () => new Schema({ 'bad name': new Table({}) }),
      () => new Schema({ ferry_x: new Table({}) }),
      () => new Schema({ t: new Table({ id: column.text }) }),
      () => new Schema({ t: new Table({ 'a-b': column.text }) }),
      () => new Schema({ t: new Table({ a: column.text }, { indexes: { i: ['missing'] } }) }),
      () => new Schema({ T: new Table({}), t: new Table({}) }),
    ];
    for (const attempt of attempts) {
      let error: unknown;
      try {
        attempt();
      } catch (e) {
        error = e;
      }
      expect(FerryError.is(error) && error.code).toBe('FERRY_C1005');
    }
  });

  it('disconnectAndClear empties synced tables and sync state but keeps local-only tables', async () => {
    await using t = await openTestDb();
    await t.db.execute('INSERT INTO drafts (id, body) VALUES (?, ?)', ['d1', 'keep me']);
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'x' });
    await t.connect();
    const stream = await t.service.nextStream();
    const clientId = stream.request.body.client_id;
    stream.send(server.checkpoint());
    stream.send(g.data());
    stream.send(server.complete());
    await t.db.waitForFirstSync();
    await t.db.execute(`UPDATE todos SET title = 'local' WHERE id = 't1'`);
    expect(t.db.currentStatus.pendingCount).toBe(1);

    await t.db.disconnectAndClear();
    // queued writes go with the synced data
    expect(await t.db.getCrudBatch()).toBeNull();
    expect(t.db.currentStatus.pendingCount).toBe(0);
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([]);
    expect(await t.db.getAll('SELECT id, body FROM drafts')).toEqual([{ id: 'd1', body: 'keep me' }]);
    for (const table of ['ferry_oplog', 'ferry_buckets', 'ferry_dirty']) {
      expect(await t.db.get(`SELECT count(*) AS n FROM ${table}`)).toEqual({ n: 0 });
    }
    expect(t.db.currentStatus.hasSynced).toBe(false);
    await t.connect();
    const next = await t.service.nextStream();
    expect(next.request.body.buckets).toEqual([]);
    expect(next.request.body.client_id).not.toBe(clientId);
  });
});
