import { join } from 'node:path';
import { ferryConnector, type CrudEntry, type FerryDatabase } from '@ferry/client';
import type { WriteResponse } from '@ferry/protocol';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openFerryDatabase } from './open-ferry-database.js';
import type { RecordedWrite } from './test-support/fake-sync-service.js';
import { openTestDb, tempDir, todoSchema, type TestContext } from './test-support/test-db.js';

/** Every queued op (draining nothing). */
async function queued(db: FerryDatabase): Promise<CrudEntry[]> {
  return (await db.getCrudBatch(1_000_000))?.crud ?? [];
}

/** Answers every transaction as applied. */
function applyAll(request: RecordedWrite): Response {
  const response: WriteResponse = {
    transactions: request.body.transactions.map((tx) => ({
      id: tx.id,
      status: 'applied',
      ops: tx.ops.map(() => ({ status: 'applied' as const })),
    })),
  };
  return Response.json(response);
}

/** Uploads everything queued so far as applied: later updates of those rows queue PATCHes of existing rows. */
async function settleQueue(t: TestContext): Promise<void> {
  for (let batch = await t.db.getCrudBatch(1000); batch !== null; batch = await t.db.getCrudBatch(1000)) {
    await batch.complete();
  }
}

describe('previous values in the upload queue', () => {
  it('an UPDATE records the old values of exactly the changed columns; PUT and DELETE record none', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO todos (id, list_id, title, done, amount, big) VALUES (?, ?, ?, ?, ?, ?)`, [
      't1',
      'l1',
      null,
      0,
      2.5,
      9007199254740993n,
    ]);
    await t.db.execute(`UPDATE todos SET title = 'Milk', big = 9007199254740995 WHERE id = 't1'`); // NULL → value, int8
    await t.db.execute(`UPDATE todos SET done = 0, amount = 3.5 WHERE id = 't1'`); // done is unchanged
    await t.db.execute(`UPDATE todos SET title = NULL WHERE id = 't1'`); // value → NULL
    await t.db.execute(`UPDATE todos SET done = 0 WHERE id = 't1'`); // changes nothing: queues nothing
    await t.db.execute(`DELETE FROM todos WHERE id = 't1'`);

    const ops = await queued(t.db);
    expect(ops.map(({ op, opData, previousValues }) => ({ op, opData, previousValues }))).toEqual([
      {
        op: 'PUT',
        opData: { list_id: 'l1', title: null, done: 0, amount: 2.5, big: 9007199254740993n },
        previousValues: undefined,
      },
      {
        op: 'PATCH',
        opData: { title: 'Milk', big: 9007199254740995n },
        previousValues: { title: null, big: 9007199254740993n },
      },
      { op: 'PATCH', opData: { amount: 3.5 }, previousValues: { amount: 2.5 } },
      { op: 'PATCH', opData: { title: null }, previousValues: { title: 'Milk' } },
      { op: 'DELETE', opData: undefined, previousValues: undefined },
    ]);
    expect(ops[0]).not.toHaveProperty('previousValues');
    expect(ops[4]).not.toHaveProperty('previousValues');
    // Stored as JSON text like `data` (int8 exact), NULL for PUT and DELETE.
    expect(await t.db.getAll(`SELECT op, old FROM ferry_crud ORDER BY id`)).toEqual([
      { op: 'PUT', old: null },
      { op: 'PATCH', old: '{"title":null,"big":9007199254740993}' },
      { op: 'PATCH', old: '{"amount":2.5}' },
      { op: 'PATCH', old: '{"title":"Milk"}' },
      { op: 'DELETE', old: null },
    ]);
  });

  it('a database from before previous values gets the column at open; its queued ops keep none', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'app.db');
      let db = await openFerryDatabase({ path, schema: todoSchema });
      await db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'a')`);
      await db.execute(`UPDATE lists SET name = 'b' WHERE id = 'l1'`);
      await db.close();
      // Back to the earlier layout: no `old` column (and no triggers writing it; open installs them again).
      const raw = new Database(path);
      for (const { name } of raw
        .prepare(`SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'ferry_crud__%'`)
        .all() as { name: string }[]) {
        raw.exec(`DROP TRIGGER "${name}"`);
      }
      raw.exec(`ALTER TABLE ferry_crud DROP COLUMN old`);
      expect(raw.prepare(`SELECT name FROM pragma_table_info('ferry_crud') WHERE name = 'old'`).all()).toEqual([]);
      raw.close();

      db = await openFerryDatabase({ path, schema: todoSchema });
      try {
        expect(await db.getAll(`SELECT name FROM pragma_table_info('ferry_crud') WHERE name = 'old'`)).toEqual([
          { name: 'old' },
        ]);
        await db.execute(`UPDATE lists SET name = 'c' WHERE id = 'l1'`);
        const ops = await queued(db);
        expect(ops.map(({ op, opData, previousValues }) => ({ op, opData, previousValues }))).toEqual([
          { op: 'PUT', opData: { name: 'a' }, previousValues: undefined },
          { op: 'PATCH', opData: { name: 'b' }, previousValues: undefined },
          { op: 'PATCH', opData: { name: 'c' }, previousValues: { name: 'b' } },
        ]);
      } finally {
        await db.close();
      }
    } finally {
      cleanup();
    }
  });

  it('ferryConnector sends each op’s hlc and old values', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO todos (id, title, big) VALUES ('t1', 'Milk', 9007199254740993)`);
    await settleQueue(t);
    await t.db.execute(`UPDATE todos SET title = 'Oat milk', big = 1 WHERE id = 't1'`);
    t.service.writeHandler = applyAll;
    await ferryConnector({
      endpoint: 'http://ferry.test/',
      fetchToken: async () => 'jwt',
      fetch: t.service.fetch,
    }).uploadData(t.db);
    const ops = t.service.writes.flatMap((w) => w.body.transactions.flatMap((tx) => tx.ops));
    const [hlc] = (await t.db.getAll<{ hlc: string }>(`SELECT hlc FROM ferry_overlay WHERE op = 'PATCH'`)).map(
      (r) => r.hlc,
    );
    expect(ops).toEqual([
      {
        op: 'PATCH',
        type: 'todos',
        id: 't1',
        data: { title: 'Oat milk', big: 1 },
        hlc,
        old: { title: 'Milk', big: 9007199254740993n },
      },
    ]);
    expect(t.service.writes[0]!.text).toContain('"old":{"title":"Milk","big":9007199254740993}');
  });

  it('compacted uploads carry per-column stamps (hlcs) and the first previous value of each column', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO todos (id, title, done) VALUES ('t1', 'server', 0)`);
    await settleQueue(t);
    await t.db.execute(`UPDATE todos SET title = 'a' WHERE id = 't1'`);
    await t.db.execute(`UPDATE todos SET done = 1 WHERE id = 't1'`);
    await t.db.execute(`UPDATE todos SET title = 'b' WHERE id = 't1'`);
    const stamps = (await queued(t.db)).map((op) => op.hlc);
    t.service.writeHandler = applyAll;
    await ferryConnector({
      endpoint: 'http://ferry.test/',
      fetchToken: async () => 'jwt',
      fetch: t.service.fetch,
      compact: true,
    }).uploadData(t.db);
    expect(t.service.writes).toHaveLength(1);
    expect(t.service.writes[0]!.body.transactions).toEqual([
      {
        id: expect.any(String),
        ops: [
          {
            op: 'PATCH',
            type: 'todos',
            id: 't1',
            data: { title: 'b', done: 1 },
            hlc: stamps[2],
            hlcs: { title: stamps[2], done: stamps[1] },
            old: { title: 'server', done: 0 },
          },
        ],
      },
    ]);
    expect(await queued(t.db)).toEqual([]);
  });
});
