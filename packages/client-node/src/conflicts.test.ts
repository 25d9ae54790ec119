import type { Conflict, CrudEntry, FerryDatabase, Violation } from '@ferry/client';
import { FerryError, type SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets, type FakeStream } from './test-support/fake-sync-service.js';
import { openTestDb, type TestContext } from './test-support/test-db.js';

async function syncTo(t: TestContext, server: FakeBuckets, stream: FakeStream, lines: SyncLine[]): Promise<void> {
  const before = t.db.currentStatus.lastSyncedAt;
  for (const line of lines) stream.send(line);
  stream.send(server.complete());
  await eventually(() => t.db.currentStatus.lastSyncedAt !== before && !t.db.currentStatus.downloading);
}

async function queued(db: FerryDatabase): Promise<CrudEntry[]> {
  return (await db.getCrudBatch(1_000_000))?.crud ?? [];
}

/** A `ferry_conflicts` row as the service syncs it (values are JSON text in SQLite form). */
function conflictRow(rowId: string, column: string, winner: string, loser: string, createdAt: string) {
  return {
    table_name: 'todos',
    row_id: rowId,
    column_name: column,
    scope: 'w1',
    winner_value: winner,
    loser_value: loser,
    base_value: null,
    winner_hlc: '0000000000010000000000a',
    loser_hlc: '0000000000010000000000b',
    winner_user_id: 'alice',
    loser_user_id: 'bob',
    winner_client_id: 'a',
    loser_client_id: 'b',
    policy: 'lww',
    created_at: createdAt,
  };
}

/** Synced: todos t1, t2 and conflicts on t1.title (c1), t2.big (c2), a row this client lacks (c3), an unknown column (c4). */
async function synced(t: TestContext): Promise<{ server: FakeBuckets; stream: FakeStream }> {
  const server = new FakeBuckets();
  const g = server.bucket('g[]');
  g.put('todos', 't1', { title: 'server t1', big: 1 });
  g.put('todos', 't2', { title: 'server t2', big: 2 });
  g.put('ferry_conflicts', 'c1', {
    ...conflictRow('t1', 'title', '"server t1"', '"mine"', '2025-05-01T10:00:01.000000Z'),
    base_value: '"before"',
  });
  g.put('ferry_conflicts', 'c2', conflictRow('t2', 'big', '2', '9007199254740993', '2025-05-01T10:00:02.000000Z'));
  g.put('ferry_conflicts', 'c3', conflictRow('gone', 'title', '"x"', '"y"', '2025-05-01T10:00:03.000000Z'));
  g.put('ferry_conflicts', 'c4', conflictRow('t1', 'nope', '1', '2', '2025-05-01T10:00:04.000000Z'));
  await t.connect();
  const stream = await t.service.nextStream();
  await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
  return { server, stream };
}

