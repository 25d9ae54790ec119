import { join } from 'node:path';
import { column, Schema, Table, type CrudEntry, type SyncStatus } from '@ferry/client';
import { compareHlc, decodeHlc, encodeHlc, HLC_MAX_COUNTER } from '@ferry/protocol';
import { describe, expect, it, vi } from 'vitest';
import { openFerryDatabase } from './open-ferry-database.js';
import { FakeBuckets } from './test-support/fake-sync-service.js';
import { openTestDb, tempDir, todoSchema } from './test-support/test-db.js';

/** Every queued op (draining nothing). */
async function queued(db: {
  getCrudBatch(limit?: number): Promise<{ crud: CrudEntry[] } | null>;
}): Promise<CrudEntry[]> {
  return (await db.getCrudBatch(1_000_000))?.crud ?? [];
}

describe('upload queue', () => {
  it('queues PUT, PATCH (changed columns only) and DELETE with one tx id per writeTransaction', async () => {
    await using t = await openTestDb();
    await t.db.writeTransaction(async (tx) => {
      await tx.execute(`INSERT INTO todos (id, list_id, title, done, amount, big) VALUES (?, ?, ?, ?, ?, ?)`, [
        't1',
        'l1',
        'Milk',
        0,
        2.5,
        9007199254740993n,
      ]);
      await tx.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'Groceries')`);
    });
    await t.db.execute(`UPDATE todos SET done = 1, title = 'Milk' WHERE id = 't1'`);
    await t.db.execute(`UPDATE todos SET done = 1 WHERE id = 't1'`); // changes nothing: queues nothing
    await t.db.execute(`UPDATE todos SET title = NULL, big = 7 WHERE id = 't1'`);
    await t.db.execute(`DELETE FROM lists WHERE id = 'l1'`);

    const ops = await queued(t.db);
    const clientId = await t.db.clientId();
    expect(ops.map(({ op, table, id, opData }) => ({ op, table, id, opData }))).toEqual([
      {
        op: 'PUT',
        table: 'todos',
        id: 't1',
        opData: { list_id: 'l1', title: 'Milk', done: 0, amount: 2.5, big: 9007199254740993n },
      },
      { op: 'PUT', table: 'lists', id: 'l1', opData: { name: 'Groceries' } },
      { op: 'PATCH', table: 'todos', id: 't1', opData: { done: 1 } },
      { op: 'PATCH', table: 'todos', id: 't1', opData: { title: null, big: 7 } },
      { op: 'DELETE', table: 'lists', id: 'l1', opData: undefined },
    ]);
    expect(ops[4]).not.toHaveProperty('opData');
    const txIds = ops.map((o) => o.transactionId);
    expect(txIds[0]).toBe(txIds[1]);
    expect(new Set(txIds.slice(1)).size).toBe(4);
    // ids and HLC stamps increase; every stamp names this client
    for (let i = 1; i < ops.length; i++) {
      expect(ops[i]!.clientId).toBeGreaterThan(ops[i - 1]!.clientId);
      expect(compareHlc(decodeHlc(ops[i]!.hlc), decodeHlc(ops[i - 1]!.hlc))).toBe(1);
      expect(ops[i]!.hlc > ops[i - 1]!.hlc).toBe(true);
    }
    expect(ops.every((o) => decodeHlc(o.hlc).node === clientId)).toBe(true);
    expect(ops.map((o) => encodeHlc(decodeHlc(o.hlc)))).toEqual(ops.map((o) => o.hlc));
    expect(await t.db.get(`SELECT count(*) AS n FROM ferry_crud WHERE client_id = ?`, [clientId])).toEqual({ n: 5 });
  });

  it('a changed id queues a DELETE of the old row and a PUT of the new one', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('a', 'A')`);
    await t.db.execute(`UPDATE lists SET id = 'b' WHERE id = 'a'`);
    const ops = await queued(t.db);
    expect(ops.slice(1).map(({ op, id, opData }) => ({ op, id, opData }))).toEqual([
      { op: 'DELETE', id: 'a', opData: undefined },
      { op: 'PUT', id: 'b', opData: { name: 'A' } },
    ]);
    expect(ops[1]!.transactionId).toBe(ops[2]!.transactionId);
  });

  it('a rolled-back transaction queues nothing; local-only tables queue nothing', async () => {
    await using t = await openTestDb();
    const failure = new Error('boom');
    await expect(
      t.db.writeTransaction(async (tx) => {
        await tx.execute(`INSERT INTO todos (id, title) VALUES ('t1', 'x')`);
        throw failure;
      }),
    ).rejects.toBe(failure);
    await t.db.execute(`INSERT INTO drafts (id, body) VALUES ('d1', 'hello')`);
    await t.db.execute(`UPDATE drafts SET body = 'bye'`);
    await t.db.execute(`DELETE FROM drafts`);
    expect(await t.db.getCrudBatch()).toBeNull();
    expect(await t.db.getNextCrudTransaction()).toBeNull();
    expect(t.db.currentStatus.pendingCount).toBe(0);
    expect(await t.db.getAll(`SELECT * FROM todos`)).toEqual([]);
    const triggers = await t.db.getAll<{ tbl_name: string }>(
      `SELECT DISTINCT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'ferry_crud%' ORDER BY 1`,
    );
    // The built-in synced tables queue too (deleting a conflict resolves it).
    expect(triggers.map((r) => r.tbl_name)).toEqual(['ferry_conflicts', 'ferry_violations', 'lists', 'todos']);
  });

  it('applying a downloaded checkpoint queues nothing; a local write after it does', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const global = server.bucket('global[]');
    global.put('todos', 't1', { id: 't1', title: 'Server', done: 0 });
    global.put('lists', 'l1', { id: 'l1', name: 'L' });
    const firstSync = t.db.waitForFirstSync();
    await t.connect();
    const stream = await t.service.nextStream();
    stream.send(server.checkpoint());
    stream.send(global.data());
    stream.send(server.complete());
    await firstSync;
    expect(await t.db.get(`SELECT title FROM todos WHERE id = 't1'`)).toEqual({ title: 'Server' });
    expect(await t.db.getCrudBatch()).toBeNull();
    expect(t.db.currentStatus.pendingCount).toBe(0);
    expect(await t.db.getOptional(`SELECT * FROM ferry_kv WHERE key = 'crud_suppressed'`)).toBeNull();

    await t.db.execute(`UPDATE todos SET done = 1 WHERE id = 't1'`);
    const ops = await queued(t.db);
    expect(ops.map(({ op, id, opData }) => ({ op, id, opData }))).toEqual([
      { op: 'PATCH', id: 't1', opData: { done: 1 } },
    ]);
    await t.db.disconnect();
  });

  it('drains in order with getCrudBatch / getNextCrudTransaction and complete(), reporting pendingCount', async () => {
    await using t = await openTestDb();
    const statuses: SyncStatus[] = [];
    t.db.registerListener({ statusChanged: (s) => statuses.push(s) });
    expect(t.db.currentStatus).toMatchObject({ uploading: false, pendingCount: 0, oldestPendingAt: null });
    await t.db.writeTransaction(async (tx) => {
      for (let i = 0; i < 3; i++) await tx.execute(`INSERT INTO lists (id, name) VALUES (?, ?)`, [`a${i}`, 'x']);
    });
    await t.db.writeTransaction(async (tx) => {
      for (let i = 0; i < 2; i++) await tx.execute(`INSERT INTO lists (id, name) VALUES (?, ?)`, [`b${i}`, 'x']);
    });
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('c0', 'x')`);
    expect(t.db.currentStatus.pendingCount).toBe(6);
    expect(t.db.currentStatus.oldestPendingAt).toBeInstanceOf(Date);
    expect(statuses.map((s) => s.pendingCount)).toEqual([3, 5, 6]);

    const tx1 = await t.db.getNextCrudTransaction();
    expect(tx1!.crud.map((c) => c.id)).toEqual(['a0', 'a1', 'a2']);
    expect(tx1!.transactionId).toBe(tx1!.crud[0]!.transactionId);
    // not completed: the same transaction again
    expect((await t.db.getNextCrudTransaction())!.crud.map((c) => c.id)).toEqual(['a0', 'a1', 'a2']);
    await tx1!.complete();
    expect(t.db.currentStatus.pendingCount).toBe(3);

    const batch = await t.db.getCrudBatch(2);
    expect(batch!.crud.map((c) => c.id)).toEqual(['b0', 'b1']);
    expect(batch!.haveMore).toBe(true);
    await batch!.complete();
    const rest = await t.db.getCrudBatch(2);
    expect(rest!.crud.map((c) => c.id)).toEqual(['c0']);
    expect(rest!.haveMore).toBe(false);
    await rest!.complete();
    expect(await t.db.getCrudBatch()).toBeNull();
    expect(t.db.currentStatus).toMatchObject({ pendingCount: 0, oldestPendingAt: null });
    expect(statuses.map((s) => s.pendingCount)).toEqual([3, 5, 6, 3, 1, 0]);
    // the rows themselves stay
    expect(await t.db.get(`SELECT count(*) AS n FROM lists`)).toEqual({ n: 6 });
  });

  it('the queue and the clock survive close and reopen (even with the wall clock set back)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'app.db');
      const db = await openFerryDatabase({ path, schema: todoSchema });
      await db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'A')`);
      const before = await queued(db);
      await db.close();

      const reopened = await openFerryDatabase({ path, schema: todoSchema });
      try {
        expect(reopened.currentStatus.pendingCount).toBe(1);
        expect(reopened.currentStatus.oldestPendingAt).toBeInstanceOf(Date);
        expect(await queued(reopened)).toEqual(before);
        const now = vi.spyOn(Date, 'now').mockReturnValue(decodeHlc(before[0]!.hlc).wallMs - 3_600_000);
        try {
          await reopened.execute(`UPDATE lists SET name = 'B'`);
        } finally {
          now.mockRestore();
        }
        const after = await queued(reopened);
        expect(after).toHaveLength(2);
        expect(compareHlc(decodeHlc(after[1]!.hlc), decodeHlc(before[0]!.hlc))).toBe(1);
        expect(after[1]!.transactionId).toBeGreaterThan(before[0]!.transactionId);
      } finally {
        await reopened.close();
      }
    } finally {
      cleanup();
    }
  });

  it('stamps stay increasing when a transaction overflows the HLC counter', async () => {
    await using t = await openTestDb();
    const clientId = await t.db.clientId();
    const wallMs = Date.now() + 3_600_000; // the stored clock is ahead of the wall clock
    await t.db.execute(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES ('hlc', ?)`, [
      encodeHlc({ wallMs, counter: HLC_MAX_COUNTER - 1, node: clientId }),
    ]);
    await t.db.writeTransaction(async (tx) => {
      for (let i = 0; i < 4; i++) await tx.execute(`INSERT INTO lists (id, name) VALUES (?, 'x')`, [`l${i}`]);
    });
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('m', 'x')`);
    const stamps = (await queued(t.db)).map((o) => decodeHlc(o.hlc));
    expect(stamps.map(({ wallMs: w, counter }) => [w - wallMs, counter])).toEqual([
      [0, HLC_MAX_COUNTER],
      [1, 0],
      [1, 1],
      [1, 2],
      [1, 3],
    ]);
  });

  it('a schema change (new column, table made local-only) keeps the triggers right', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'app.db');
      const v1 = new Schema({ notes: new Table({ body: column.text }), tags: new Table({ label: column.text }) });
      const db = await openFerryDatabase({ path, schema: v1 });
      await db.execute(`INSERT INTO notes (id, body) VALUES ('n1', 'a')`);
      await db.close();

      const v2 = new Schema({
        notes: new Table({ body: column.text, color: column.text }),
        tags: new Table({ label: column.text }, { localOnly: true }),
      });
      const reopened = await openFerryDatabase({ path, schema: v2 });
      try {
        await reopened.execute(`INSERT INTO notes (id, body, color) VALUES ('n2', 'b', 'red')`);
        await reopened.execute(`UPDATE notes SET color = 'blue' WHERE id = 'n1'`);
        await reopened.execute(`INSERT INTO tags (id, label) VALUES ('t1', 'x')`);
        const ops = await queued(reopened);
        expect(ops.map(({ op, id, opData }) => ({ op, id, opData }))).toEqual([
          { op: 'PUT', id: 'n1', opData: { body: 'a' } },
          { op: 'PUT', id: 'n2', opData: { body: 'b', color: 'red' } },
          { op: 'PATCH', id: 'n1', opData: { color: 'blue' } },
        ]);
      } finally {
        await reopened.close();
      }
    } finally {
      cleanup();
    }
  });

  it('queues every column of a wide table', async () => {
    const columns = Object.fromEntries(Array.from({ length: 130 }, (_, i) => [`c${i}`, column.integer]));
    const { dir, cleanup } = tempDir();
    try {
      const db = await openFerryDatabase({ path: join(dir, 'w.db'), schema: new Schema({ wide: new Table(columns) }) });
      try {
        const names = Object.keys(columns);
        await db.execute(
          `INSERT INTO wide (id, ${names.join(', ')}) VALUES ('w', ${names.map(() => '?').join(', ')})`,
          names.map((_, i) => i),
        );
        await db.execute(`UPDATE wide SET c0 = 100, c129 = 200`);
        const ops = await queued(db);
        expect(ops[0]!.opData).toEqual(Object.fromEntries(names.map((n, i) => [n, i])));
        expect(ops[1]!.opData).toEqual({ c0: 100, c129: 200 });
      } finally {
        await db.close();
      }
    } finally {
      cleanup();
    }
  });
});
