import { useFerry } from '@ferry/react';
import { useState, type FormEvent } from 'react';
import { deleteTask, moveTask, renameTask } from './actions';
import { conflictElementId } from './conflicts';
import { COLUMNS } from './schema';

export interface BoardTask {
  id: string;
  workspace_id: string;
  title: string | null;
  status: string | null;
  project_name: string | null;
}

/**
 * One task on the board: edit its title, move it to the next or previous
 * column, delete it. `conflicts` are the ids of its unresolved conflicts
 * (shown as a badge that leads to the conflicts panel).
 */
export function TaskCard({
  task,
  showProject,
  conflicts,
}: {
  task: BoardTask;
  showProject: boolean;
  conflicts: readonly string[];
}) {
  const db = useFerry();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState('');
  const title = task.title ?? '';
  const index = Math.max(
    0,
    COLUMNS.findIndex((c) => c.status === task.status),
  );
  const previous = COLUMNS[index - 1];
  const next = COLUMNS[index + 1];

  const save = (event: FormEvent): void => {
    event.preventDefault();
    const value = draft.trim();
    setEditing(false);
    if (value !== '' && value !== title) void renameTask(db, task.id, value);
  };

  return (
    <li className="task" data-testid="task" data-task-id={task.id} data-status={task.status ?? 'todo'}>
      {editing ? (
        <form onSubmit={save} className="task-edit">
          <label>
            <span className="visually-hidden">Title</span>
            <input value={draft} onChange={(e) => setDraft(e.target.value)} autoFocus required maxLength={200} />
          </label>
          <button type="submit">Save</button>
          <button type="button" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <p className="task-title" data-testid="task-title">
          {title}
        </p>
      )}
      {showProject && task.project_name !== null && <span className="tag">{task.project_name}</span>}
      {conflicts.length > 0 && (
        <button
          type="button"
          className="badge badge-conflict"
          data-testid="conflict-badge"
          data-count={conflicts.length}
          aria-label={`Review the conflicts of “${title}”`}
          onClick={() => {
            const entry = document.getElementById(conflictElementId(conflicts[0]!));
            entry?.scrollIntoView({ block: 'center' });
            entry?.focus();
          }}
        >
          {conflicts.length} conflict{conflicts.length === 1 ? '' : 's'}
        </button>
      )}
      {!editing && (
        <div className="task-actions">
          {previous !== undefined && (
            <button
              type="button"
              aria-label={`Move “${title}” to ${previous.title}`}
              title={`Move to ${previous.title}`}
              onClick={() => void moveTask(db, task.id, task.workspace_id, previous.status)}
            >
              ←
            </button>
          )}
          {next !== undefined && (
            <button
              type="button"
              aria-label={`Move “${title}” to ${next.title}`}
              title={`Move to ${next.title}`}
              onClick={() => void moveTask(db, task.id, task.workspace_id, next.status)}
            >
              →
            </button>
          )}
          <button
            type="button"
            aria-label={`Edit “${title}”`}
            onClick={() => {
              setDraft(title);
              setEditing(true);
            }}
          >
            Edit
          </button>
          <button type="button" aria-label={`Delete “${title}”`} onClick={() => void deleteTask(db, task.id)}>
            Delete
          </button>
        </div>
      )}
    </li>
  );
}
