// @vitest-environment jsdom
import { Activity, createElement, Suspense, type ReactElement } from 'react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { cachedSuspenseQueries, setSuspenseKeepAlive } from './suspense-cache.js';
import { ErrorBoundary, mount, openTestDb, settle, until, write, type TestDb } from './test-support/harness.js';
import { useSuspenseQuery } from './use-suspense-query.js';

interface Task {
  id: string;
  title: string;
}

interface Props {
  sql: string;
  renders: Task[][];
  events: string[];
}

function Titles({ sql, renders, events }: Props): ReactElement {
  const rows = useSuspenseQuery<Task>(sql, ['a']);
  renders.push(rows);
  events.push('rows');
  return createElement('ul', null, ...rows.map((r) => createElement('li', { key: r.id }, r.title)));
}

/** The same component types on every call, so re-rendering updates rather than remounts. */
function app(t: TestDb, sql: string, renders: Task[][], copies = 1, events: string[] = []): ReactElement {
  const list = Array.from({ length: copies }, (_, i) => createElement(Titles, { key: i, sql, renders, events }));
  return createElement(
    FerryProvider,
    { db: t.db },
    createElement(
      ErrorBoundary,
      null,
      createElement(Suspense, { fallback: createElement(Fallback, { events }) }, ...list),
    ),
  );
}

function Fallback({ events }: { events: string[] }): ReactElement {
  events.push('fallback');
  return createElement('p', null, 'loading');
}

const TITLES = 'SELECT id, title FROM tasks WHERE project = ? ORDER BY id';

describe('useSuspenseQuery', () => {
  let keepAlive = 0;
  beforeEach(() => {
    keepAlive = setSuspenseKeepAlive(100);
  });
  afterEach(() => {
    setSuspenseKeepAlive(keepAlive);
  });

  it('shows the fallback, then the rows, then live updates, with one query', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'first')`);
    const renders: Task[][] = [];
    const events: string[] = [];
    await using view = await mount(app(t, TITLES, renders, 1, events));
    await until(() => view.container.textContent === 'first');
    // The fallback rendered first, then the rows (once the query answered).
    expect(events[0]).toBe('fallback');
    expect(events.indexOf('rows')).toBeGreaterThan(0);
    expect(renders.at(-1)).toEqual([{ id: 'a1', title: 'first' }]);
    // The retry after the first result reused the query the suspended render started.
    expect(t.watchesStarted).toBe(1);

    const rendered = renders.length;
    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a2', 'a', 'second')`));
    await until(() => view.container.textContent === 'firstsecond');
    expect(renders.length).toBe(rendered + 1);
    // No fallback on updates.
    await write(() => t.db.execute(`UPDATE tasks SET title = 'changed' WHERE id = 'a1'`));
    await until(() => view.container.textContent === 'changedsecond');

    // A write that leaves the rows unchanged renders nothing.
    const before = renders.length;
    await write(() => t.db.execute(`UPDATE tasks SET rank = 3 WHERE id = 'a1'`));
    await settle();
    expect(renders.length).toBe(before);

    await view.unmount();
    // Kept alive briefly for a remount, then stopped and forgotten.
    expect(cachedSuspenseQueries(t.db)).toBe(1);
    await until(() => t.watchesActive === 0);
    expect(cachedSuspenseQueries(t.db)).toBe(0);
  });

  it('a remount soon after finds the current rows without suspending', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'one')`);
    const events: string[] = [];
    const first = await mount(app(t, TITLES, [], 1, events));
    await until(() => first.container.textContent === 'one');
    await first.unmount();
    await write(() => t.db.execute(`UPDATE tasks SET title = 'two' WHERE id = 'a1'`));
    await settle(2);
    const renders: Task[][] = [];
    const again: string[] = [];
    await using second = await mount(app(t, TITLES, renders, 1, again));
    expect(second.container.textContent).toBe('two');
    expect(again).not.toContain('fallback');
    expect(renders[0]).toEqual([{ id: 'a1', title: 'two' }]);
    expect(t.watchesStarted).toBe(1);
  });

  it('shares one watch between components rendering the same query', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'x')`);
    const renders: Task[][] = [];
    await using view = await mount(app(t, TITLES, renders, 2));
    await until(() => view.container.textContent === 'xx');
    expect(t.watchesStarted).toBe(1);
    await write(() => t.db.execute(`UPDATE tasks SET title = 'y' WHERE id = 'a1'`));
    await until(() => view.container.textContent === 'yy');
    await view.unmount();
    await until(() => t.watchesActive === 0);
  });

  it('throws a failed query to the error boundary and stops it', async () => {
    await using t = await openTestDb();
    const renders: Task[][] = [];
    await using view = await mount(app(t, 'SELECT id, title FROM missing WHERE x = ?', renders));
    await until(() => view.container.textContent!.startsWith('error:'));
    expect(view.container.textContent).toMatch(/no such table: missing/);
    expect(view.caught).toHaveLength(1);
    expect(renders).toHaveLength(0);
    await settle();
    expect(t.watchesActive).toBe(0);
    expect(cachedSuspenseQueries(t.db)).toBe(0);
  });

  it('keeps its rows while hidden by <Activity> and shows them again without the fallback', async () => {
    setSuspenseKeepAlive(5_000);
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'kept')`);
    const renders: Task[][] = [];
    const events: string[] = [];
    const tree = (mode: 'visible' | 'hidden'): ReactElement =>
      createElement(Activity, { mode, children: app(t, TITLES, renders, 1, events) });
    await using view = await mount(tree('visible'));
    await until(() => view.container.textContent === 'kept');
    await view.render(tree('hidden'));
    await settle();
    await write(() => t.db.execute(`UPDATE tasks SET title = 'while hidden' WHERE id = 'a1'`));
    const fallbacks = events.filter((e) => e === 'fallback').length;
    await view.render(tree('visible'));
    await until(() => view.container.textContent === 'while hidden');
    expect(events.filter((e) => e === 'fallback').length).toBe(fallbacks);
    expect(t.watchesStarted).toBe(1);
    await view.unmount();
    expect(t.watchesActive).toBe(1); // kept alive for the keep-alive period
  });
});
