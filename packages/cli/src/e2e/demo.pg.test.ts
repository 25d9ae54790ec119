/**
 * The README's first command runs `ferry demo`: an embedded Postgres, the
 * service and two users' local SQLite, with scripted changes made in
 * Postgres and as local writes on the devices, an offline edit that loses
 * by clock (a conflict, resolved) and a double booking (a violation,
 * cleared). This runs it for real (own embedded Postgres, a copy of
 * apps/tasks with its hooks module) through one whole cycle of the script,
 * checks what the two users' devices showed, then opens the demo's Postgres
 * again to check what the local writes left there.
 */
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../embedded-postgres.js';
import { Cleanup, pgQuery, REPO_ROOT, runCli, tempDir } from './stack.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

const FIELD = '22222222-2222-4222-8222-222222222222';
const DEPOT = 'b2222222-1111-4111-8111-111111111111';

/** `text` as a regular expression matching it literally. */
const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every screen the demo rendered, in order. */
function screens(output: string): string[] {
  return output.split('\x1b[2J\x1b[H').filter((screen) => screen.includes('Ferry demo'));
}

/** One user's part of a screen: from their header to the blank line after it. */
function section(screen: string, user: 'alice' | 'bob'): string {
  const start = screen.indexOf(`${user}'s local SQLite:`);
  if (start < 0) return '';
  const end = screen.indexOf('\n\n', start);
  return screen.slice(start, end < 0 ? undefined : end);
}

