import { ferryConnector, type FerryDatabase } from '@ferry/client';
import { openFerryDatabase } from '@ferry/client-node';
import { randomUUID } from 'node:crypto';
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
/** How long a step waits for its effect before saying it did not show. */
const STEP_TIMEOUT_MS = 5000;
/** How many recent changes the screen lists. */
const HISTORY = 5;

type User = 'alice' | 'bob';
const USERS: readonly User[] = ['alice', 'bob'];
const PRONOUN: Record<User, string> = { alice: 'her', bob: 'his' };

/**
 * One scripted step: a Postgres transaction (as any backend or psql would
 * make), or a local write on one user's device that goes through the upload
 * queue and the write API.
 */
type Step =
  | { kind: 'postgres'; say: string; sql: string; params?: unknown[] }
  /** The user ticks the first open "Field crew" task in their local SQLite. */
  | { kind: 'tick'; user: User }
  /** The user adds a task to "Field crew" in their local SQLite. */
  | { kind: 'add'; user: User; title: string; position: number }
  /** The user renames "Field crew" locally: the write rules do not let clients write workspaces. */
  | { kind: 'rename'; user: User; name: string };

/** The scripted story, one cycle; step `n` of a run is `script(n)[n % length]`. */
function script(n: number): Step[] {
  return [
    {
      kind: 'postgres',
      say: `Postgres: insert a task into "Field crew" (alice and bob both see it)`,
      sql: `INSERT INTO tasks (workspace_id, title, position) VALUES ($1, $2, 100 + $3)`,
      params: [FIELD, `Inspect valve #${n}`, n],
    },
    { kind: 'tick', user: 'bob' },
    {
      kind: 'postgres',
      say: `Postgres: insert a task into "Launch plan" (only alice sees it)`,
      sql: `INSERT INTO tasks (workspace_id, title, position) VALUES ($1, $2, 100 + $3)`,
      params: [LAUNCH, `Draft tweet #${n}`, n],
    },
    { kind: 'add', user: 'alice', title: `Call the supplier #${n}`, position: 100 + n },
    {
      kind: 'postgres',
      say: `Postgres: add bob to "Launch plan" (bob gets its tasks without reconnecting)`,
      sql: `INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1, 'bob') ON CONFLICT DO NOTHING`,
      params: [LAUNCH],
    },
    { kind: 'rename', user: 'bob', name: `Bob's crew` },
    {
      kind: 'postgres',
      say: `Postgres: remove bob from "Launch plan" (its tasks leave bob's device)`,
      sql: `DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = 'bob'`,
      params: [LAUNCH],
    },
    {
      kind: 'postgres',
      say: `Postgres: mark the oldest open task done`,
      sql: `UPDATE tasks SET done = true, updated_at = now() WHERE id = (SELECT id FROM tasks WHERE NOT done ORDER BY created_at, position LIMIT 1)`,
    },
  ];
}

type TaskRow = { id: string; workspace: string; title: string; done: number };
type RejectionRow = { op: string; row_type: string; row_id: string; code: string; message: string };

/** One user's device: their local SQLite and what the screen shows of it. */
interface Device {
  user: User;
  db: FerryDatabase;
  /** The task list, as the live query last emitted it. */
  rows: TaskRow[];
  /** Local writes not yet acknowledged by the write API (`status.pendingCount`). */
  pending: number;
  /** `ferry_rejections`, as its live query last emitted it. */
  rejections: RejectionRow[];
}

const ms = (value: number): string => `${value.toFixed(1)} ms`;
const short = (id: string): string => (id.length > 12 ? `${id.slice(0, 8)}…` : id);

