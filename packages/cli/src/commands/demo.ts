import { ferryConnector, type Conflict, type FerryConnector, type FerryDatabase, type Violation } from '@ferry/client';
import { openFerryDatabase } from '@ferry/client-node';
import { decodeHlc, type SqliteValue } from '@ferry/protocol';
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
/** The "Field crew" room the double-booking scene books (migrations/004_rooms_bookings.sql). */
const DEPOT = 'b2222222-1111-4111-8111-111111111111';
/** The seeded "Field crew" task the conflict scene renames; its titles keep this prefix. */
const CONFLICT_TASK = 'Order spare filters';
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
  | { kind: 'rename'; user: User; name: string }
  /**
   * `offline` disconnects and renames the CONFLICT_TASK; `online` renames it
   * a moment later, and that reaches Postgres; `offline` reconnects.
   */
  | { kind: 'conflict'; offline: User; online: User }
  /** The user settles the newest conflict about a task by taking the lost value. */
  | { kind: 'resolve'; user: User }
  /** Both users go offline and book the Depot at `slot` on a day nobody booked it yet; both reconnect. */
  | { kind: 'double-book'; slot: string }
  /** The user moves their booking of the newest double booking to `slot`. */
  | { kind: 'move-booking'; user: User; slot: string };

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
    { kind: 'conflict', offline: 'alice', online: 'bob' },
    { kind: 'resolve', user: 'bob' },
    { kind: 'double-book', slot: '14:00' },
    { kind: 'move-booking', user: 'bob', slot: '15:00' },
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
  /** `db.watchConflicts()`'s last list. */
  conflicts: Conflict[];
  /** `db.watchViolations()`'s last list. */
  violations: Violation[];
  /** What `db.connect` was given, to reconnect after a scripted disconnect. */
  connector: FerryConnector;
  online: boolean;
}

const ms = (value: number): string => `${value.toFixed(1)} ms`;
const short = (id: string): string => (id.length > 12 ? `${id.slice(0, 8)}…` : id);
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
/** A local time of day with milliseconds, e.g. `14:03:07.120`. */
const clock = (wallMs: number): string => {
  const t = new Date(wallMs);
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
};
/** A conflict side: the value, who wrote it and when by their device's clock (its HLC stamp). */
const side = (value: SqliteValue, userId: string | null, hlc: string): string =>
  `${typeof value === 'string' ? JSON.stringify(value) : String(value)} by ${userId ?? 'a write outside Ferry'}` +
  (hlc === '' ? '' : ` at ${clock(decodeHlc(hlc).wallMs)}`);
