// Every change the board makes: plain SQL on local SQLite. Ferry queues each
// one for upload; the lists (useQuery) update from the same local tables.
import type { ConflictResolution, FerryDatabase } from '@ferry/client';
import type { Status } from './schema';

const now = (): string => new Date().toISOString();
/** The next position at the bottom of a column. */
const BOTTOM = `(SELECT coalesce(max(position), 0) + 1 FROM tasks WHERE workspace_id = ? AND status = ?)`;

export async function addTask(
  db: FerryDatabase,
  task: { workspaceId: string; projectId: string | null; title: string; status?: Status },
): Promise<string> {
  const id = crypto.randomUUID();
  const status = task.status ?? 'todo';
  await db.execute(
    `INSERT INTO tasks (id, workspace_id, project_id, title, status, done, position, tags, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ${BOTTOM}, '[]', ?, ?)`,
    [
      id,
      task.workspaceId,
      task.projectId,
      task.title,
      status,
      status === 'done' ? 1 : 0,
      task.workspaceId,
      status,
      now(),
      now(),
    ],
  );
  return id;
}

export async function renameTask(db: FerryDatabase, id: string, title: string): Promise<void> {
  await db.execute(`UPDATE tasks SET title = ?, updated_at = ? WHERE id = ?`, [title, now(), id]);
}

/** Moves a task to the bottom of another column. */
export async function moveTask(db: FerryDatabase, id: string, workspaceId: string, status: Status): Promise<void> {
  await db.execute(`UPDATE tasks SET status = ?, done = ?, position = ${BOTTOM}, updated_at = ? WHERE id = ?`, [
    status,
    status === 'done' ? 1 : 0,
    workspaceId,
    status,
    now(),
    id,
  ]);
}

export async function deleteTask(db: FerryDatabase, id: string): Promise<void> {
  await db.execute(`DELETE FROM tasks WHERE id = ?`, [id]);
}

export async function addProject(db: FerryDatabase, workspaceId: string, name: string): Promise<string> {
  const id = crypto.randomUUID();
  await db.execute(
    `INSERT INTO projects (id, workspace_id, name, position, created_at)
     VALUES (?, ?, ?, (SELECT coalesce(max(position), 0) + 1 FROM projects WHERE workspace_id = ?), ?)`,
    [id, workspaceId, name, workspaceId, now()],
  );
  return id;
}

/**
 * Renames a workspace locally. The write rules do not let clients write
 * workspaces, so the service rejects it: the name goes back and the reason
 * shows in the rejections list (the demo's example of a refused write).
 */
export async function renameWorkspace(db: FerryDatabase, id: string, name: string): Promise<void> {
  await db.execute(`UPDATE workspaces SET name = ? WHERE id = ?`, [name, id]);
}

/**
 * Books a room slot. Nothing stops two people booking the same slot while
 * offline: the server keeps both and its `bookings` hook flags them (a row
 * of `ferry_violations` that syncs back to both).
 */
export async function addBooking(
  db: FerryDatabase,
  booking: { workspaceId: string; roomId: string; day: string; slot: string; title: string; bookedBy: string },
): Promise<string> {
  const id = crypto.randomUUID();
  await db.execute(
    `INSERT INTO bookings (id, workspace_id, room_id, day, slot, title, booked_by, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [id, booking.workspaceId, booking.roomId, booking.day, booking.slot, booking.title, booking.bookedBy, now()],
  );
  return id;
}

/** Moves a booking to another slot of its room and day: the server re-checks it and clears a double booking. */
export async function moveBooking(db: FerryDatabase, id: string, slot: string): Promise<void> {
  await db.execute(`UPDATE bookings SET slot = ? WHERE id = ?`, [slot, id]);
}

export async function cancelBooking(db: FerryDatabase, id: string): Promise<void> {
  await db.execute(`DELETE FROM bookings WHERE id = ?`, [id]);
}

/**
 * Settles a conflict the server recorded (a value that lost a concurrent
 * edit): one local transaction that deletes the `ferry_conflicts` row (the
 * write rules let workspace members do that) and, for `lost` or a new
 * value, writes the field. Both upload like any other change.
 */
export async function resolveConflict(db: FerryDatabase, id: string, resolution: ConflictResolution): Promise<void> {
  await db.resolveConflict(id, resolution);
}