describe('ferry demo', () => {
  it("shows Postgres changes and local writes syncing between two users' devices, a rejected write reverted, a conflict and a double booking settled, and exits cleanly", async () => {
    const project = path.join(await tempDir(cleanup, 'ferry-demo-'), 'tasks');
    await cp(path.join(REPO_ROOT, 'apps/tasks'), project, {
      recursive: true,
      filter: (source) => !source.includes(`${path.sep}.ferry`),
    });
    // One whole cycle of the script: 12 steps.
    const cli = runCli(['demo', '--project', project, '--port', '0', '--steps', '12', '--interval', '300'], {
      cleanup,
    });
    const { code } = await cli.exited;
    const output = cli.output();
    // On failure, show the end of the demo's output.
    expect({ code, tail: code === 0 ? '' : output.slice(-2000) }).toEqual({ code: 0, tail: '' });

    const all = screens(output);
    const last = all.at(-1)!;
    // First sync: alice sees both workspaces' tasks (4), bob only "Field crew" (2).
    expect(
      all.some((s) => s.includes("alice's local SQLite: 4 tasks") && s.includes("bob's local SQLite: 2 tasks")),
    ).toBe(true);

    // Step 2, a local write: bob ticks a task on his device; it reaches alice through the write API.
    expect(output).toMatch(
      /2\. bob ticks "Check the north pumps" on his device \(local SQLite → write API → Postgres → alice\) — saved locally in [\d.]+ ms, on alice's device after [\d.]+ ms/,
    );
    expect(section(last, 'alice')).toContain('[x] Field crew   Check the north pumps');
    // The write waited in bob's upload queue, and the screen showed it.
    expect(all.some((s) => / 1 pending upload/.test(section(s, 'bob')))).toBe(true);

    // Step 4, a local insert: alice adds a task on her device; bob's device gets it.
    expect(output).toMatch(
      /4\. alice adds "Call the supplier #3" to "Field crew" on her device \(→ write API → Postgres → bob\) — saved locally in [\d.]+ ms, on bob's device after [\d.]+ ms/,
    );
    expect(section(last, 'bob')).toContain('[ ] Field crew   Call the supplier #3');
    expect(all.some((s) => / 1 pending upload/.test(section(s, 'alice')))).toBe(true);

    // Step 6, rejected by the write rules: workspaces are not writable; bob's row goes back to the server's name.
    expect(output).toMatch(
      /6\. bob renames "Field crew" to "Bob's crew" on his device \(clients may not write workspaces\) — rejected after [\d.]+ ms: FERRY_S6001 table "workspaces" is not writable[^\n]*; bob's device shows "Field crew" again/,
    );
    expect(section(last, 'bob')).toMatch(
      /· 1 rejected\n[\s\S]*last rejected write: PATCH workspaces 22222222…: FERRY_S6001 table "workspaces" is not writable/,
    );
    expect(section(last, 'bob')).not.toContain("Bob's crew");
    // alice never saw the rejected name.
    expect(all.some((s) => section(s, 'alice').includes("Bob's crew"))).toBe(false);

    // Membership added: bob gets "Launch plan" without reconnecting (4 + its 3 tasks)…
    expect(all.some((s) => section(s, 'bob').startsWith("bob's local SQLite: 7 tasks"))).toBe(true);
    // …and loses it again when removed; bob never keeps the Launch-plan insert while not a member.
    expect(last).toContain("alice's local SQLite: 7 tasks · 0 pending uploads");
    expect(last).toContain("bob's local SQLite: 4 tasks · 0 pending uploads");
    expect(section(last, 'bob')).not.toContain('Draft tweet');
    expect(section(last, 'alice')).toContain('Draft tweet #2');
    // The five Postgres steps, each timed (the screen lists recent steps, so each shows on several screens).
    const timed = new Set(
      [...output.matchAll(/(\d+)\. Postgres: [^\n]* — visible locally after [\d.]+ ms/g)].map((m) => m[1]),
    );
    expect([...timed].sort()).toEqual(['1', '3', '5', '7', '8']);
    expect(last).toContain('psql');

    // Step 9, a conflict: alice renames a task offline, bob renames it online a moment later; alice's
    // upload arrives last but is older by clock, so bob's title stays and hers is recorded.
    const scene = output.match(
      /9\. alice goes offline and renames "Order spare filters" to "(Order spare filters \(alice [\d:.]+\))"; bob, online, renames it a moment later to "(Order spare filters \(bob [\d:.]+\))"; alice comes back online — her rename uploaded last, but bob's is later by clock and was kept: both devices show "([^"]+)" after [\d.]+ ms/,
    );
    expect(scene).not.toBeNull();
    const [, lost, kept, shown] = scene!;
    expect(shown).toBe(kept);
    // The conflict record as each device's getConflicts() returns it; the kept edit's stamp is the later one.
    for (const user of ['alice', 'bob']) {
      const record = output.match(
        new RegExp(
          `conflict on ${user}'s device: tasks\\.title kept "${literal(kept!)}" by bob at ([\\d:.]+), lost "${literal(lost!)}" by alice at ([\\d:.]+)`,
        ),
      );
      expect(record, `the conflict on ${user}'s device`).not.toBeNull();
      // Times of day (HH:MM:SS.mmm): the kept edit is later, by less than a minute (midnight-safe).
      const ms = (t: string) => t.split(':').reduce((sum, part) => sum * 60 + Number(part), 0) * 1000;
      const later = (ms(record![1]!) - ms(record![2]!) + 86_400_000) % 86_400_000;
      expect(later).toBeGreaterThan(0);
      expect(later).toBeLessThan(60_000);
    }
    // alice's rename waited in her queue while she was offline; then each device listed exactly one
    // conflict (updated_at, also changed by both, is merged by write-hooks.ts's `latest`).
    expect(all.some((s) => /1 pending upload · offline$/m.test(section(s, 'alice')))).toBe(true);
    for (const user of ['alice', 'bob'] as const) {
      expect(all.some((s) => / · 1 conflict\b/.test(section(s, user).split('\n')[0]!))).toBe(true);
      expect(all.some((s) => / conflicts\b/.test(section(s, user).split('\n')[0]!))).toBe(false);
    }

    // Step 10: bob takes alice's lost title back; both devices show it and the conflict is gone on both.
    expect(output).toMatch(
      new RegExp(
        `10\\. bob resolves the conflict on his device, taking the lost value \\(resolveConflict\\(id, \\{ keep: 'lost' \\}\\)\\) — saved locally in [\\d.]+ ms, both devices show "${literal(lost!)}" and no conflict after [\\d.]+ ms`,
      ),
    );
    for (const user of ['alice', 'bob'] as const) {
      expect(section(last, user)).toContain(lost);
      expect(section(last, user)).not.toContain(kept);
      expect(section(last, user).split('\n')[0]).not.toMatch(/conflict|violation|offline/);
    }

    // Steps 11 and 12, a double booking: both book the Depot offline; the bookings hook flags the
    // pair on both devices; bob moves his booking and the flag goes away on both.
    const booked = output.match(
      /11\. alice and bob go offline and each book the Depot on (\d{4}-\d\d-\d\d) at 14:00; both come back online — both bookings are kept, and the bookings hook flags them: on both devices after [\d.]+ ms/,
    );
    expect(booked).not.toBeNull();
    const day = booked![1]!;
    for (const user of ['alice', 'bob']) {
      expect(output).toContain(
        `violation on ${user}'s device: double_booking "Depot is booked twice on ${day} at 14:00" (bookings by alice and bob)`,
      );
    }
    expect(output).toMatch(
      /12\. bob moves his booking to 15:00 on his device — saved locally in [\d.]+ ms, no longer flagged: the violation is gone on both devices after [\d.]+ ms/,
    );

    // What the local writes left in Postgres (the demo's own database, opened again).
    const postgres = await startEmbeddedPostgres({ dataDir: path.join(project, '.ferry', 'pg') });
    cleanup.add(() => postgres.stop());
    const url = postgres.url('ferry');
    expect(await pgQuery(url, `SELECT done FROM tasks WHERE title = 'Check the north pumps'`)).toEqual([
      { done: true },
    ]);
    expect(await pgQuery(url, `SELECT workspace_id FROM tasks WHERE title = 'Call the supplier #3'`)).toEqual([
      { workspace_id: FIELD },
    ]);
    expect(await pgQuery(url, `SELECT name FROM workspaces WHERE id = $1`, [FIELD])).toEqual([{ name: 'Field crew' }]);
    // The resolution wrote alice's title and deleted the record; bob's move cleared the violation.
    expect(await pgQuery(url, `SELECT count(*)::int AS n FROM tasks WHERE title = $1`, [lost])).toEqual([{ n: 1 }]);
    expect(await pgQuery(url, `SELECT count(*)::int AS n FROM ferry_conflicts`)).toEqual([{ n: 0 }]);
    expect(await pgQuery(url, `SELECT count(*)::int AS n FROM ferry_violations`)).toEqual([{ n: 0 }]);
    expect(
      await pgQuery(
        url,
        `SELECT booked_by, slot FROM bookings WHERE room_id = $1 AND day = $2::date ORDER BY booked_by`,
        [DEPOT, day],
      ),
    ).toEqual([
      { booked_by: 'alice', slot: '14:00' },
      { booked_by: 'bob', slot: '15:00' },
    ]);
  });
});