describe('conflicts (client API)', () => {
  it('lists synced conflicts oldest first, values parsed int8-exact, filtered by table and row', async () => {
    await using t = await openTestDb();
    await synced(t);
    const all = await t.db.getConflicts();
    expect(all.map((c) => c.id)).toEqual(['c1', 'c2', 'c3', 'c4']);
    expect(all[0]).toEqual({
      id: 'c1',
      table: 'todos',
      rowId: 't1',
      column: 'title',
      scope: 'w1',
      winnerValue: 'server t1',
      loserValue: 'mine',
      baseValue: 'before',
      winnerHlc: '0000000000010000000000a',
      loserHlc: '0000000000010000000000b',
      winnerUserId: 'alice',
      loserUserId: 'bob',
      winnerClientId: 'a',
      loserClientId: 'b',
      policy: 'lww',
      createdAt: '2025-05-01T10:00:01.000000Z',
    } satisfies Conflict);
    expect(all[1]).toMatchObject({ winnerValue: 2, loserValue: 9007199254740993n, baseValue: undefined });
    expect((await t.db.getConflicts({ rowId: 't1' })).map((c) => c.id)).toEqual(['c1', 'c4']);
    expect((await t.db.getConflicts({ table: 'todos', rowId: 't2' })).map((c) => c.id)).toEqual(['c2']);
    expect(await t.db.getConflicts({ table: 'lists' })).toEqual([]);
    // Downloaded rows queue nothing.
    expect(await queued(t.db)).toEqual([]);
  });

  it('watchConflicts reports the list at once and again when a checkpoint or a local write changes it', async () => {
    await using t = await openTestDb();
    const { server, stream } = await synced(t);
    const seen: Conflict[][] = [];
    const stop = t.db.watchConflicts({ rowId: 't1' }, (conflicts) => seen.push(conflicts));
    await eventually(() => seen.length === 1);
    expect(seen[0]!.map((c) => c.id)).toEqual(['c1', 'c4']);

    // A checkpoint that changes only other rows: no report for this filter.
    const g = server.bucket('g[]');
    g.put('todos', 't2', { title: 'renamed', big: 2 });
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    // A new conflict on t1 arrives by sync, one goes away (the server deleted it).
    g.put('ferry_conflicts', 'c5', conflictRow('t1', 'big', '1', '5', '2025-05-01T10:00:05.000000Z'));
    g.remove('ferry_conflicts', 'c4');
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    await eventually(() => seen.length === 2);
    expect(seen[1]!.map((c) => c.id)).toEqual(['c1', 'c5']);

    // A local resolution.
    await t.db.resolveConflict('c5', { keep: 'current' });
    await eventually(() => seen.length === 3);
    expect(seen[2]!.map((c) => c.id)).toEqual(['c1']);
    stop();
  });

  it('keep current: only the conflict row is deleted (one queued DELETE)', async () => {
    await using t = await openTestDb();
    await synced(t);
    await t.db.resolveConflict('c1', { keep: 'current' });
    expect(await t.db.getAll(`SELECT title FROM todos WHERE id = 't1'`)).toEqual([{ title: 'server t1' }]);
    expect((await t.db.getConflicts()).map((c) => c.id)).toEqual(['c2', 'c3', 'c4']);
    expect((await queued(t.db)).map(({ op, table, id }) => ({ op, table, id }))).toEqual([
      { op: 'DELETE', table: 'ferry_conflicts', id: 'c1' },
    ]);
  });

  it('keep lost / a new value: a PATCH of the column (with its old value) and the DELETE, in one transaction', async () => {
    await using t = await openTestDb();
    await synced(t);
    await t.db.resolveConflict('c1', { keep: 'lost' });
    await t.db.resolveConflict('c2', { value: 2n ** 62n });
    expect(await t.db.getAll(`SELECT id, title, CAST(big AS TEXT) AS big FROM todos ORDER BY id`)).toEqual([
      { id: 't1', title: 'mine', big: '1' },
      { id: 't2', title: 'server t2', big: String(2n ** 62n) },
    ]);
    const ops = await queued(t.db);
    expect(ops.map(({ op, table, id, opData, previousValues }) => ({ op, table, id, opData, previousValues }))).toEqual(
      [
        { op: 'PATCH', table: 'todos', id: 't1', opData: { title: 'mine' }, previousValues: { title: 'server t1' } },
        { op: 'DELETE', table: 'ferry_conflicts', id: 'c1', opData: undefined, previousValues: undefined },
        { op: 'PATCH', table: 'todos', id: 't2', opData: { big: 2n ** 62n }, previousValues: { big: 2 } },
        { op: 'DELETE', table: 'ferry_conflicts', id: 'c2', opData: undefined, previousValues: undefined },
      ],
    );
    expect(ops[0]!.transactionId).toBe(ops[1]!.transactionId);
    expect(ops[2]!.transactionId).toBe(ops[3]!.transactionId);
    expect(ops[1]!.transactionId).not.toBe(ops[2]!.transactionId);
    // The lost value equal to the current one: nothing to patch, only the DELETE.
    await t.db.execute(`UPDATE todos SET title = 'y' WHERE id = 't1'`);
    await t.db.execute(`UPDATE ferry_conflicts SET row_id = 't1' WHERE id = 'c3'`);
    const before = (await queued(t.db)).length;
    await t.db.resolveConflict('c3', { keep: 'lost' });
    expect((await queued(t.db)).slice(before).map(({ op, table }) => `${op} ${table}`)).toEqual([
      'DELETE ferry_conflicts',
    ]);
  });

  it('refuses unknown conflicts, vanished rows and unknown columns, writing nothing', async () => {
    await using t = await openTestDb();
    await synced(t);
    const code = async (p: Promise<unknown>): Promise<string> => {
      const error: unknown = await p.then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(FerryError);
      return (error as FerryError).code;
    };
    expect(await code(t.db.resolveConflict('nope', { keep: 'current' }))).toBe('FERRY_C1007');
    expect(await code(t.db.resolveConflict('c3', { keep: 'lost' }))).toBe('FERRY_C1007'); // row 'gone'
    expect(await code(t.db.resolveConflict('c3', { value: 'z' }))).toBe('FERRY_C1007');
    expect(await code(t.db.resolveConflict('c4', { keep: 'lost' }))).toBe('FERRY_C1005'); // column 'nope'
    await expect(t.db.resolveConflict('c1', { keep: 'other' } as never)).rejects.toThrow(RangeError);
    expect((await t.db.getConflicts()).map((c) => c.id)).toEqual(['c1', 'c2', 'c3', 'c4']);
    expect(await t.db.getAll(`SELECT id FROM todos WHERE id = 'gone'`)).toEqual([]);
    expect(await queued(t.db)).toEqual([]);
    // keep current needs neither the row nor the column.
    await t.db.resolveConflict('c4', { keep: 'current' });
    expect((await queued(t.db)).map((o) => o.id)).toEqual(['c4']);
  });

  it('a resolved conflict stays gone while the server still sends it (the DELETE is re-applied on top)', async () => {
    await using t = await openTestDb();
    const { server, stream } = await synced(t);
    await t.db.resolveConflict('c1', { keep: 'current' });
    const batch = await t.db.getCrudBatch();
    await batch!.complete(); // uploaded, not yet seen back
    const g = server.bucket('g[]');
    g.put('ferry_conflicts', 'c1', conflictRow('t1', 'title', '"server t1"', '"mine again"', '2025-05-01T10:00:09Z'));
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect((await t.db.getConflicts()).map((c) => c.id)).toEqual(['c2', 'c3', 'c4']);
  });
});

