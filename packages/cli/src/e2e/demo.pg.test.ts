/**
 * The README's first command runs `ferry demo`: an embedded Postgres, the
 * service and two users' local SQLite, with scripted changes made in
 * Postgres and as local writes on the devices. This runs it for real (own
 * embedded Postgres, a copy of apps/tasks) through one whole cycle of the
 * script, checks what the two users' devices showed, then opens the demo's
 * Postgres again to check what the local writes left there.
 */
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../embedded-postgres.js';
import { Cleanup, pgQuery, REPO_ROOT, runCli, tempDir } from './stack.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

const FIELD = '22222222-2222-4222-8222-222222222222';

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
  it("shows Postgres changes and local writes syncing between two users' devices, a rejected write reverted, and exits cleanly", async () => {
    const project = path.join(await tempDir(cleanup, 'ferry-demo-'), 'tasks');
    await cp(path.join(REPO_ROOT, 'apps/tasks'), project, {
      recursive: true,
      filter: (source) => !source.includes(`${path.sep}.ferry`),
    });
    // One whole cycle of the script: 8 steps.
    const cli = runCli(['demo', '--project', project, '--port', '0', '--steps', '8', '--interval', '300'], { cleanup });
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
  });
});
