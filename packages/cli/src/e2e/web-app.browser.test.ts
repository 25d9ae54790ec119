/**
 * The task board (apps/tasks/web) in Debian's Chromium against a real
 * `ferry dev --web-build`: two users editing one workspace, offline edits
 * and an offline reload, switching user, losing a workspace, a refused
 * write, and the first-sync screen. Each test uses fresh browser profiles;
 * tests that change shared seed data use their own tasks or workspaces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addTask,
  boardTasks,
  chooseWorkspace,
  connectedClients,
  expectNoTask,
  expectTaskIn,
  FIELD,
  LAUNCH,
  localQuery,
  openApp,
  postgresTasks,
  screenshot,
  shownPending,
  signIn,
  startTasksStack,
  task,
  UI_TIMEOUT_MS,
  type TasksStack,
} from './web-app-fixture.js';
import { sleep } from './stack.js';

let stack: TasksStack;
beforeAll(async () => {
  stack = await startTasksStack('ferry-web-app-');
});
afterAll(() => stack?.cleanup.run());

describe('the task board in Chromium', () => {
  it('shows the first-sync screen with progress, then the board from local SQLite', async () => {
    const context = await stack.newContext();
    const { page, errors } = await openApp(stack, context);
    await page.getByRole('button', { name: 'Sign in as alice' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await screenshot(page, 'tasks-sign-in');
    // A slow link (1.5 KB/s down), so the first sync's progress is certainly seen.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: 1500,
      uploadThroughput: -1,
    });
    await page.getByRole('button', { name: 'Sign in as alice' }).click();
    await page.getByTestId('first-sync').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByRole('progressbar', { name: 'First sync progress' }).count()).toBe(1);
    // useStatus().downloadProgress: the checkpoint's op count, and what has arrived of it.
    const progress = page.getByText(/^Downloaded \d+ of \d+ changes$/);
    await progress.waitFor({ timeout: UI_TIMEOUT_MS });
    const [, downloaded, total] = /^Downloaded (\d+) of (\d+)/.exec((await progress.textContent()) ?? '')!;
    expect(Number(total)).toBeGreaterThanOrEqual(9); // 2 workspaces, 3 members, 1 project, 2 tasks, …
    expect(Number(downloaded)).toBeLessThan(Number(total));
    await screenshot(page, 'tasks-first-sync');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await page.getByTestId('board').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.getByTestId('first-sync').count()).toBe(0);

    // alice is in both seeded workspaces; the first one (by name) is open.
    const workspaces = await page.getByTestId('workspace').locator('span:first-child').allTextContents();
    expect(workspaces).toEqual(['Field crew', 'Launch plan']);
    await expectTaskIn(page, 'Order spare filters', 'todo');
    await chooseWorkspace(page, 'Launch plan');
    await expectTaskIn(page, 'Write the announcement', 'todo');
    await expectTaskIn(page, 'Record the demo video', 'doing');
    expect(await page.getByTestId('members').textContent()).toBe('Members: alice (owner)');
    expect(await page.getByTestId('storage').textContent()).toMatch(/^Local SQLite 3\.\d+\.\d+ on OPFS/);
    await page.getByTestId('offline-ready').waitFor({ timeout: UI_TIMEOUT_MS });
    await screenshot(page, 'tasks-board');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('two members of one workspace see each other’s edits (create, move, edit, delete)', async () => {
    const result = await twoUsersEditTogether(stack, '');
    expect(result.storage).toEqual([expect.stringContaining('on OPFS'), expect.stringContaining('on OPFS')]);
    expect(result.alice).toEqual(result.server);
    expect(result.bob).toEqual(result.server);
  });

  it('the IndexedDB fallback (?vfs=idb) syncs between two users too', async () => {
    const result = await twoUsersEditTogether(stack, '?vfs=idb');
    expect(result.storage).toEqual([expect.stringContaining('on IndexedDB'), expect.stringContaining('on IndexedDB')]);
    expect(result.alice).toEqual(result.server);
    expect(result.bob).toEqual(result.server);
  });

  it('offline: edits stay local and pending, survive a reload, and converge with Postgres once online', async () => {
    const aliceContext = await stack.newContext();
    const bobContext = await stack.newContext();
    const alice = await openApp(stack, aliceContext);
    const bob = await openApp(stack, bobContext);
    await signIn(alice.page, 'alice');
    await signIn(bob.page, 'bob');
    // The app shell is cached by the service worker, so it can reload without a network.
    await alice.page.getByTestId('offline-ready').waitFor({ timeout: UI_TIMEOUT_MS });
    await addTask(alice.page, 'Offline: pack the van');
    await expectTaskIn(bob.page, 'Offline: pack the van', 'todo');
    expect(await alice.page.getByTestId('connection').getAttribute('data-state')).toBe('online');

    await aliceContext.setOffline(true);
    await expect.poll(() => alice.page.getByTestId('connection').textContent()).toBe('Offline');
    await addTask(alice.page, 'Offline: charge the radios');
    await alice.page.getByRole('button', { name: 'Move “Offline: pack the van” to In progress' }).click();
    await expectTaskIn(alice.page, 'Offline: pack the van', 'doing');
    await expect.poll(() => shownPending(alice.page)).toBeGreaterThanOrEqual(2);
    expect(await alice.page.getByTestId('pending').textContent()).toMatch(/^\d+ changes waiting to upload/);
    await screenshot(alice.page, 'tasks-offline-pending');
    // Nothing reached Postgres or bob.
    expect(await stack.sql(`SELECT 1 FROM tasks WHERE title = 'Offline: charge the radios'`)).toEqual([]);
    expect(await stack.sql(`SELECT status FROM tasks WHERE title = 'Offline: pack the van'`)).toEqual([
      { status: 'todo' },
    ]);
    await sleep(500);
    expect(await task(bob.page, 'Offline: charge the radios').count()).toBe(0);

    // A reload with no network: the board comes back from OPFS, pending writes included.
    const before = await boardTasks(alice.page);
    const pendingBefore = await shownPending(alice.page);
    await alice.page.reload();
    // Chromium 150 keeps the reloaded page's requests offline but reports navigator.onLine = true
    // for the new document; emulate offline on it again so the page sees what the network does.
    const cdp = await aliceContext.newCDPSession(alice.page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: true,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await alice.page.getByTestId('board').waitFor({ timeout: UI_TIMEOUT_MS });
    await expectTaskIn(alice.page, 'Offline: charge the radios', 'todo');
    expect(await boardTasks(alice.page)).toEqual(before);
    expect(await alice.page.getByTestId('connection').textContent()).toBe('Offline');
    await expect.poll(() => shownPending(alice.page)).toBe(pendingBefore);

    // Back online: the queue drains and alice, bob and Postgres agree.
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await cdp.detach();
    await aliceContext.setOffline(false);
    await expect.poll(() => shownPending(alice.page), { timeout: UI_TIMEOUT_MS }).toBe(0);
    await expectTaskIn(bob.page, 'Offline: charge the radios', 'todo');
    await expectTaskIn(bob.page, 'Offline: pack the van', 'doing');
    const server = await postgresTasks(stack, FIELD);
    expect(server).toContain('Offline: pack the van/doing');
    expect(server).toContain('Offline: charge the radios/todo');
    await expect.poll(() => boardTasks(alice.page), { timeout: UI_TIMEOUT_MS }).toEqual(server);
    await expect.poll(() => boardTasks(bob.page), { timeout: UI_TIMEOUT_MS }).toEqual(server);
    expect(await alice.page.getByTestId('connection').textContent()).toBe('Online');
    expect([...alice.errors, ...bob.errors]).toEqual([]);
    await aliceContext.close();
    await bobContext.close();
  });

  it("switching user clears the previous user's rows from the page and the local database", async () => {
    const context = await stack.newContext();
    const { page, errors } = await openApp(stack, context);
    await signIn(page, 'alice');
    await chooseWorkspace(page, 'Launch plan');
    await expectTaskIn(page, 'Write the announcement', 'todo');
    const aliceOnly = await localQuery<{ n: number }>(page, `SELECT count(*) AS n FROM tasks WHERE workspace_id = ?`, [
      LAUNCH,
    ]);
    expect(aliceOnly[0]!.n).toBeGreaterThan(0);

    await page.getByRole('button', { name: 'Switch user' }).click();
    await page.getByTestId('sign-in').waitFor({ timeout: UI_TIMEOUT_MS });
    await signIn(page, 'bob');
    const workspaces = await page.getByTestId('workspace').locator('span:first-child').allTextContents();
    expect(workspaces).toEqual(['Field crew']);
    expect(await page.getByText('Launch plan').count()).toBe(0);
    expect(await page.getByText('Write the announcement').count()).toBe(0);

    // Nothing of alice's "Launch plan" is left in local SQLite: tables, kept op data, queue.
    const leftovers = await localQuery<{ what: string; n: number }>(
      page,
      `SELECT 'tasks' AS what, count(*) AS n FROM tasks WHERE workspace_id = ?1
       UNION ALL SELECT 'projects', count(*) FROM projects WHERE workspace_id = ?1
       UNION ALL SELECT 'workspaces', count(*) FROM workspaces WHERE id = ?1
       UNION ALL SELECT 'members', count(*) FROM workspace_members WHERE user_id = 'alice' AND workspace_id = ?1
       UNION ALL SELECT 'oplog', count(*) FROM ferry_oplog WHERE data LIKE '%' || ?1 || '%' OR row_id = ?1
       UNION ALL SELECT 'queue', count(*) FROM ferry_crud`,
      [LAUNCH],
    );
    expect(leftovers).toEqual([
      { what: 'tasks', n: 0 },
      { what: 'projects', n: 0 },
      { what: 'workspaces', n: 0 },
      { what: 'members', n: 0 },
      { what: 'oplog', n: 0 },
      { what: 'queue', n: 0 },
    ]);
    // bob's own data is there.
    await expectTaskIn(page, 'Order spare filters', 'todo');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('a user removed from a workspace loses it and its tasks live', async () => {
    const workspace = '33333333-3333-4333-8333-333333333333';
    await stack.sql(`INSERT INTO workspaces (id, name) VALUES ($1, 'Night shift')`, [workspace]);
    await stack.sql(`INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1, 'alice'), ($1, 'bob')`, [
      workspace,
    ]);
    await stack.sql(`INSERT INTO tasks (workspace_id, title) VALUES ($1, 'Lock the gate'), ($1, 'Read the meters')`, [
      workspace,
    ]);
    const context = await stack.newContext();
    const { page, errors } = await openApp(stack, context);
    await signIn(page, 'bob');
    await chooseWorkspace(page, 'Night shift');
    await expectTaskIn(page, 'Lock the gate', 'todo');
    await expectTaskIn(page, 'Read the meters', 'todo');

    await stack.sql(`DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = 'bob'`, [workspace]);
    await page.getByTestId('workspace').filter({ hasText: 'Night shift' }).waitFor({
      state: 'detached',
      timeout: UI_TIMEOUT_MS,
    });
    await expectNoTask(page, 'Lock the gate');
    // The board falls back to bob's remaining workspace.
    await expect.poll(() => page.locator('#workspace-title').textContent()).toBe('Field crew');
    expect(
      await localQuery<{ n: number }>(page, `SELECT count(*) AS n FROM tasks WHERE workspace_id = ?`, [workspace]),
    ).toEqual([{ n: 0 }]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('a write the service refuses is shown with its reason and reverted', async () => {
    const context = await stack.newContext();
    const { page, errors } = await openApp(stack, context);
    await signIn(page, 'bob');
    await page.getByRole('button', { name: 'Rename workspace' }).click();
    await page.getByLabel('Workspace name').fill("Bob's crew");
    await page.getByRole('button', { name: 'Save name' }).click();
    const rejection = page.getByTestId('rejection');
    await rejection.waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await rejection.getAttribute('data-code')).toBe('FERRY_S6001');
    expect(await rejection.locator('span').textContent()).toBe(
      'Changing a workspace was not saved: table "workspaces" is not writable: the write rules do not list it FERRY_S6001',
    );
    // The local rename is undone: the server's name is back, in the page and in local SQLite.
    await expect.poll(() => page.locator('#workspace-title').textContent()).toBe('Field crew');
    expect(await localQuery(page, `SELECT name FROM workspaces WHERE id = ?`, [FIELD])).toEqual([
      { name: 'Field crew' },
    ]);
    expect(await stack.sql(`SELECT name FROM workspaces WHERE id = $1`, [FIELD])).toEqual([{ name: 'Field crew' }]);
    await screenshot(page, 'tasks-rejection');
    await page.getByRole('button', { name: 'Dismiss' }).click();
    await rejection.waitFor({ state: 'detached' });
    expect(errors).toEqual([]);
    await context.close();
  });
});

describe('two tabs of one user (multi-tab)', () => {
  it('share ONE sync connection, both update live, and the other tab takes over when the syncing one closes', async () => {
    // Earlier tests closed their profiles: wait until the service has let their streams go.
    await expect.poll(() => connectedClients(stack), { timeout: UI_TIMEOUT_MS }).toBe(0);
    const context = await stack.newContext();
    let streams = 0;
    context.on('request', (request) => {
      if (new URL(request.url()).pathname === '/sync/stream') streams += 1;
    });
    const first = await openApp(stack, context);
    await signIn(first.page, 'alice');
    // The second tab finds alice signed in (localStorage) and her data in the shared database.
    const second = await openApp(stack, context);
    await second.page.getByTestId('board').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await second.page.getByTestId('signed-in-as').textContent()).toBe('Signed in as alice');
    for (const { page } of [first, second]) await chooseWorkspace(page, 'Field crew');
    // Both tabs show the leader's connection.
    await expect.poll(() => second.page.getByTestId('connection').textContent()).toBe('Online');

    await addTask(first.page, 'Tab one wrote this');
    await expectTaskIn(second.page, 'Tab one wrote this', 'todo');
    await second.page.getByRole('button', { name: 'Move “Tab one wrote this” to In progress' }).click();
    await expectTaskIn(first.page, 'Tab one wrote this', 'doing');
    await first.page.getByRole('button', { name: 'Move “Tab one wrote this” to Done' }).click();
    await expectTaskIn(second.page, 'Tab one wrote this', 'done');
    await expect
      .poll(() => stack.sql(`SELECT status FROM tasks WHERE title = 'Tab one wrote this'`), { timeout: UI_TIMEOUT_MS })
      .toEqual([{ status: 'done' }]);
    await expect.poll(() => shownPending(second.page), { timeout: UI_TIMEOUT_MS }).toBe(0);

    // One stream for the two tabs, on the page side and on the service side.
    expect(streams).toBe(1);
    await expect.poll(() => connectedClients(stack), { timeout: UI_TIMEOUT_MS }).toBe(1);
    // A change made in Postgres reaches both tabs through that one stream.
    await stack.sql(
      `INSERT INTO tasks (workspace_id, title, status) VALUES ($1, 'From Postgres, to both tabs', 'doing')`,
      [FIELD],
    );
    await expectTaskIn(first.page, 'From Postgres, to both tabs', 'doing');
    await expectTaskIn(second.page, 'From Postgres, to both tabs', 'doing');
    expect(streams).toBe(1);

    // The tab holding the connection closes: the other one opens the (single) stream and syncs on.
    const leaders = await Promise.all(
      [first, second].map(({ page }) =>
        page.evaluate(
          () => (window as unknown as { ferryTasksDb: { isSyncLeader: boolean } }).ferryTasksDb.isSyncLeader,
        ),
      ),
    );
    expect(leaders.filter(Boolean)).toHaveLength(1);
    const [leader, follower] = leaders[0] ? [first, second] : [second, first];
    await leader.page.close();
    await addTask(follower.page, 'Written after the handover');
    await expect
      .poll(() => stack.sql(`SELECT status FROM tasks WHERE title = 'Written after the handover'`), {
        timeout: UI_TIMEOUT_MS,
      })
      .toEqual([{ status: 'todo' }]);
    expect(streams).toBe(2);
    await expect.poll(() => connectedClients(stack), { timeout: UI_TIMEOUT_MS }).toBe(1);
    expect([...first.errors, ...second.errors]).toEqual([]);
    await context.close();
  });
});

/**
 * alice and bob, each in their own browser profile, edit "Field crew"
 * together; returns the storage each page used and the final boards
 * (alice's, bob's, Postgres').
 */
