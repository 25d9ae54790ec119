import { column, Schema, Table } from '@ferry/client';

/**
 * Client schema of the task-board demo (mirrors apps/tasks/migrations). The
 * built-in `ferry_conflicts` and `ferry_violations` tables are always there.
 */
export const tasksSchema = new Schema({
  workspaces: new Table({ name: column.text, created_at: column.text }),
  workspace_members: new Table(
    { workspace_id: column.text, user_id: column.text, role: column.text },
    { indexes: { by_workspace: ['workspace_id'] } },
  ),
  tasks: new Table(
    {
      workspace_id: column.text,
      title: column.text,
      done: column.integer,
      position: column.integer,
      estimate: column.text,
      tags: column.text,
      assignee_id: column.text,
      created_at: column.text,
      updated_at: column.text,
    },
    { indexes: { by_workspace: ['workspace_id', 'position'] } },
  ),
  rooms: new Table({ workspace_id: column.text, name: column.text }, { indexes: { by_workspace: ['workspace_id'] } }),
  bookings: new Table(
    {
      workspace_id: column.text,
      room_id: column.text,
      day: column.text,
      slot: column.text,
      title: column.text,
      booked_by: column.text,
      created_at: column.text,
    },
    { indexes: { by_room: ['room_id', 'day', 'slot'] } },
  ),
  notes: new Table({ owner_id: column.text, body: column.text, created_at: column.text }),
});
