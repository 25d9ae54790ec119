import { openFerryDatabase } from '@ferry/client-node';
import type { FerryDatabase } from '@ferry/client';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { CommandSpec } from '../args.js';
import { tasksSchema } from '../demo/schema.js';
import { untilSignal } from '../signals.js';

const defaultProject = fileURLToPath(new URL('../../../../apps/tasks', import.meta.url));

const options = {
  project: { type: 'string', default: defaultProject, help: 'the demo project folder' },
  port: { type: 'string', default: '8080', env: 'FERRY_PORT', help: 'HTTP port of the service (0 = a free one)' },
  steps: { type: 'string', default: '0', help: 'stop after this many scripted changes (0 = run until Ctrl-C)' },
  interval: { type: 'string', default: '2500', help: 'milliseconds between scripted changes' },
} as const;

const LAUNCH = '11111111-1111-4111-8111-111111111111';
const FIELD = '22222222-2222-4222-8222-222222222222';

interface Step {
  say: string;
  sql: string;
  params?: unknown[];
}

/** The scripted story: each step is one Postgres transaction. */
function script(n: number): Step[] {
  return [
    {
      say: `insert a task into "Field crew" (alice and bob both see it)`,
      sql: `INSERT INTO tasks (workspace_id, title, position) VALUES ($1, $2, 100 + $3)`,
      params: [FIELD, `Inspect valve #${n}`, n],
    },
    {
      say: `insert a task into "Launch plan" (only alice sees it)`,
      sql: `INSERT INTO tasks (workspace_id, title, position) VALUES ($1, $2, 100 + $3)`,
      params: [LAUNCH, `Draft tweet #${n}`, n],
    },
    {
      say: `mark the oldest open task done`,
      sql: `UPDATE tasks SET done = true, updated_at = now() WHERE id = (SELECT id FROM tasks WHERE NOT done ORDER BY created_at, position LIMIT 1)`,
    },
    {
      say: `add bob to "Launch plan" (bob gets its tasks without reconnecting)`,
      sql: `INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1, 'bob') ON CONFLICT DO NOTHING`,
      params: [LAUNCH],
    },
    {
      say: `remove bob from "Launch plan" (its tasks leave bob's device)`,
      sql: `DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = 'bob'`,
      params: [LAUNCH],
    },
  ];
}

type TaskRow = { workspace: string; title: string; done: number };

export const demoCommand: CommandSpec<typeof options> = {
  name: 'demo',
  summary: "the task-board demo in the terminal: Postgres changes appear live in two users' local SQLite",
  options,
  async run(values) {
    const project = path.resolve(values.project ?? defaultProject);
    const stateDir = path.join(project, '.ferry');
    // Loaded on demand: only dev and demo need the embedded Postgres.
    const { startDevStack } = await import('../dev-stack.js');
    const stack = await startDevStack({ projectDir: project, stateDir, port: Number(values.port), logLevel: 'warn' });
    const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
    const clients: { user: string; db: FerryDatabase; rows: TaskRow[]; notes: number }[] = [];
    try {
      await stack.service.waitUntilReady();
      const clientDir = path.join(stateDir, 'demo-clients');
      await rm(clientDir, { recursive: true, force: true });
      await mkdir(clientDir, { recursive: true });
      for (const user of ['alice', 'bob']) {
        const db = await openFerryDatabase({ path: path.join(clientDir, `${user}.db`), schema: tasksSchema });
        const entry = { user, db, rows: [] as TaskRow[], notes: 0 };
        clients.push(entry);
        db.watch<TaskRow>(
          `SELECT w.name AS workspace, t.title, t.done FROM tasks t JOIN workspaces w ON w.id = t.workspace_id
           ORDER BY w.name, t.position`,
          [],
          { onResult: (rows) => ((entry.rows = rows), render()) },
        );
        await db.connect({
          fetchCredentials: async () => ({ endpoint: stack.service.url, token: await stack.token(user, 300) }),
        });
      }
      await Promise.all(clients.map((c) => c.db.waitForFirstSync()));
      let last = 'first sync done';
      const render = () => {
        const out: string[] = [
          '\x1b[2J\x1b[H',
          `Ferry demo — ${stack.service.url}   (Ctrl-C to stop)`,
          `Change Postgres yourself and watch both devices follow:`,
          `  psql '${stack.databaseUrl}' -c "INSERT INTO tasks (workspace_id, title) VALUES ('${FIELD}', 'Hello from psql')"`,
          '',
        ];
        for (const c of clients) {
          out.push(`  ${c.user}'s local SQLite: ${c.rows.length} tasks`);
          for (const r of c.rows) out.push(`    [${r.done ? 'x' : ' '}] ${r.workspace.padEnd(12)} ${r.title}`);
          out.push('');
        }
        out.push(`  last change: ${last}`);
        process.stdout.write(out.join('\n') + '\n');
      };
      render();

      const steps = Number(values.steps);
      const interval = Number(values.interval);
      const stop = new AbortController();
      void untilSignal().then(() => stop.abort());
      for (let i = 0; (steps === 0 || i < steps) && !stop.signal.aborted; i++) {
        await new Promise((resolve) => setTimeout(resolve, interval));
        if (stop.signal.aborted) break;
        const step = script(i)[i % 5]!;
        const started = performance.now();
        const before = clients.map((c) => JSON.stringify(c.rows));
        last = `${step.say} …`;
        await pool.query(step.sql, step.params ?? []);
        // Time until the first client whose view changes has it.
        while (clients.every((c, k) => JSON.stringify(c.rows) === before[k]) && performance.now() - started < 5000) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        last = `${step.say} — visible locally after ${(performance.now() - started).toFixed(1)} ms`;
        render();
      }
    } finally {
      for (const c of clients) await c.db.close().catch(() => {});
      await pool.end();
      await stack.stop();
    }
  },
};
