/**
 * Conflicts and violations in the task board (apps/tasks/web), in Debian's
 * Chromium against a real `ferry dev --web-build`: an offline title edit
 * that loses to a later online one is listed on both users' pages and can
 * be taken back; two offline bookings of one slot are both kept, flagged on
 * both pages by the app's validation hook (apps/tasks/write-hooks.ts), and
 * the flag goes when one of them moves.
 */
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  booking,
  bookingsIn,
  bookSlot,
  chooseWorkspace,
  conflictsOf,
  editTitle,
  expectTaskIn,
  FIELD,
  openApp,
  openRooms,
  screenshot,
  shownPending,
  signIn,
  startTasksStack,
  task,
  UI_TIMEOUT_MS,
  type AppPage,
  type TasksStack,
} from './web-app-fixture.js';

let stack: TasksStack;
beforeAll(async () => {
  stack = await startTasksStack('ferry-web-conflicts-');
});
afterAll(() => stack?.cleanup.run());

async function postgresTitleIs(id: string, title: string): Promise<void> {
  await expect
    .poll(() => stack.sql(`SELECT title FROM tasks WHERE id = $1`, [id]), { timeout: UI_TIMEOUT_MS })
    .toEqual([{ title }]);
}

async function noConflictsInPostgres(id: string): Promise<void> {
  await expect
    .poll(() => stack.sql(`SELECT id FROM ferry_conflicts WHERE row_id = $1`, [id]), { timeout: UI_TIMEOUT_MS })
    .toEqual([]);
}

interface Member {
  context: BrowserContext;
  app: AppPage;
}

/** alice and bob, each in their own browser profile, both on "Field crew" (the workspace they share). */
async function aliceAndBob(): Promise<[Member, Member]> {
  const members: Member[] = [];
  for (const user of ['alice', 'bob']) {
    const context = await stack.newContext();
    const app = await openApp(stack, context);
    await signIn(app.page, user);
    await chooseWorkspace(app.page, 'Field crew');
    members.push({ context, app });
  }
  return members as [Member, Member];
}

async function goOffline({ context, app }: Member): Promise<void> {
  await context.setOffline(true);
  await expect.poll(() => app.page.getByTestId('connection').textContent()).toBe('Offline');
}

async function goOnline({ context, app }: Member): Promise<void> {
  await context.setOffline(false);
  await expect.poll(() => app.page.getByTestId('connection').textContent(), { timeout: UI_TIMEOUT_MS }).toBe('Online');
  await expect.poll(() => shownPending(app.page), { timeout: UI_TIMEOUT_MS }).toBe(0);
}