export const demoCommand: CommandSpec<typeof options> = {
  name: 'demo',
  summary:
    "the task-board demo in the terminal: Postgres changes and local writes sync live between two users' local SQLite",
  options,
  async run(values) {
    const project = path.resolve(values.project ?? defaultProject);
    const stateDir = path.join(project, '.ferry');
    // Loaded on demand: only dev and demo need the embedded Postgres.
    const { startDevStack } = await import('../dev-stack.js');
    const stack = await startDevStack({ projectDir: project, stateDir, port: Number(values.port), logLevel: 'warn' });
    const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
    const devices: Device[] = [];
    const history: string[] = [];
    let showing = false;

    const render = (): void => {
      if (!showing) return;
      const out: string[] = [
        '\x1b[2J\x1b[H',
        `Ferry demo — ${stack.service.url}   (Ctrl-C to stop)`,
        `Change Postgres yourself and watch both devices follow:`,
        `  psql '${stack.databaseUrl}' -c "INSERT INTO tasks (workspace_id, title) VALUES ('${FIELD}', 'Hello from psql')"`,
        '',
      ];
      for (const d of devices) {
        const pending = `${d.pending} pending upload${d.pending === 1 ? '' : 's'}`;
        const rejected = d.rejections.length === 0 ? '' : ` · ${d.rejections.length} rejected`;
        out.push(`  ${d.user}'s local SQLite: ${d.rows.length} tasks · ${pending}${rejected}`);
        for (const r of d.rows) out.push(`    [${r.done ? 'x' : ' '}] ${r.workspace.padEnd(12)} ${r.title}`);
        const last = d.rejections.at(-1);
        if (last !== undefined) {
          out.push(
            `    last rejected write: ${last.op} ${last.row_type} ${short(last.row_id)}: ${last.code} ${last.message}`,
          );
        }
        out.push('');
      }
      out.push('  changes (newest last):');
      for (const line of history) out.push(`    ${line}`);
      process.stdout.write(out.join('\n') + '\n');
    };

    const device = (user: User): Device => devices.find((d) => d.user === user)!;
    const otherThan = (user: User): Device => devices.find((d) => d.user !== user)!;

    /** Polls until `done()` holds; the ms since `started`, or null after STEP_TIMEOUT_MS. */
    const waitUntil = async (done: () => boolean, started: number): Promise<number | null> => {
      while (!done()) {
        if (performance.now() - started > STEP_TIMEOUT_MS) return null;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return performance.now() - started;
    };

    /** Runs one step; returns the line that says what happened. */
    const runStep = async (step: Step): Promise<string> => {
      const started = performance.now();
      switch (step.kind) {
        case 'postgres': {
          const before = devices.map((d) => JSON.stringify(d.rows));
          await pool.query(step.sql, step.params ?? []);
          // Time until the first device whose view changes has it.
          const took = await waitUntil(() => devices.some((d, k) => JSON.stringify(d.rows) !== before[k]), started);
          return `${step.say} — ${took === null ? `no device changed within ${STEP_TIMEOUT_MS} ms` : `visible locally after ${ms(took)}`}`;
        }
        case 'tick': {
          const me = device(step.user);
          const other = otherThan(step.user);
          const task = await me.db.getOptional<{ id: string; title: string }>(
            `SELECT id, title FROM tasks WHERE workspace_id = ? AND done = 0 ORDER BY position, id LIMIT 1`,
            [FIELD],
          );
          if (task === null) return `${me.user} has no open "Field crew" task to tick`;
          const say = `${me.user} ticks "${task.title}" on ${PRONOUN[me.user]} device (local SQLite → write API → Postgres → ${other.user})`;
          await me.db.writeTransaction(async (tx) => {
            await tx.execute(`UPDATE tasks SET done = 1, updated_at = ? WHERE id = ?`, [
              new Date().toISOString(),
              task.id,
            ]);
          });
          const local = performance.now() - started;
          const took = await waitUntil(() => other.rows.some((r) => r.id === task.id && r.done === 1), started);
          return `${say} — saved locally in ${ms(local)}, ${took === null ? `not on ${other.user}'s device within ${STEP_TIMEOUT_MS} ms` : `on ${other.user}'s device after ${ms(took)}`}`;
        }
        case 'add': {
          const me = device(step.user);
          const other = otherThan(step.user);
          const id = randomUUID();
          const now = new Date().toISOString();
          const say = `${me.user} adds "${step.title}" to "Field crew" on ${PRONOUN[me.user]} device (→ write API → Postgres → ${other.user})`;
          await me.db.execute(
            `INSERT INTO tasks (id, workspace_id, title, done, position, tags, created_at, updated_at)
             VALUES (?, ?, ?, 0, ?, '[]', ?, ?)`,
            [id, FIELD, step.title, step.position, now, now],
          );
          const local = performance.now() - started;
          const took = await waitUntil(() => other.rows.some((r) => r.id === id), started);
          return `${say} — saved locally in ${ms(local)}, ${took === null ? `not on ${other.user}'s device within ${STEP_TIMEOUT_MS} ms` : `on ${other.user}'s device after ${ms(took)}`}`;
        }
        case 'rename': {
          const me = device(step.user);
          const seen = me.rejections.length;
          const say = `${me.user} renames "Field crew" to "${step.name}" on ${PRONOUN[me.user]} device (clients may not write workspaces)`;
          await me.db.execute(`UPDATE workspaces SET name = ? WHERE id = ?`, [step.name, FIELD]);
          const took = await waitUntil(
            () => me.rejections.length > seen && !me.rows.some((r) => r.workspace === step.name),
            started,
          );
          if (took === null) return `${say} — no rejection within ${STEP_TIMEOUT_MS} ms`;
          const reason = me.rejections.at(-1)!;
          const now = await me.db.get<{ name: string }>(`SELECT name FROM workspaces WHERE id = ?`, [FIELD]);
          return `${say} — rejected after ${ms(took)}: ${reason.code} ${reason.message}; ${me.user}'s device shows "${now.name}" again`;
        }
      }
    };

    try {
      await stack.service.waitUntilReady();
      const clientDir = path.join(stateDir, 'demo-clients');
      await rm(clientDir, { recursive: true, force: true });
      await mkdir(clientDir, { recursive: true });
      for (const user of USERS) {
        const db = await openFerryDatabase({ path: path.join(clientDir, `${user}.db`), schema: tasksSchema });
        const entry: Device = { user, db, rows: [], pending: 0, rejections: [] };
        devices.push(entry);
        db.watch<TaskRow>(
          `SELECT t.id, w.name AS workspace, t.title, t.done FROM tasks t JOIN workspaces w ON w.id = t.workspace_id
           ORDER BY w.name, t.position, t.id`,
          [],
          { onResult: (rows) => ((entry.rows = rows), render()) },
        );
        db.watch<RejectionRow>(`SELECT op, row_type, row_id, code, message FROM ferry_rejections ORDER BY id`, [], {
          onResult: (rows) => ((entry.rejections = rows), render()),
        });
        db.registerListener({
          statusChanged: (status) => {
            if (status.pendingCount === entry.pending) return;
            entry.pending = status.pendingCount;
            render();
          },
        });
        // Ferry's own write connector: the sync stream, and local writes uploaded to POST /write.
        await db.connect(ferryConnector({ endpoint: stack.service.url, fetchToken: () => stack.token(user, 300) }));
      }
      await Promise.all(devices.map((d) => d.db.waitForFirstSync()));
      history.push('first sync done');
      showing = true;
      render();

      const steps = Number(values.steps);
      const interval = Number(values.interval);
      const stop = new AbortController();
      void untilSignal().then(() => stop.abort());
      for (let i = 0; (steps === 0 || i < steps) && !stop.signal.aborted; i++) {
        await new Promise((resolve) => setTimeout(resolve, interval));
        if (stop.signal.aborted) break;
        const cycle = script(i);
        const step = cycle[i % cycle.length]!;
        history.push(`${i + 1}. …`);
        if (history.length > HISTORY) history.shift();
        render();
        history[history.length - 1] = `${i + 1}. ${await runStep(step)}`;
        render();
      }
    } finally {
      showing = false;
      for (const d of devices) await d.db.close().catch(() => {});
      await pool.end();
      await stack.stop();
    }
  },
};
