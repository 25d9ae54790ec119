// @vitest-environment jsdom
import type { SyncStatus } from '@ferry/client';
import { createElement } from 'react';
import { describe, expect, it } from 'vitest';
import { FerryProvider } from './ferry-context.js';
import { mount, openTestDb, settle, until, write } from './test-support/harness.js';
import { useStatus } from './use-status.js';

describe('useStatus', () => {
  it('re-renders with each new status snapshot (pendingCount after local writes)', async () => {
    await using t = await openTestDb();
    const seen: SyncStatus[] = [];
    function Probe(): null {
      seen.push(useStatus());
      return null;
    }
    await using view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBe(t.db.currentStatus);
    expect(seen[0]!.pendingCount).toBe(0);
    expect(seen[0]!.connected).toBe(false);

    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'x')`));
    await until(() => seen.at(-1)!.pendingCount === 1);
    expect(seen.at(-1)!.oldestPendingAt).toBeInstanceOf(Date);
    await write(() => t.db.execute(`UPDATE tasks SET title = 'y' WHERE id = 'a1'`));
    await until(() => seen.at(-1)!.pendingCount === 2);

    // A local-only write queues nothing: no new snapshot, no render.
    const renders = seen.length;
    await write(() => t.db.execute(`INSERT INTO notes (id, body) VALUES ('n', 'local')`));
    await settle();
    expect(seen.length).toBe(renders);
    await view.unmount();
  });

  it('with a selector, re-renders only when the selected value changed', async () => {
    await using t = await openTestDb();
    const pending: number[] = [];
    const oldest: (Date | null)[] = [];
    function Pending(): null {
      pending.push(useStatus((s) => s.pendingCount));
      return null;
    }
    function Oldest(): null {
      oldest.push(useStatus((s) => s.oldestPendingAt));
      return null;
    }
    await using _view = await mount(
      createElement(FerryProvider, { db: t.db }, createElement(Pending), createElement(Oldest)),
    );
    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a1', 'a', 'x')`));
    await write(() => t.db.execute(`INSERT INTO tasks (id, project, title) VALUES ('a2', 'a', 'x')`));
    await until(() => pending.at(-1) === 2);
    await settle();
    expect(pending).toEqual([0, 1, 2]);
    // The oldest pending write was set once (by the first write) and kept by the second.
    expect(oldest).toHaveLength(2);
    expect(oldest[0]).toBeNull();
    expect(oldest[1]).toBeInstanceOf(Date);
  });
});
