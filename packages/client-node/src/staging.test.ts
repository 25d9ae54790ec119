/**
 * Staging and applying large checkpoints: data is staged in batches (not
 * per network chunk), a first sync applies the whole oplog in one pass
 * (fresh buckets need no per-row dirty marks), and none of that changes
 * what the app sees: the latest op of a row wins whichever path applies
 * it, half a checkpoint is never visible, and staged data survives a
 * dropped connection.
 */
import Database from 'better-sqlite3';
import { column, Schema, Table } from '@ferry/client';
import { type SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { openFerryDatabase } from './open-ferry-database.js';
import { eventually, FakeBuckets, FakeSyncService, type FakeStream } from './test-support/fake-sync-service.js';
import { connector, openTestDb, tempDir, todoSchema, type TestContext } from './test-support/test-db.js';

const fast = { retryDelay: { initialMs: 5, maxMs: 20 } };

async function syncTo(t: TestContext, server: FakeBuckets, stream: FakeStream, lines: SyncLine[]): Promise<void> {
  const before = t.db.currentStatus.lastSyncedAt;
  for (const line of lines) stream.send(line);
  stream.send(server.complete());
  await eventually(() => t.db.currentStatus.lastSyncedAt !== before && t.db.currentStatus.downloadError === undefined);
}

const positions = (t: TestContext) =>
  t.db.getAll<{ name: string; last_op: number }>('SELECT name, last_op FROM ferry_buckets ORDER BY name');

describe('first sync (every bucket fresh)', () => {
  it('a row held by two buckets gets the data of its latest op, whichever bucket holds it', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const a = server.bucket('a[]');
    const b = server.bucket('b[]');
    b.put('todos', 'newer-in-a', { title: 'old (b)' });
    a.put('todos', 'newer-in-a', { title: 'new (a)' });
    a.put('todos', 'newer-in-b', { title: 'old (a)' });
    b.put('todos', 'newer-in-b', { title: 'new (b)' });
    a.put('todos', 'only-a', { title: 'a' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), a.data(), b.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'newer-in-a', title: 'new (a)' },
      { id: 'newer-in-b', title: 'new (b)' },
      { id: 'only-a', title: 'a' },
    ]);
    expect(await t.db.getAll('SELECT name, fresh FROM ferry_buckets ORDER BY name')).toEqual([
      { name: 'a[]', fresh: 0 },
      { name: 'b[]', fresh: 0 },
    ]);
    expect(await t.db.get('SELECT count(*) AS n FROM ferry_dirty')).toEqual({ n: 0 });
    // The row index, dropped while staging the first checkpoint, is built again once it is applied.
    const rowIndex = `SELECT name FROM sqlite_schema WHERE type = 'index' AND name = 'ferry_oplog_row'`;
    await eventually(async () => (await t.db.getAll(rowIndex)).length === 1);

    // Later checkpoints go row by row: a drops its copy, b's remains.
    a.remove('todos', 'newer-in-a');
    await syncTo(t, server, stream, [
      { checkpoint_diff: { last_op_id: server.lastOpId, updated_buckets: [a.entry()], removed_buckets: [] } },
      a.data(),
    ]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'newer-in-a', title: 'old (b)' },
      { id: 'newer-in-b', title: 'new (b)' },
      { id: 'only-a', title: 'a' },
    ]);
  });

  it('a REMOVE in a fresh bucket still deletes a row present locally (with no pending write)', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO todos (id, title) VALUES ('local', 'mine'), ('kept', 'mine too')`);
    // Rows with pending writes are rebased (upload.test.ts); these are plain local rows.
    await t.db.execute(`DELETE FROM ferry_crud`);
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 'local', { title: 'server' });
    g.remove('todos', 'local');
    g.put('todos', 't1', { title: 'one' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'kept', title: 'mine too' },
      { id: 't1', title: 'one' },
    ]);
  });

  it('a dropped connection mid-checkpoint keeps what was staged; the resumed checkpoint applies all at once', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const a = server.bucket('a[]');
    const b = server.bucket('b[]');
    for (let i = 0; i < 20; i++) a.put('todos', `a${i}`, { title: `a${i}` });
    a.put('todos', 'shared', { title: 'old (a)' });
    b.put('todos', 'shared', { title: 'new (b)' });
    b.put('lists', 'l1', { name: 'list' });
    const emissions: number[] = [];
    const stop = t.db.watch<{ n: number }>('SELECT count(*) AS n FROM todos', [], {
      onResult: (rows) => emissions.push(rows[0]!.n),
    });
    await eventually(() => emissions.length === 1);

    await t.connect();
    let stream = await t.service.nextStream();
    stream.send(server.checkpoint());
    stream.send(a.data());
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 21);
    stream.fail();

    // The reconnect resumes after a's ops: they were staged when the connection dropped.
    stream = await t.service.nextStream();
    expect(stream.request.body.buckets).toEqual([
      { name: 'a[]', after: a.ops.at(-1)!.op_id },
      { name: 'b[]', after: '0' },
    ]);
    expect(await t.db.get('SELECT count(*) AS n FROM ferry_oplog')).toEqual({ n: 21 });
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([]);
    expect(await t.db.getAll('SELECT name, fresh FROM ferry_buckets ORDER BY name')).toEqual([
      { name: 'a[]', fresh: 1 },
      { name: 'b[]', fresh: 1 },
    ]);

    stream.send(server.checkpoint());
    stream.send(b.data());
    stream.send(server.complete());
    await t.db.waitForFirstSync();
    await eventually(() => emissions.length === 2);
    expect(emissions).toEqual([0, 21]); // nothing in between: one transaction
    expect(await t.db.get('SELECT title FROM todos WHERE id = ?', ['shared'])).toEqual({ title: 'new (b)' });
    expect(await t.db.getAll('SELECT id, name FROM lists')).toEqual([{ id: 'l1', name: 'list' }]);
    stop();
  });
  it('a table added to the schema is not filled from staged, unapplied ops', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = `${dir}/app.db`;
      const server = new FakeBuckets();
      const g = server.bucket('g[]');
      g.put('lists', 'l1', { name: 'list' });
      const service = new FakeSyncService();
      const withoutLists = new Schema({ todos: new Table({ title: column.text }) });
      let db = await openFerryDatabase({ path, schema: withoutLists, fetch: service.fetch });
      await db.connect(connector, fast);
      const stream = await service.nextStream();
      stream.send(server.checkpoint());
      stream.send(g.data());
      await eventually(() => db.currentStatus.downloadProgress?.downloadedOps === 1);
      await db.close(); // stages what is pending; nothing applied
      db = await openFerryDatabase({ path, schema: todoSchema, fetch: service.fetch });
      try {
        expect(await db.getAll('SELECT id FROM lists')).toEqual([]);
        await db.connect(connector, fast);
        const next = await service.nextStream();
        expect(next.request.body.buckets).toEqual([{ name: 'g[]', after: g.ops.at(-1)!.op_id }]);
        next.send(server.checkpoint());
        next.send(server.complete());
        await db.waitForFirstSync();
        expect(await db.getAll('SELECT id, name FROM lists')).toEqual([{ id: 'l1', name: 'list' }]);
      } finally {
        await db.close();
      }
    } finally {
      cleanup();
    }
  });
});

describe('a new bucket next to applied ones', () => {
  it('applies its rows, with the latest op winning against the applied buckets', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const a = server.bucket('a[]');
    const c = server.bucket('c[]');
    c.put('todos', 'x', { title: 'x (c)' }); // older than a's op on x
    a.put('todos', 'x', { title: 'x (a)' });
    a.put('todos', 'y', { title: 'y (a)' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(['a[]']), a.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'x', title: 'x (a)' },
      { id: 'y', title: 'y (a)' },
    ]);

    // c is new to the client: it holds x with an older op than a's, y with a newer one, and z.
    c.put('todos', 'y', { title: 'y (c)' });
    c.put('todos', 'z', { title: 'z (c)' });
    await syncTo(t, server, stream, [
      { checkpoint_diff: { last_op_id: server.lastOpId, updated_buckets: [c.entry()], removed_buckets: [] } },
      c.data(),
    ]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'x', title: 'x (a)' },
      { id: 'y', title: 'y (c)' },
      { id: 'z', title: 'z (c)' },
    ]);
    expect(await t.db.getAll('SELECT name, fresh FROM ferry_buckets ORDER BY name')).toEqual([
      { name: 'a[]', fresh: 0 },
      { name: 'c[]', fresh: 0 },
    ]);
  });
});

describe('staging in batches', () => {
  async function openWith(options: { maxPendingBytes?: number; maxPendingMs?: number }) {
    const t = await openTestDb();
    await t.db.connect(connector, { ...fast, ...options });
    const server = new FakeBuckets();
    const stream = await t.service.nextStream();
    return { t, server, stream };
  }

  it('stages nothing before the thresholds, but reports progress as data arrives', async () => {
    const { t, server, stream } = await openWith({ maxPendingBytes: 1 << 30, maxPendingMs: 60_000 });
    await using _ = t;
    const g = server.bucket('g[]');
    for (let i = 0; i < 5; i++) g.put('todos', `t${i}`, { title: `t${i}` });
    stream.send(server.checkpoint());
    stream.send(g.data());
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 5);
    expect(await positions(t)).toEqual([{ name: 'g[]', last_op: 0 }]);
    stream.send(server.complete());
    await t.db.waitForFirstSync();
    expect(await positions(t)).toEqual([{ name: 'g[]', last_op: 5 }]);
    expect(await t.db.get('SELECT count(*) AS n FROM todos')).toEqual({ n: 5 });
  });

  it('stages once maxPendingBytes are pending, or once data has waited maxPendingMs', async () => {
    for (const options of [{ maxPendingBytes: 1 }, { maxPendingBytes: 1 << 30, maxPendingMs: 0 }]) {
      const { t, server, stream } = await openWith(options);
      await using _ = t;
      const g = server.bucket('g[]');
      g.put('todos', 't1', { title: 'one' });
      stream.send(server.checkpoint());
      stream.send(g.data());
      await eventually(async () => (await positions(t))[0]?.last_op === 1);
      expect(await t.db.getAll('SELECT id FROM todos')).toEqual([]);
      stream.send(server.complete());
      await t.db.waitForFirstSync();
      expect(await t.db.getAll('SELECT id FROM todos')).toEqual([{ id: 't1' }]);
    }
  });

  it('disconnect() stages what is pending, so the next connection resumes after it', async () => {
    const { t, server, stream } = await openWith({ maxPendingBytes: 1 << 30, maxPendingMs: 60_000 });
    await using _ = t;
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'one' });
    stream.send(server.checkpoint());
    stream.send(g.data());
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 1);
    await t.db.disconnect();
    expect(await positions(t)).toEqual([{ name: 'g[]', last_op: 1 }]);
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([]);
  });
});

describe('database format 1', () => {
  const FORMAT_1_DDL = [
    `CREATE TABLE ferry_kv (key TEXT PRIMARY KEY NOT NULL, value TEXT) WITHOUT ROWID`,
    `CREATE TABLE ferry_buckets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last_op INTEGER NOT NULL DEFAULT 0,
       add_checksum INTEGER NOT NULL DEFAULT 0, count_at_last INTEGER NOT NULL DEFAULT 0, count_since_last INTEGER NOT NULL DEFAULT 0)`,
    `CREATE TABLE ferry_oplog (bucket INTEGER NOT NULL, op_id INTEGER NOT NULL, row_type TEXT NOT NULL, row_id TEXT NOT NULL,
       subkey TEXT NOT NULL, data TEXT, checksum INTEGER NOT NULL)`,
    `CREATE UNIQUE INDEX ferry_oplog_key ON ferry_oplog (bucket, row_type, row_id, subkey)`,
    `CREATE INDEX ferry_oplog_row ON ferry_oplog (row_type, row_id, op_id)`,
    `CREATE INDEX ferry_oplog_removed ON ferry_oplog (bucket) WHERE data IS NULL`,
    `CREATE TRIGGER ferry_oplog_replaced AFTER UPDATE OF op_id ON ferry_oplog BEGIN
       UPDATE ferry_buckets SET add_checksum = (add_checksum + OLD.checksum) & 4294967295 WHERE id = OLD.bucket; END`,
    `CREATE TABLE ferry_dirty (row_type TEXT NOT NULL, row_id TEXT NOT NULL, PRIMARY KEY (row_type, row_id)) WITHOUT ROWID`,
    `INSERT INTO ferry_kv VALUES ('format_version', '1')`,
  ];

  it('is upgraded in place: ops, positions and checksums kept, sync resumes without re-downloading', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = `${dir}/old.db`;
      // A format-1 database holding an applied checkpoint of g[], and a staged, unapplied op (t2).
      const server = new FakeBuckets();
      const g = server.bucket('g[]');
      const t1 = g.put('todos', 't1', { title: 'one' });
      const t2 = g.put('todos', 't2', { title: 'two' });
      const raw = new Database(path);
      for (const sql of FORMAT_1_DDL) raw.exec(sql);
      raw
        .prepare(
          `INSERT INTO ferry_buckets (id, name, last_op, count_at_last, count_since_last) VALUES (1, 'g[]', 2, 1, 1)`,
        )
        .run();
      const insert = raw.prepare(
        `INSERT INTO ferry_oplog (bucket, op_id, row_type, row_id, subkey, data, checksum) VALUES (1, ?, 'todos', ?, '', ?, ?)`,
      );
      for (const op of [t1, t2]) insert.run(Number(op.op_id), op.object_id, op.data, op.checksum);
      raw.prepare(`INSERT INTO ferry_dirty VALUES ('todos', 't2')`).run();
      raw.close();

      const service = new FakeSyncService();
      const db = await openFerryDatabase({ path, schema: todoSchema, fetch: service.fetch });
      try {
        // The table was created now and filled from the kept data: applied rows only.
        expect(await db.getAll('SELECT id, title FROM todos')).toEqual([{ id: 't1', title: 'one' }]);
        expect(await db.get(`SELECT value FROM ferry_kv WHERE key = 'format_version'`)).toEqual({ value: '2' });
        expect(await db.getAll('SELECT name, last_op, fresh FROM ferry_buckets')).toEqual([
          { name: 'g[]', last_op: 2, fresh: 0 },
        ]);
        await db.connect(connector, fast);
        const stream = await service.nextStream();
        expect(stream.request.body.buckets).toEqual([{ name: 'g[]', after: '2' }]);
        stream.send(server.checkpoint());
        stream.send(server.complete());
        await eventually(async () => (await db.getAll('SELECT id FROM todos')).length === 2);
        expect(db.currentStatus.downloadError).toBeUndefined();
        expect(await db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
          { id: 't1', title: 'one' },
          { id: 't2', title: 'two' },
        ]);
      } finally {
        await db.close();
      }
    } finally {
      cleanup();
    }
  });
});
