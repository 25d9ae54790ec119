// @vitest-environment jsdom
import type { SqliteParam } from '@ferry/client';
import { createElement, StrictMode, type ReactElement } from 'react';
import { describe, expect, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { openTestDb, mount, settle, until, write, type TestDb } from './test-support/harness.js';
import { useQuery, type QueryResult } from './use-query.js';

interface Task {
  id: string;
  title: string;
}

const BY_PROJECT = 'SELECT id, title FROM tasks WHERE project = ? ORDER BY id';

/** Records every render's result. */
function probe(t: TestDb, sql: string, params: readonly SqliteParam[], log: QueryResult<Task>[]): ReactElement {
  function Probe(): null {
    log.push(useQuery<Task>(sql, params));
    return null;
  }
  return createElement(FerryProvider, { db: t.db }, createElement(Probe));
}

async function seed(t: TestDb): Promise<void> {
  await t.db.execute(
    `INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'first'), ('a2', 'a', 'second'), ('b1', 'b', 'other')`,
  );
}

describe('useQuery', () => {
  it('is loading until the first result, then re-renders with each new result', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    await using view = await mount(probe(t, BY_PROJECT, ['a'], log));
    expect(log[0]).toEqual({ data: [], isLoading: true, isStale: false, error: undefined });
    await until(() => log.at(-1)!.data.length === 2);
    expect(log.at(-1)).toEqual({
      data: [
        { id: 'a1', title: 'first' },
        { id: 'a2', title: 'second' },
      ],
      isLoading: false,
      isStale: false,
      error: undefined,
    });
    const before = log.length;

    // A write elsewhere (not through the hook) re-renders with the new rows.
    await write(() => t.db.execute(`UPDATE tasks SET title = 'renamed' WHERE id = 'a2'`));
    await until(() => log.at(-1)!.data[1]?.title === 'renamed');
    expect(log.length).toBe(before + 1);
    expect(log.every((r, i) => i === 0 || !r.isLoading)).toBe(true);
    await view.unmount();
  });

  it('does not re-render for a write that leaves the result unchanged', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    await using _view = await mount(probe(t, BY_PROJECT, ['a'], log));
    await until(() => log.at(-1)!.data.length === 2);
    const renders = log.length;
    const firstData = log.at(-1)!.data;

    // Same table, same rows of the result: the query re-runs, the result is equal.
    const seen: unknown[][] = [];
    const stopSentinel = t.db.watch('SELECT id, rank FROM tasks ORDER BY id', [], { onResult: (r) => seen.push(r) });
    await until(() => seen.length === 1);
    await write(() => t.db.execute(`UPDATE tasks SET rank = 7 WHERE id = 'a1'`)); // rank is not selected
    await write(() => t.db.execute(`UPDATE tasks SET title = 'changed' WHERE id = 'b1'`)); // other project
    await until(() => seen.length === 2);
    await settle();
    stopSentinel();
    expect(log.length).toBe(renders);

    // A change to the result still renders, once.
    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a3', 'a', 'third')`));
    await until(() => log.at(-1)!.data.length === 3);
    await settle();
    expect(log.length).toBe(renders + 1);
    expect(log.at(-1)!.data).not.toBe(firstData);
  });

  it('keeps one subscription while params are equal by value, even as new arrays', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    function Probe({ tick }: { tick: number }): null {
      void tick;
      log.push(useQuery<Task>(BY_PROJECT, ['a'])); // a new array on every render
      return null;
    }
    const app = (tick: number): ReactElement =>
      createElement(FerryProvider, { db: t.db }, createElement(Probe, { tick }));
    await using view = await mount(app(0));
    await until(() => log.at(-1)!.data.length === 2);
    const data = log.at(-1)!.data;
    for (let tick = 1; tick <= 3; tick++) await view.render(app(tick));
    await settle();
    expect(t.watchesStarted).toBe(1);
    expect(t.watchesActive).toBe(1);
    // Same result object across the parent's re-renders: memoized children stay put.
    expect(log.at(-1)!.data).toBe(data);
    expect(log.at(-1)!.isLoading).toBe(false);
  });

  it('subscribes once under StrictMode (double effects do not restart the watch)', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    await using view = await mount(createElement(StrictMode, null, probe(t, BY_PROJECT, ['a'], log)));
    await until(() => log.at(-1)!.data.length === 2);
    await settle();
    expect(t.watchesStarted).toBe(1);
    await view.unmount();
    expect(t.watchesActive).toBe(0);
  });

  it('keeps showing the previous rows (not loading) while a changed query runs', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    function Probe({ project }: { project: string }): null {
      log.push(useQuery<Task>(BY_PROJECT, [project]));
      return null;
    }
    const app = (project: string): ReactElement =>
      createElement(FerryProvider, { db: t.db }, createElement(Probe, { project }));
    await using view = await mount(app('a'));
    await until(() => log.at(-1)!.data.length === 2);
    const aRows = log.at(-1)!.data;
    const renders = log.length;

    await view.render(app('b'));
    // The first render for project b has no result yet: it shows a's rows, flagged stale.
    expect(log[renders]).toEqual({ data: aRows, isLoading: false, isStale: true, error: undefined });
    await until(() => log.at(-1)!.data[0]?.id === 'b1');
    expect(log.at(-1)).toEqual({
      data: [{ id: 'b1', title: 'other' }],
      isLoading: false,
      isStale: false,
      error: undefined,
    });
    expect(log.slice(renders).some((r) => r.isLoading)).toBe(false);
    // The old subscription is gone, the new one is live.
    await settle();
    expect(t.watchesStarted).toBe(2);
    expect(t.watchesActive).toBe(1);
    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('b2', 'b', 'more')`));
    await until(() => log.at(-1)!.data.length === 2);
  });

  it('returns errors in `error` without throwing, and clears them with the next result', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('j', 'a', 'not json')`);
    const log: QueryResult<{ id: string; x: number }>[] = [];
    function Probe(): null {
      log.push(
        useQuery<{ id: string; x: number }>(`SELECT id, json_extract(title, '$.x') AS x FROM tasks ORDER BY id`),
      );
      return null;
    }
    await using view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    await until(() => log.at(-1)!.error !== undefined);
    expect(log.at(-1)!.error!.message).toMatch(/malformed JSON/);
    expect(log.at(-1)!.isLoading).toBe(false);
    expect(log.at(-1)!.data).toEqual([]);
    expect(view.container.isConnected).toBe(true);

    // The watch keeps going: once the data is valid, the query answers and the error is gone.
    await write(() => t.db.execute(`UPDATE tasks SET title = '{"x": 1}' WHERE id = 'j'`));
    await until(() => log.at(-1)!.data.length === 1);
    expect(log.at(-1)).toEqual({ data: [{ id: 'j', x: 1 }], isLoading: false, isStale: false, error: undefined });

    // A later failure keeps the last good rows beside the error.
    await write(() => t.db.execute(`UPDATE tasks SET title = 'broken again' WHERE id = 'j'`));
    await until(() => log.at(-1)!.error !== undefined);
    expect(log.at(-1)!.data).toEqual([{ id: 'j', x: 1 }]);
  });

  it('runs nothing while disabled', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    function Probe({ enabled }: { enabled: boolean }): null {
      log.push(useQuery<Task>(BY_PROJECT, ['a'], { enabled }));
      return null;
    }
    const app = (enabled: boolean): ReactElement =>
      createElement(FerryProvider, { db: t.db }, createElement(Probe, { enabled }));
    await using view = await mount(app(false));
    await settle();
    expect(t.watchesStarted).toBe(0);
    expect(log.at(-1)).toEqual({ data: [], isLoading: false, isStale: false, error: undefined });
    const renders = log.length;
    await view.render(app(true));
    expect(log[renders]!.isLoading).toBe(true);
    await until(() => log.at(-1)!.data.length === 2);
    expect(t.watchesStarted).toBe(1);
  });

  it('stops the watch on unmount: no renders afterwards', async () => {
    await using t = await openTestDb();
    await seed(t);
    const log: QueryResult<Task>[] = [];
    const view = await mount(probe(t, BY_PROJECT, ['a'], log));
    await until(() => log.at(-1)!.data.length === 2);
    expect(t.watchesActive).toBe(1);
    await view.unmount();
    expect(t.watchesActive).toBe(0);
    const renders = log.length;
    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a3', 'a', 'third')`));
    await settle();
    expect(log.length).toBe(renders);
  });
});