describe('conflicts in the task board', () => {
  it('an offline edit that lost is listed on both pages, and taking it back wins everywhere', async () => {
    const [{ id }] = await stack.sql<{ id: string }>(
      `INSERT INTO tasks (workspace_id, title) VALUES ($1, 'Label the valves') RETURNING id::text AS id`,
      [FIELD],
    );
    const [alice, bob] = await aliceAndBob();
    for (const { app } of [alice, bob]) await expectTaskIn(app.page, 'Label the valves', 'todo');

    // alice renames the task offline; a moment later bob renames it online.
    await goOffline(alice);
    await editTitle(alice.app.page, 'Label the valves', 'Label the valves (red tags)');
    await editTitle(bob.app.page, 'Label the valves', 'Label the valves (blue tags)');
    await postgresTitleIs(id, 'Label the valves (blue tags)');

    // alice comes back: her upload is older by the clock, so bob's title stays, on both pages...
    await goOnline(alice);
    for (const { app } of [alice, bob]) await expectTaskIn(app.page, 'Label the valves (blue tags)', 'todo');
    expect(await stack.sql(`SELECT title FROM tasks WHERE id = $1`, [id])).toEqual([
      { title: 'Label the valves (blue tags)' },
    ]);
    // ...and her value is kept as ONE conflict (updated_at is merged by the app's `latest` function).
    const recorded = await stack.sql(
      `SELECT column_name, winner_value, loser_value, base_value, winner_user_id, loser_user_id, scope, policy
         FROM ferry_conflicts WHERE row_id = $1`,
      [id],
    );
    expect(recorded).toEqual([
      {
        column_name: 'title',
        winner_value: '"Label the valves (blue tags)"',
        loser_value: '"Label the valves (red tags)"',
        base_value: '"Label the valves"',
        winner_user_id: 'bob',
        loser_user_id: 'alice',
        scope: FIELD,
        policy: 'lww',
      },
    ]);
    // Both pages list it, with both values and who wrote them, and badge the card.
    for (const [{ app }, me] of [
      [alice, 'alice'],
      [bob, 'bob'],
    ] as const) {
      const entry = conflictsOf(app.page, id);
      await entry.waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await entry.count()).toBe(1);
      expect(await entry.getAttribute('data-column')).toBe('title');
      expect(await entry.locator('.conflict-subject').textContent()).toBe('Task “Label the valves (blue tags)”, title');
      const kept = await entry.getByTestId('conflict-kept').textContent();
      const lost = await entry.getByTestId('conflict-lost').textContent();
      expect(kept).toMatch(
        new RegExp(`^“Label the valves \\(blue tags\\)” by bob${me === 'bob' ? ' \\(you\\)' : ''},`),
      );
      expect(lost).toMatch(
        new RegExp(`^“Label the valves \\(red tags\\)” by alice${me === 'alice' ? ' \\(you\\)' : ''},`),
      );
      expect(lost).toContain('(changed from “Label the valves”)');
      const badge = task(app.page, 'Label the valves (blue tags)').getByTestId('conflict-badge');
      expect(await badge.textContent()).toBe('1 conflict');
    }
    await screenshot(alice.app.page, 'conflicts-title');

    // alice takes her lost value back: both pages show it, the conflict is gone on both and in Postgres.
    await conflictsOf(alice.app.page, id).getByRole('button', { name: 'Take lost value' }).click();
    for (const { app } of [alice, bob]) {
      await expectTaskIn(app.page, 'Label the valves (red tags)', 'todo');
      await conflictsOf(app.page, id).waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
      expect(await app.page.getByTestId('conflict-badge').count()).toBe(0);
    }
    await postgresTitleIs(id, 'Label the valves (red tags)');
    await noConflictsInPostgres(id);
    expect([...alice.app.errors, ...bob.app.errors]).toEqual([]);
    await alice.context.close();
    await bob.context.close();
  });

  it('keeping the current value or writing a new one also settles a conflict', async () => {
    const [{ id }] = await stack.sql<{ id: string }>(
      `INSERT INTO tasks (workspace_id, title) VALUES ($1, 'Grease the gate') RETURNING id::text AS id`,
      [FIELD],
    );
    const [alice, bob] = await aliceAndBob();
    for (const { app } of [alice, bob]) await expectTaskIn(app.page, 'Grease the gate', 'todo');
    // Two lost edits in a row: each of alice's offline renames loses to bob's later one.
    for (const round of [1, 2]) {
      const current = round === 1 ? 'Grease the gate' : 'Grease the gate (bob 1)';
      await goOffline(alice);
      await editTitle(alice.app.page, current, `Grease the gate (alice ${round})`);
      await editTitle(bob.app.page, current, `Grease the gate (bob ${round})`);
      await postgresTitleIs(id, `Grease the gate (bob ${round})`);
      await goOnline(alice);
      // alice's page drops her own title once the server's state (bob's) has come back.
      await expectTaskIn(alice.app.page, `Grease the gate (bob ${round})`, 'todo');
      await expect.poll(() => conflictsOf(bob.app.page, id).count(), { timeout: UI_TIMEOUT_MS }).toBe(round);
    }
    // bob keeps his title for the first; the row is untouched and one conflict is left.
    const first = conflictsOf(bob.app.page, id).filter({ hasText: '(alice 1)' });
    await first.getByRole('button', { name: 'Keep current' }).click();
    for (const { app } of [alice, bob]) {
      await expect.poll(() => conflictsOf(app.page, id).count(), { timeout: UI_TIMEOUT_MS }).toBe(1);
    }
    expect(await stack.sql(`SELECT title FROM tasks WHERE id = $1`, [id])).toEqual([
      { title: 'Grease the gate (bob 2)' },
    ]);
    // For the second he writes a title of his own.
    const second = conflictsOf(bob.app.page, id);
    await second.getByRole('button', { name: 'Write a new value' }).click();
    await second.getByLabel('New title').fill('Grease the gate (both)');
    await second.getByRole('button', { name: 'Write value' }).click();
    for (const { app } of [alice, bob]) {
      await expectTaskIn(app.page, 'Grease the gate (both)', 'todo');
      await expect.poll(() => conflictsOf(app.page, id).count(), { timeout: UI_TIMEOUT_MS }).toBe(0);
    }
    await postgresTitleIs(id, 'Grease the gate (both)');
    await noConflictsInPostgres(id);
    expect([...alice.app.errors, ...bob.app.errors]).toEqual([]);
    await alice.context.close();
    await bob.context.close();
  });
});

