import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets } from './test-support/fake-sync-service.js';
import { openTestDb } from './test-support/test-db.js';

/** Lets pending watch re-runs finish (they run on promise ticks and timers). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('watch', () => {
  it('watches a table that does not exist yet: reports the error, then follows it once created', async () => {
    await using t = await openTestDb();
    const emissions: unknown[][] = [];
    const errors: unknown[] = [];
    const stop = t.db.watch('SELECT id, note FROM later_table ORDER BY id', [], {
      onResult: (rows) => emissions.push(rows),
      onError: (error) => errors.push(error),
    });
    await eventually(() => errors.length === 1);
    await t.db.execute('CREATE TABLE later_table (id TEXT PRIMARY KEY, note TEXT)');
    await t.db.execute(`INSERT INTO later_table (id, note) VALUES ('a', 'now it exists')`);
    await eventually(() => emissions.at(-1)?.length === 1);
    expect(emissions.at(-1)).toEqual([{ id: 'a', note: 'now it exists' }]);
    // Known now: later writes to the table are followed as usual.
    await t.db.execute(`INSERT INTO later_table (id, note) VALUES ('b', 'second')`);
    await eventually(() => emissions.at(-1)?.length === 2);
    stop();
  });

  it('emits at once, then only when a table it reads changed and the result differs', async () => {
    await using t = await openTestDb();
    const emissions: unknown[][] = [];
    const stop = t.db.watch('SELECT id, body FROM drafts ORDER BY id', [], {
      onResult: (rows) => emissions.push(rows),
    });
    await eventually(() => emissions.length === 1);
    expect(emissions[0]).toEqual([]);

    await t.db.execute('INSERT INTO drafts (id, body) VALUES (?, ?)', ['d1', 'hello']);
    await eventually(() => emissions.length === 2);
    expect(emissions[1]).toEqual([{ id: 'd1', body: 'hello' }]);

    // an unrelated table changes: no re-run result
    await t.db.execute('INSERT INTO lists (id, name) VALUES (?, ?)', ['l1', 'x']);
    // a write to the table that leaves the result unchanged
    await t.db.execute('UPDATE drafts SET body = body WHERE id = ?', ['d1']);
    await settle();
    expect(emissions).toHaveLength(2);

    await t.db.writeTransaction(async (tx) => {
      await tx.execute('UPDATE drafts SET body = ? WHERE id = ?', ['changed', 'd1']);
      await tx.execute('INSERT INTO drafts (id, body) VALUES (?, ?)', ['d2', 'two']);
    });
    await eventually(() => emissions.length === 3);
    expect(emissions[2]).toEqual([
      { id: 'd1', body: 'changed' },
      { id: 'd2', body: 'two' },
    ]);
    // DELETE without WHERE (SQLite's truncate optimization) is seen too
    await t.db.execute('DELETE FROM drafts');
    await eventually(() => emissions.length === 4);
    expect(emissions[3]).toEqual([]);

    stop();
    await t.db.execute('INSERT INTO drafts (id, body) VALUES (?, ?)', ['d3', 'after stop']);
    await settle();
    expect(emissions).toHaveLength(4);
  });

  it('does not re-run the query when an unrelated table changes', async () => {
    await using t = await openTestDb();
    const emissions: unknown[][] = [];
    // random() makes every run's result differ: any re-run would emit
    const stop = t.db.watch('SELECT id, random() AS r FROM drafts', [], { onResult: (rows) => emissions.push(rows) });
    await eventually(() => emissions.length === 1);
    await t.db.execute('INSERT INTO lists (id, name) VALUES (?, ?)', ['l1', 'x']);
    await t.db.writeTransaction((tx) => tx.execute('UPDATE lists SET name = ?', ['y']));
    await settle();
    expect(emissions).toHaveLength(1);
    await t.db.execute('INSERT INTO drafts (id) VALUES (?)', ['d']);
    await eventually(() => emissions.length === 2);
    stop();
  });

  it('re-runs only for tables the query reads, through joins and indexes', async () => {
    await using t = await openTestDb();
    const runs: unknown[][] = [];
    const stop = t.db.watch(
      `SELECT t.id, l.name FROM todos t JOIN lists l ON l.id = t.list_id WHERE t.list_id = ? ORDER BY t.title DESC`,
      ['l1'],
      { onResult: (rows) => runs.push(rows) },
    );
    await eventually(() => runs.length === 1);
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('lists', 'l1', { name: 'L1' });
    g.put('todos', 't1', { list_id: 'l1', title: 'a' });
    await t.connect();
    const stream = await t.service.nextStream();
    stream.send(server.checkpoint());
    stream.send(g.data());
    stream.send(server.complete());
    await eventually(() => runs.length === 2);
    expect(runs[1]).toEqual([{ id: 't1', name: 'L1' }]);
    await t.db.execute('INSERT INTO drafts (id) VALUES (?)', ['x']);
    await settle();
    expect(runs).toHaveLength(2);
    stop();
  });

  it('works as an async iterable and ends when its signal aborts', async () => {
    await using t = await openTestDb();
    const controller = new AbortController();
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const rows of t.db.watch<{ n: number }>('SELECT count(*) AS n FROM drafts', [], {
        signal: controller.signal,
      })) {
        seen.push(rows[0]!.n);
        if (seen.length === 3) controller.abort();
      }
    })();
    await eventually(() => seen.length === 1);
    await t.db.execute('INSERT INTO drafts (id) VALUES (?)', ['a']);
    await eventually(() => seen.length === 2);
    await t.db.execute('INSERT INTO drafts (id) VALUES (?)', ['b']);
    await consumer;
    expect(seen).toEqual([0, 1, 2]);
  });

  it('reports query errors to onError', async () => {
    await using t = await openTestDb();
    const errors: unknown[] = [];
    const stop = t.db.watch('SELECT * FROM no_such_table', [], { onResult: () => {}, onError: (e) => errors.push(e) });
    await eventually(() => errors.length === 1);
    expect(String(errors[0])).toContain('no_such_table');
    stop();
  });
});

describe('onChange', () => {
  it('reports tables changed by local writes and applied checkpoints, filtered by table', async () => {
    await using t = await openTestDb();
    const all: string[][] = [];
    const todosOnly: string[][] = [];
    t.db.onChange({ onChange: (e) => all.push([...e.changedTables].sort()) });
    const controller = new AbortController();
    t.db.onChange({ tables: ['todos'], onChange: (e) => todosOnly.push(e.changedTables), signal: controller.signal });

    await t.db.execute('INSERT INTO drafts (id) VALUES (?)', ['d']);
    await t.db.execute('SELECT * FROM drafts');
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'x' });
    g.put('lists', 'l1', { name: 'y' });
    await t.connect();
    const stream = await t.service.nextStream();
    stream.send(server.checkpoint());
    stream.send(g.data());
    stream.send(server.complete());
    await t.db.waitForFirstSync();
    await eventually(() => all.length === 2);
    expect(all).toEqual([['drafts'], ['lists', 'todos']]);
    expect(todosOnly).toHaveLength(1);
    controller.abort();
    await t.db.execute('DELETE FROM todos');
    await eventually(() => all.length === 3);
    expect(todosOnly).toHaveLength(1);
  });
});

describe('transactions', () => {
  it('a failed write transaction rolls back and reports nothing', async () => {
    await using t = await openTestDb();
    const changes: string[][] = [];
    t.db.onChange({ onChange: (e) => changes.push(e.changedTables) });
    await expect(
      t.db.writeTransaction(async (tx) => {
        await tx.execute('INSERT INTO drafts (id) VALUES (?)', ['x']);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await t.db.getAll('SELECT * FROM drafts')).toEqual([]);
    expect(changes).toEqual([]);
  });

  it('reads see only committed data while a write transaction is open', async () => {
    await using t = await openTestDb();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inserted!: () => void;
    const insertedP = new Promise<void>((resolve) => {
      inserted = resolve;
    });
    const writer = t.db.writeTransaction(async (tx) => {
      await tx.execute('INSERT INTO drafts (id) VALUES (?)', ['x']);
      expect(await tx.getAll('SELECT id FROM drafts')).toEqual([{ id: 'x' }]);
      inserted();
      await gate;
    });
    await insertedP;
    expect(await t.db.getAll('SELECT id FROM drafts')).toEqual([]);
    const inRead = await t.db.readTransaction((tx) => tx.getAll('SELECT id FROM drafts'));
    expect(inRead).toEqual([]);
    release();
    await writer;
    expect(await t.db.getAll('SELECT id FROM drafts')).toEqual([{ id: 'x' }]);
  });

  it('execute returns rowsAffected and insertId', async () => {
    await using t = await openTestDb();
    const result = await t.db.execute('INSERT INTO drafts (id, body) VALUES (?, ?), (?, ?)', ['a', '1', 'b', '2']);
    expect(result.rowsAffected).toBe(2);
    expect(result.insertId).toBe(2);
    const updated = await t.db.execute('UPDATE drafts SET body = ?', ['x']);
    expect(updated.rowsAffected).toBe(2);
  });
});
