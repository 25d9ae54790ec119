/**
 * The README's first command runs `ferry demo`: an embedded Postgres, the
 * service and two users' local SQLite, with scripted changes. This runs it
 * for real (own embedded Postgres, a copy of apps/tasks) and checks what the
 * two users' devices showed.
 */
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cleanup, REPO_ROOT, runCli, tempDir } from './stack.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

/** Every screen the demo rendered, in order. */
function screens(output: string): string[] {
  return output.split('\x1b[2J\x1b[H').filter((screen) => screen.includes('Ferry demo'));
}

describe('ferry demo', () => {
  it("shows Postgres changes in both users' local SQLite, filtered by the rules, and exits cleanly", async () => {
    const project = path.join(await tempDir(cleanup, 'ferry-demo-'), 'tasks');
    await cp(path.join(REPO_ROOT, 'apps/tasks'), project, {
      recursive: true,
      filter: (source) => !source.includes(`${path.sep}.ferry`),
    });
    const cli = runCli(['demo', '--project', project, '--port', '0', '--steps', '5', '--interval', '300'], { cleanup });
    const { code } = await cli.exited;
    const output = cli.output();
    // On failure, show the end of the demo's output.
    expect({ code, tail: code === 0 ? '' : output.slice(-2000) }).toEqual({ code: 0, tail: '' });

    const all = screens(output);
    // First sync: alice sees both workspaces' tasks (4), bob only "Field crew" (2).
    expect(
      all.some((s) => s.includes("alice's local SQLite: 4 tasks") && s.includes("bob's local SQLite: 2 tasks")),
    ).toBe(true);
    // Membership added: bob gets "Launch plan" without reconnecting.
    expect(all.some((s) => s.includes("bob's local SQLite: 6 tasks"))).toBe(true);
    // …and loses it again when removed; bob never sees the Launch-plan insert while not a member.
    const last = all.at(-1)!;
    expect(last).toContain("alice's local SQLite: 6 tasks");
    expect(last).toContain("bob's local SQLite: 3 tasks");
    expect(last).not.toMatch(/bob's local SQLite[\s\S]*Draft tweet/);
    expect(output.match(/visible locally after [\d.]+ ms/g)?.length).toBe(5);
    expect(last).toContain('psql');
  });
});