describe('double bookings', () => {
  it('two offline bookings of one slot are both kept, flagged on both pages, and cleared by a move', async () => {
    const day = '2030-01-15';
    const [alice, bob] = await aliceAndBob();
    for (const { app } of [alice, bob]) await openRooms(app.page, day);
    const rooms = await alice.app.page.locator('.rooms-grid thead th').allTextContents();
    expect(rooms).toEqual(['Slot', 'Canteen', 'Depot', 'Radio room']);

    // Neither can see the other's booking: both take the Depot at 14:00.
    await goOffline(alice);
    await goOffline(bob);
    await bookSlot(alice.app.page, 'Depot', '14:00', 'Crew briefing');
    await bookSlot(bob.app.page, 'Depot', '14:00', 'Radio check');
    await Promise.all([goOnline(alice), goOnline(bob)]);

    // The server kept both and its hook recorded one violation for the pair.
    await expect
      .poll(() => stack.sql(`SELECT title, booked_by, slot FROM bookings WHERE day = $1 ORDER BY title`, [day]), {
        timeout: UI_TIMEOUT_MS,
      })
      .toEqual([
        { title: 'Crew briefing', booked_by: 'alice', slot: '14:00' },
        { title: 'Radio check', booked_by: 'bob', slot: '14:00' },
      ]);
    const [violation, ...more] = await stack.sql<{ id: string; code: string; message: string; scope: string }>(
      `SELECT id, code, message, scope FROM ferry_violations`,
    );
    expect(more).toEqual([]);
    expect(violation).toMatchObject({
      code: 'double_booking',
      message: `Depot is booked twice on ${day} at 14:00`,
      scope: FIELD,
    });
    expect(violation!.id).toMatch(/^bookings:double-booking:[0-9a-f-]{36}:[0-9a-f-]{36}$/);

    // Both pages show both bookings, each flagged with the hook's message.
    for (const { app } of [alice, bob]) {
      await expect
        .poll(() => bookingsIn(app.page, 'Depot', '14:00'), { timeout: UI_TIMEOUT_MS })
        .toEqual(['Crew briefing', 'Radio check']);
      for (const title of ['Crew briefing', 'Radio check']) {
        const shown = booking(app.page, title);
        await expect.poll(() => shown.getAttribute('data-flagged'), { timeout: UI_TIMEOUT_MS }).toBe('true');
        expect(await shown.getByTestId('double-booked').textContent()).toBe('Double booked');
        expect(await shown.getByTestId('violation-message').allTextContents()).toEqual([
          `Depot is booked twice on ${day} at 14:00`,
        ]);
      }
    }
    await screenshot(bob.app.page, 'conflicts-double-booking', { fullPage: true });

    // bob moves his booking to 15:00: the server re-runs the hook, which no longer flags it.
    await bob.app.page.getByLabel('New slot for “Radio check”').selectOption('15:00');
    await bob.app.page.getByRole('button', { name: 'Move “Radio check”' }).click();
    for (const { app } of [alice, bob]) {
      await expect
        .poll(() => bookingsIn(app.page, 'Depot', '15:00'), { timeout: UI_TIMEOUT_MS })
        .toEqual(['Radio check']);
      await expect.poll(() => bookingsIn(app.page, 'Depot', '14:00')).toEqual(['Crew briefing']);
      await expect.poll(() => app.page.getByTestId('double-booked').count(), { timeout: UI_TIMEOUT_MS }).toBe(0);
      expect(await booking(app.page, 'Crew briefing').getAttribute('data-flagged')).toBe('false');
    }
    expect(await stack.sql(`SELECT id FROM ferry_violations`)).toEqual([]);
    // Only the booker may move or cancel a booking: alice sees no controls on bob's.
    expect(await booking(alice.app.page, 'Radio check').getByRole('button').count()).toBe(0);
    expect([...alice.app.errors, ...bob.app.errors]).toEqual([]);
    await alice.context.close();
    await bob.context.close();
  });
});
