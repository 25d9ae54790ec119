// @vitest-environment jsdom
import type { Violation } from '@ferry/client';
import { createElement } from 'react';
import { describe, expect, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { mount, openTestDb, until, write } from './test-support/harness.js';
import type { QueryResult } from './use-query.js';
import { useViolations } from './use-violations.js';

describe('useViolations', () => {
  it('lists violations live, matching the subject row or any involved row', async () => {
    await using t = await openTestDb();
    const involved: QueryResult<Violation>[] = [];
    const other: QueryResult<Violation>[] = [];
    function Probe(): null {
      involved.push(useViolations({ table: 'tasks', rowId: 't2' }));
      other.push(useViolations({ table: 'tasks', rowId: 't9' }));
      return null;
    }
    await using _view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    await until(() => !involved.at(-1)!.isLoading && !other.at(-1)!.isLoading);
    expect(involved.at(-1)!.data).toEqual([]);

    // Raised by an op on t1; t2 is involved (ids may contain ':').
    await write(() =>
      t.db.execute(
        `INSERT INTO ferry_violations (id, table_name, row_id, key, code, message, row_keys, user_id, created_at)
         VALUES ('tasks:overlap', 'tasks', 't1', 'overlap', 'overlap', 'two tasks overlap', ?, 'u1', '2025-01-01T00:00:00.000000Z')`,
        [JSON.stringify(['tasks:t1', 'tasks:t2', 'notes:a:b'])],
      ),
    );
    await until(() => involved.at(-1)!.data.length === 1);
    expect(involved.at(-1)!.data[0]).toEqual({
      id: 'tasks:overlap',
      table: 'tasks',
      rowId: 't1',
      key: 'overlap',
      code: 'overlap',
      message: 'two tasks overlap',
      rows: [
        { table: 'tasks', id: 't1' },
        { table: 'tasks', id: 't2' },
        { table: 'notes', id: 'a:b' },
      ],
      scope: null,
      userId: 'u1',
      createdAt: '2025-01-01T00:00:00.000000Z',
    });
    expect(other.at(-1)!.data).toEqual([]);

    await write(() => t.db.execute(`DELETE FROM ferry_violations`));
    await until(() => involved.at(-1)!.data.length === 0);
  });
});