/** The day after `latest` (`YYYY-MM-DD`), or today (UTC) when that is later or nothing is booked. */
const freeDay = (latest: string | null): string => {
  const today = new Date().toISOString().slice(0, 10);
  if (latest === null || latest < today) return today;
  const next = new Date(`${latest}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return next.toISOString().slice(0, 10);
};

export const demoCommand: CommandSpec<typeof options> = {
  name: 'demo',
  summary:
    "the task-board demo in the terminal: Postgres changes and local writes sync live between two users' local SQLite, with an offline edit that loses by clock and a double booking",
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
        const status = [`${d.rows.length} tasks`, plural(d.pending, 'pending upload')];
        if (d.conflicts.length > 0) status.push(plural(d.conflicts.length, 'conflict'));
        if (d.violations.length > 0) status.push(plural(d.violations.length, 'violation'));
        if (d.rejections.length > 0) status.push(`${d.rejections.length} rejected`);
        if (!d.online) status.push('offline');
        out.push(`  ${d.user}'s local SQLite: ${status.join(' · ')}`);
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
      for (const entry of history) out.push(...entry.split('\n').map((line) => `    ${line}`));
      process.stdout.write(out.join('\n') + '\n');
    };

    const device = (user: User): Device => devices.find((d) => d.user === user)!;
    const otherThan = (user: User): Device => devices.find((d) => d.user !== user)!;

    /** Polls until `done()` holds; the ms since `started`, or null after STEP_TIMEOUT_MS. */
    const waitUntil = async (done: () => boolean | Promise<boolean>, started: number): Promise<number | null> => {
      while (!(await done())) {
        if (performance.now() - started > STEP_TIMEOUT_MS) return null;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return performance.now() - started;
    };

    /** Disconnects (the device works on alone: writes wait in its upload queue) or reconnects a device. */
    const setOnline = async (d: Device, online: boolean): Promise<void> => {
      if (online) await d.db.connect(d.connector);
      else await d.db.disconnect();
      d.online = online;
      render();
    };

    const renameTask = async (d: Device, id: string, title: string): Promise<void> => {
      await d.db.execute(`UPDATE tasks SET title = ?, updated_at = ? WHERE id = ?`, [
        title,
        new Date().toISOString(),
        id,
      ]);
    };

    /** Runs one step; returns the line (or lines) that say what happened. */
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
        case 'conflict': {
          const away = device(step.offline);
          const here = device(step.online);
          const task = await away.db.getOptional<{ id: string; title: string }>(
            `SELECT id, title FROM tasks WHERE workspace_id = ? AND title LIKE ? ORDER BY position, id LIMIT 1`,
            [FIELD, `${CONFLICT_TASK}%`],
          );
          if (task === null) return `${away.user} has no "${CONFLICT_TASK}" task to rename`;
          // Fresh titles every time (the time of day), so a repeated scene never writes an unchanged value.
          const lostTitle = `${CONFLICT_TASK} (${away.user} ${clock(Date.now())})`;
          await setOnline(away, false);
          await renameTask(away, task.id, lostTitle);
          // "A moment later": the online edit's stamp must be later than the offline one's.
          await new Promise((resolve) => setTimeout(resolve, 20));
          const keptTitle = `${CONFLICT_TASK} (${here.user} ${clock(Date.now())})`;
          await renameTask(here, task.id, keptTitle);
          const say =
            `${away.user} goes offline and renames "${task.title}" to "${lostTitle}"; ${here.user}, online, ` +
            `renames it a moment later to "${keptTitle}"; ${away.user} comes back online`;
          const stored = await waitUntil(async () => {
            const { rows } = await pool.query<{ title: string }>(`SELECT title FROM tasks WHERE id = $1`, [task.id]);
            return rows[0]?.title === keptTitle;
          }, started);
          const back = performance.now();
          await setOnline(away, true);
          if (stored === null) return `${say} — ${here.user}'s rename not in Postgres within ${STEP_TIMEOUT_MS} ms`;
          // Both devices show the later edit, and the conflict record has synced to both.
          const took = await waitUntil(
            () =>
              devices.every(
                (d) =>
                  d.rows.some((r) => r.id === task.id && r.title === keptTitle) &&
                  d.conflicts.some((c) => c.rowId === task.id && c.loserValue === lostTitle),
              ),
            back,
          );
          if (took === null) return `${say} — no conflict on both devices within ${STEP_TIMEOUT_MS} ms`;
          const lines = [
            `${say} — ${PRONOUN[away.user]} rename uploaded last, but ${here.user}'s is later by clock and was kept: ` +
              `both devices show "${keptTitle}" after ${ms(took)}`,
          ];
          for (const d of devices) {
            const conflicts = await d.db.getConflicts({ table: 'tasks', rowId: task.id });
            const c = conflicts.find((candidate) => candidate.loserValue === lostTitle)!;
            lines.push(
              `   conflict on ${d.user}'s device: ${c.table}.${c.column} kept ${side(c.winnerValue, c.winnerUserId, c.winnerHlc)}, ` +
                `lost ${side(c.loserValue, c.loserUserId, c.loserHlc)}`,
            );
          }
          return lines.join('\n');
        }
        case 'resolve': {
          const me = device(step.user);
          const conflict = (await me.db.getConflicts({ table: 'tasks' })).filter((c) => c.column === 'title').at(-1);
          if (conflict === undefined) return `${me.user} has no task conflict to resolve`;
          const lost = conflict.loserValue;
          const say = `${me.user} resolves the conflict on ${PRONOUN[me.user]} device, taking the lost value (resolveConflict(id, { keep: 'lost' }))`;
          await me.db.resolveConflict(conflict.id, { keep: 'lost' });
          const local = performance.now() - started;
          const took = await waitUntil(
            () =>
              devices.every(
                (d) =>
                  d.rows.some((r) => r.id === conflict.rowId && r.title === lost) &&
                  !d.conflicts.some((c) => c.id === conflict.id),
              ),
            started,
          );
          return `${say} — saved locally in ${ms(local)}, ${took === null ? `not settled on both devices within ${STEP_TIMEOUT_MS} ms` : `both devices show ${JSON.stringify(lost)} and no conflict after ${ms(took)}`}`;
        }
        case 'double-book': {
          const latest = await devices[0]!.db.get<{ day: string | null }>(
            `SELECT max(day) AS day FROM bookings WHERE room_id = ?`,
            [DEPOT],
          );
          const day = freeDay(latest.day);
          const who = devices.map((d) => d.user).join(' and ');
          const say = `${who} go offline and each book the Depot on ${day} at ${step.slot}; both come back online`;
          for (const d of devices) await setOnline(d, false);
          const ids: string[] = [];
          for (const d of devices) {
            const id = randomUUID();
            ids.push(id);
            await d.db.execute(
              `INSERT INTO bookings (id, workspace_id, room_id, day, slot, title, booked_by, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
              [id, FIELD, DEPOT, day, step.slot, `Briefing (${d.user})`, d.user, new Date().toISOString()],
            );
          }
          const back = performance.now();
          for (const d of devices) await setOnline(d, true);
          const flags = (v: Violation): boolean => ids.every((id) => v.rows.some((r) => r.id === id));
          const took = await waitUntil(() => devices.every((d) => d.violations.some(flags)), back);
          if (took === null) return `${say} — no violation on both devices within ${STEP_TIMEOUT_MS} ms`;
          const lines = [
            `${say} — both bookings are kept, and the bookings hook flags them: on both devices after ${ms(took)}`,
          ];
          for (const d of devices) {
            const v = (await d.db.getViolations({ table: 'bookings' })).find(flags)!;
            const by = await d.db.getAll<{ booked_by: string }>(
              `SELECT booked_by FROM bookings WHERE id IN (${v.rows.map(() => '?').join(', ')}) ORDER BY booked_by`,
              v.rows.map((r) => r.id),
            );
            lines.push(
              `   violation on ${d.user}'s device: ${v.code} "${v.message}" (bookings by ${by.map((b) => b.booked_by).join(' and ')})`,
            );
          }
          return lines.join('\n');
        }
        case 'move-booking': {
          const me = device(step.user);
          const flagged = (await me.db.getViolations({ table: 'bookings' }))
            .filter((v) => v.code === 'double_booking')
            .at(-1);
          const mine =
            flagged === undefined
              ? null
              : await me.db.getOptional<{ id: string }>(
                  `SELECT id FROM bookings WHERE booked_by = ? AND id IN (${flagged.rows.map(() => '?').join(', ')})`,
                  [me.user, ...flagged.rows.map((r) => r.id)],
                );
          if (flagged === undefined || mine === null) return `${me.user} has no double booking to move`;
          const say = `${me.user} moves ${PRONOUN[me.user]} booking to ${step.slot} on ${PRONOUN[me.user]} device`;
          await me.db.execute(`UPDATE bookings SET slot = ? WHERE id = ?`, [step.slot, mine.id]);
          const local = performance.now() - started;
          const took = await waitUntil(
            () => devices.every((d) => !d.violations.some((v) => v.id === flagged.id)),
            started,
          );
          return `${say} — saved locally in ${ms(local)}, ${took === null ? `the violation still shows within ${STEP_TIMEOUT_MS} ms` : `no longer flagged: the violation is gone on both devices after ${ms(took)}`}`;
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
        // Ferry's own write connector: the sync stream, and local writes uploaded to POST /write.
        const connector = ferryConnector({ endpoint: stack.service.url, fetchToken: () => stack.token(user, 300) });
        const entry: Device = {
          user,
          db,
          rows: [],
          pending: 0,
          rejections: [],
          conflicts: [],
          violations: [],
          connector,
          online: true,
        };
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
        db.watchConflicts(undefined, (conflicts) => ((entry.conflicts = conflicts), render()));
        db.watchViolations(undefined, (violations) => ((entry.violations = violations), render()));
        db.registerListener({
          statusChanged: (status) => {
            if (status.pendingCount === entry.pending) return;
            entry.pending = status.pendingCount;
            render();
          },
        });
        await db.connect(connector);
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
