// @vitest-environment jsdom
import type { Conflict } from '@ferry/client';
import { createElement, useState } from 'react';
import { describe, expect, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { mount, openTestDb, settle, until, write, type TestDb } from './test-support/harness.js';
import { useConflicts } from './use-conflicts.js';
import type { QueryResult } from './use-query.js';

/** A conflict row as the service syncs it (inserted locally here: the table is a real synced table). */
async function addConflict(t: TestDb, id: string, rowId: string, loser: string, createdAt: string): Promise<void> {
  await t.db.execute(
    `INSERT INTO ferry_conflicts (id, table_name, row_id, column_name, winner_value, loser_value, base_value,
       winner_user_id, loser_user_id, policy, created_at)
     VALUES (?, 'tasks', ?, 'rank', '9007199254740993', ?, NULL, 'u1', 'u2', 'lww', ?)`,
    [id, rowId, loser, createdAt],
  );
}

describe('useConflicts', () => {
  it('lists conflicts live (values parsed int8-exact), filtered by row, and re-renders only on a changed list', async () => {
    await using t = await openTestDb();
    await t.db.execute(
      `INSERT INTO tasks (id, project, title, rank) VALUES ('t1', 'a', 'one', 1), ('t2', 'a', 'two', 2)`,
    );
    const all: QueryResult<Conflict>[] = [];
    const one: QueryResult<Conflict>[] = [];
    function Probe(): null {
      all.push(useConflicts());
      // A new filter object every render: keyed by value, so one watch.
      one.push(useConflicts({ table: 'tasks', rowId: 't1' }));
      return null;
    }
    await using view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    expect(all[0]!.isLoading).toBe(true);
    await until(() => !all.at(-1)!.isLoading && !one.at(-1)!.isLoading);
    expect(all.at(-1)!.data).toEqual([]);

    await write(async () => {
      await addConflict(t, 'c2', 't2', '"late"', '2025-01-01T00:00:02.000000Z');
      await addConflict(t, 'c1', 't1', '7', '2025-01-01T00:00:01.000000Z');
    });
    await until(() => all.at(-1)!.data.length === 2 && one.at(-1)!.data.length === 1);
    expect(all.at(-1)!.data.map((c) => c.id)).toEqual(['c1', 'c2']);
    expect(one.at(-1)!.data[0]).toMatchObject({
      id: 'c1',
      table: 'tasks',
      rowId: 't1',
      column: 'rank',
      winnerValue: 9007199254740993n,
      loserValue: 7,
      baseValue: undefined,
      winnerUserId: 'u1',
      loserUserId: 'u2',
      policy: 'lww',
    });
    expect(t.watchesStarted).toBe(2);

    // A write that changes no conflict: no render.
    const renders = all.length;
    await write(() => t.db.execute(`UPDATE tasks SET title = 'renamed' WHERE id = 't2'`));
    await settle();
    expect(all.length).toBe(renders);

    // Resolving takes the lost value back and removes the conflict from both lists.
    await write(() => t.db.resolveConflict('c1', { keep: 'lost' }));
    await until(() => one.at(-1)!.data.length === 0 && all.at(-1)!.data.length === 1);
    expect(await t.db.getAll(`SELECT rank FROM tasks WHERE id = 't1'`)).toEqual([{ rank: 7 }]);
    expect(all.at(-1)!.error).toBeUndefined();
    await view.unmount();
    expect(t.watchesActive).toBe(0);
  });

  it('follows a changed filter', async () => {
    await using t = await openTestDb();
    await addConflict(t, 'c1', 't1', '1', '2025-01-01T00:00:01.000000Z');
    await addConflict(t, 'c2', 't2', '2', '2025-01-01T00:00:02.000000Z');
    const log: QueryResult<Conflict>[] = [];
    let select!: (rowId: string) => void;
    function Probe(): null {
      const [rowId, setRowId] = useState('t1');
      select = setRowId;
      log.push(useConflicts({ rowId }));
      return null;
    }
    await using _view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    await until(() => log.at(-1)!.data[0]?.id === 'c1');
    await write(async () => select('t2'));
    await until(() => log.at(-1)!.data[0]?.id === 'c2');
    expect(log.at(-1)!.data).toHaveLength(1);
  });
});