describe('violations (client API)', () => {
  it('lists synced violations, matching the subject row or any involved row; watches follow checkpoints', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('ferry_violations', 'todos:overlap', {
      table_name: 'todos',
      row_id: 't2',
      key: 'overlap',
      code: 'overlap',
      message: 'two todos overlap',
      row_keys: JSON.stringify(['todos:t2', 'todos:t1', 'lists:l:1']),
      scope: null,
      user_id: 'bob',
      created_at: '2025-05-01T10:00:00.000000Z',
    });
    g.put('ferry_violations', 'lists:empty', {
      table_name: 'lists',
      row_id: 'l2',
      key: 'empty',
      code: 'empty',
      message: 'a list needs a name',
      row_keys: '["lists:l2"]',
      scope: 'w1',
      user_id: 'alice',
      created_at: '2025-05-01T10:00:01.000000Z',
    });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);

    expect((await t.db.getViolations()).map((v) => v.id)).toEqual(['todos:overlap', 'lists:empty']);
    const [overlap] = await t.db.getViolations({ table: 'todos', rowId: 't1' }); // involved, not the subject
    expect(overlap).toEqual({
      id: 'todos:overlap',
      table: 'todos',
      rowId: 't2',
      key: 'overlap',
      code: 'overlap',
      message: 'two todos overlap',
      rows: [
        { table: 'todos', id: 't2' },
        { table: 'todos', id: 't1' },
        { table: 'lists', id: 'l:1' },
      ],
      scope: null,
      userId: 'bob',
      createdAt: '2025-05-01T10:00:00.000000Z',
    } satisfies Violation);
    expect((await t.db.getViolations({ table: 'lists', rowId: 'l:1' })).map((v) => v.id)).toEqual(['todos:overlap']);
    expect((await t.db.getViolations({ table: 'lists' })).map((v) => v.id)).toEqual(['todos:overlap', 'lists:empty']);
    expect((await t.db.getViolations({ rowId: 'l2' })).map((v) => v.id)).toEqual(['lists:empty']);
    expect(await t.db.getViolations({ table: 'todos', rowId: 'l2' })).toEqual([]);
    expect(await t.db.getViolations({ rowId: 'l' })).toEqual([]); // split at the first ':' only

    const seen: Violation[][] = [];
    const stop = t.db.watchViolations({ table: 'todos', rowId: 't1' }, { onResult: (v) => seen.push(v) });
    await eventually(() => seen.length === 1);
    g.remove('ferry_violations', 'todos:overlap'); // the server cleared it
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    await eventually(() => seen.length === 2);
    expect(seen[1]).toEqual([]);
    stop();
  });
});