async function twoUsersEditTogether(
  stack: TasksStack,
  query: string,
): Promise<{ storage: string[]; alice: string[]; bob: string[]; server: string[] }> {
  const aliceContext = await stack.newContext();
  const bobContext = await stack.newContext();
  const alice = await openApp(stack, aliceContext, query);
  const bob = await openApp(stack, bobContext, query);
  await Promise.all([signIn(alice.page, 'alice'), signIn(bob.page, 'bob')]);
  const storage: string[] = [];
  for (const { page } of [alice, bob]) {
    storage.push((await page.getByTestId('storage').textContent()) ?? '');
    await chooseWorkspace(page, 'Field crew');
  }
  const title = `Buy rope (${query === '' ? 'default storage' : query})`;
  await addTask(alice.page, title);
  await expectTaskIn(bob.page, title, 'todo');

  await bob.page.getByRole('button', { name: `Move “${title}” to In progress` }).click();
  await expectTaskIn(bob.page, title, 'doing');
  await expectTaskIn(alice.page, title, 'doing');

  await alice.page.getByRole('button', { name: `Edit “${title}”` }).click();
  await alice.page.getByTestId('column-doing').getByLabel('Title').fill(`${title}, 20 m`);
  await alice.page.getByRole('button', { name: 'Save' }).click();
  await expectTaskIn(bob.page, `${title}, 20 m`, 'doing');
  await expect
    .poll(() => stack.sql(`SELECT status FROM tasks WHERE title = $1`, [`${title}, 20 m`]), { timeout: UI_TIMEOUT_MS })
    .toEqual([{ status: 'doing' }]);

  await bob.page.getByRole('button', { name: `Delete “${title}, 20 m”` }).click();
  await expectNoTask(alice.page, `${title}, 20 m`);
  await expect
    .poll(() => stack.sql(`SELECT 1 FROM tasks WHERE title LIKE $1`, [`${title}%`]), { timeout: UI_TIMEOUT_MS })
    .toEqual([]);
  const result = {
    storage,
    alice: await boardTasks(alice.page),
    bob: await boardTasks(bob.page),
    server: await postgresTasks(stack, FIELD),
  };
  expect([...alice.errors, ...bob.errors]).toEqual([]);
  await aliceContext.close();
  await bobContext.close();
  return result;
}
