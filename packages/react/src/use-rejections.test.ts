// @vitest-environment jsdom
import { createElement } from 'react';
import { describe, expect, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { mount, openTestDb, settle, until, write } from './test-support/harness.js';
import { useRejections, type RejectionsResult } from './use-rejections.js';

describe('useRejections', () => {
  it('shows writes rejected through complete({ rejected }) live, and dismisses them', async () => {
    await using t = await openTestDb();
    const log: RejectionsResult[] = [];
    function Probe(): null {
      log.push(useRejections());
      return null;
    }
    await using view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    expect(log[0]!.isLoading).toBe(true);
    await until(() => !log.at(-1)!.isLoading);
    expect(log.at(-1)!.rejections).toEqual([]);

    // Two local writes; the uploader reports the first as rejected by the server (no service needed).
    await write(async () => {
      await t.db.execute(
        `INSERT INTO tasks (id, project, title, rank) VALUES ('t1', 'a', 'not mine', 9007199254740993)`,
      );
      await t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('t2', 'a', 'fine')`);
    });
    await write(async () => {
      const tx = await t.db.getNextCrudTransaction();
      await tx!.complete({
        rejected: [{ op: tx!.crud[0]!, code: 'FERRY_S6001', message: 'inserts into tasks are not allowed' }],
      });
    });
    await until(() => log.at(-1)!.rejections.length === 1);
    const [rejection] = log.at(-1)!.rejections;
    expect(rejection).toMatchObject({
      op: 'PUT',
      table: 'tasks',
      rowId: 't1',
      code: 'FERRY_S6001',
      message: 'inserts into tasks are not allowed',
      opData: { project: 'a', title: 'not mine', rank: 9007199254740993n },
    });
    expect(rejection!.rejectedAt).toBeInstanceOf(Date);
    // The rejected insert is gone locally; the other write is still pending.
    expect(await t.db.getAll(`SELECT id FROM tasks ORDER BY id`)).toEqual([{ id: 't2' }]);

    const renders = log.length;
    const removed = await write(() => log.at(-1)!.clearRejections([rejection!.id]));
    expect(removed).toBe(1);
    await until(() => log.at(-1)!.rejections.length === 0);
    await settle();
    expect(log.length).toBe(renders + 1);
    expect(log.at(-1)!.error).toBeUndefined();
    await view.unmount();
    expect(t.watchesActive).toBe(0);
  });
});
