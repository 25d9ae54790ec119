import { column, Schema, Table } from '@ferry/client';
import type { SchemaRow } from '@ferry/react';

/**
 * The board's local tables (mirrors apps/tasks/migrations; `notes` is not
 * shown, so not declared). Every client also has `ferry_conflicts` and
 * `ferry_violations`, filled by the sync rules: they are not declared here.
 */
export const schema = new Schema({
  workspaces: new Table({ name: column.text, created_at: column.text }),
  workspace_members: new Table(
    { workspace_id: column.text, user_id: column.text, role: column.text },
    { indexes: { by_workspace: ['workspace_id'] } },
  ),
  projects: new Table(
    { workspace_id: column.text, name: column.text, position: column.integer, created_at: column.text },
    { indexes: { by_workspace: ['workspace_id', 'position'] } },
  ),
  tasks: new Table(
    {
      workspace_id: column.text,
      project_id: column.text,
      title: column.text,
      status: column.text,
      done: column.integer,
      position: column.integer,
      estimate: column.text,
      tags: column.text,
      assignee_id: column.text,
      created_at: column.text,
      updated_at: column.text,
    },
    { indexes: { by_project: ['project_id', 'status', 'position'], by_workspace: ['workspace_id', 'status'] } },
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
    { indexes: { by_day: ['workspace_id', 'day', 'slot'] } },
  ),
});

export type Workspace = SchemaRow<typeof schema, 'workspaces'>;
export type Project = SchemaRow<typeof schema, 'projects'>;
export type Task = SchemaRow<typeof schema, 'tasks'>;
export type Room = SchemaRow<typeof schema, 'rooms'>;
export type Booking = SchemaRow<typeof schema, 'bookings'>;

/** The board's columns, in order: `tasks.status` values. */
export const COLUMNS = [
  { status: 'todo', title: 'To do' },
  { status: 'doing', title: 'In progress' },
  { status: 'done', title: 'Done' },
] as const;
export type Status = (typeof COLUMNS)[number]['status'];

/** Bookable one-hour slots (start times): 09:00 to 16:00, the last one ending at 17:00. */
export const SLOTS = ['09:00', '10:00', '11:00', '12:00', '13:00', '14:00', '15:00', '16:00'] as const;
