// @vitest-environment jsdom
import { FerryError } from '@ferry/protocol';
import { createElement } from 'react';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { mount, openTestDb, schema, until, write } from './test-support/harness.js';
import type { QueryResult } from './use-query.js';
import { tableQuerySql, useTable, type SchemaRow } from './use-table.js';

type TaskRow = SchemaRow<typeof schema, 'tasks'>;

describe('useTable', () => {
  it('builds a SELECT of every declared column', () => {
    expect(tableQuerySql(schema, 'tasks')).toBe('SELECT "id", "project", "title", "rank" FROM "tasks"');
    expect(tableQuerySql(schema, 'tasks', { where: 'project = ?', orderBy: 'rank DESC', limit: 5 })).toBe(
      'SELECT "id", "project", "title", "rank" FROM "tasks" WHERE project = ? ORDER BY rank DESC LIMIT 5',
    );
    expect(() => tableQuerySql(schema, 'nope')).toThrow(FerryError);
    expect(() => tableQuerySql(schema, 'tasks', { limit: 1.5 })).toThrow(RangeError);
  });

  it('types rows from the schema', () => {
    expectTypeOf<TaskRow>().toEqualTypeOf<
      { id: string } & {
        project: string | null;
        title: string | null;
        rank: number | bigint | null;
      }
    >();
    expectTypeOf(useTable<typeof schema, 'tasks'>).returns.toEqualTypeOf<QueryResult<TaskRow>>();
    // @ts-expect-error: not a table of the schema
    expectTypeOf(useTable<typeof schema, 'nope'>).toBeFunction();
  });

  it('is a live query over the table', async () => {
    await using t = await openTestDb();
    await t.db.execute(
      `INSERT INTO tasks (id, project, title, rank) VALUES ('a1', 'a', 'one', 2), ('a2', 'a', 'two', 1), ('b1', 'b', 'x', 0)`,
    );
    const log: QueryResult<TaskRow>[] = [];
    function Probe(): null {
      log.push(useTable(schema, 'tasks', { where: 'project = ?', params: ['a'], orderBy: 'rank' }));
      return null;
    }
    await using _view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    await until(() => log.at(-1)!.data.length === 2);
    expect(log.at(-1)!.data).toEqual([
      { id: 'a2', project: 'a', title: 'two', rank: 1 },
      { id: 'a1', project: 'a', title: 'one', rank: 2 },
    ]);
    await write(() => t.db.execute(`UPDATE tasks SET rank = 0 WHERE id = 'a1'`));
    await until(() => log.at(-1)!.data[0]!.id === 'a1');
    expect(t.watchesStarted).toBe(1);
  });
});
